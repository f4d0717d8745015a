/**
 * `anthropicAgent`: an `AgentSource` over the official Anthropic TypeScript
 * SDK's Messages stream. The app passes its own client (`new Anthropic()`),
 * so this module never imports the SDK: the types below are the few fields
 * the adapter reads, which the SDK's own types satisfy (checked in
 * test/agent-anthropic.test.ts against @anthropic-ai/sdk 1.10).
 */
import type { AgentEvent, AgentSource } from './agent-source.js'
import { countOption, describeError } from './agent-sdk-util.js'

/** The fields of a raw Messages stream event the adapter reads (`RawMessageStreamEvent`). */
export interface AnthropicStreamEvent {
  type: string
  index?: number
  content_block?: { type: string }
  delta?: {
    type?: string
    text?: string
    partial_json?: string
    thinking?: string
    signature?: string
    stop_reason?: string | null
  }
}

/** The request the adapter sends (`MessageCreateParamsStreaming`, loosely: the SDK's own params must fit it). */
export interface AnthropicStreamParams {
  model: string
  max_tokens: number
  stream: true
  messages: Array<{ role: string, content: string | object[] }>
  system?: string | object[]
  tools?: object[]
}

/** What the adapter calls on the app's client: `client.messages.create({ …, stream: true }, { signal })`. */
export interface AnthropicClient {
  messages: {
    // A method (not a function property) so the SDK's overloaded `create` fits: its parameters are compared both ways.
    create (params: AnthropicStreamParams, options: { signal: AbortSignal }): PromiseLike<AsyncIterable<AnthropicStreamEvent>>
  }
}

export interface AnthropicAgentOptions {
  /** The app's client: `new Anthropic({ apiKey })` (its retries and timeout apply). */
  client: AnthropicClient
  /** e.g. 'claude-sonnet-4-5'. */
  model: string
  /** `max_tokens` of each model call. Default 1024. */
  maxTokens?: number
  system?: string
  /** Tool definitions as the Messages API takes them (`Anthropic.Tool`: name, description, input_schema), sent as they are. */
  tools?: readonly object[]
  /**
   * Runs a tool the model called; what it returns (or the message of what it
   * throws, as an error result) is shown on the tool's card and sent back to
   * the model. Must stop soon after `signal` aborts.
   */
  runTool?: (name: string, input: unknown, signal: AbortSignal) => unknown
  /** Model calls per run (each tool round is one more). Default 8. */
  maxSteps?: number
}

/** A content block as it streams in: the start event's block, completed by its deltas. */
type Block = Record<string, unknown> & { type: string, json?: string }

/**
 * Streams a prompt through Claude: text deltas become `text` events,
 * `tool_use` blocks (their input assembled from `input_json_delta`s) become
 * `tool_use` events, then the app's `runTool` answers each one (`tool_result`)
 * and the results go back to the model, until a reply stops for another
 * reason than `tool_use` (`done`). An API error, an `error` event in the
 * stream, a stream that ends without a stop reason, or `maxSteps` model calls
 * all end the run with `error`. After `signal` aborts nothing more is emitted.
 */
export function anthropicAgent (options: AnthropicAgentOptions): AgentSource {
  const { client, model } = options
  const maxTokens = countOption(options.maxTokens, 1024, 'maxTokens (anthropicAgent)')
  const maxSteps = countOption(options.maxSteps, 8, 'maxSteps (anthropicAgent)')
  const tools = options.tools === undefined || options.tools.length === 0 ? undefined : [...options.tools]
  return {
    async * run (prompt, signal) {
      const messages: AnthropicStreamParams['messages'] = [{ role: 'user', content: prompt }]
      for (let step = 0; step < maxSteps; step++) {
        const blocks: Block[] = []
        let stopReason: string | null | undefined
        try {
          const params: AnthropicStreamParams = { model, max_tokens: maxTokens, stream: true, messages }
          if (options.system !== undefined) params.system = options.system
          if (tools !== undefined) params.tools = tools
          const stream = await client.messages.create(params, { signal })
          for await (const ev of stream) {
            if (signal.aborted) return
            const text = apply(blocks, ev)
            if (text !== undefined && text !== '') yield { type: 'text', text }
            if (ev.type === 'content_block_stop') {
              const block = blocks[ev.index ?? -1]
              if (block?.type === 'tool_use') yield { type: 'tool_use', id: String(block.id), name: String(block.name), input: block.input }
            }
            if (ev.type === 'message_delta') stopReason = ev.delta?.stop_reason
          }
        } catch (err) {
          if (signal.aborted) return
          yield { type: 'error', message: describeError(err, 'Anthropic API') }
          return
        }
        // The SDK's stream ends quietly when its request is aborted.
        if (signal.aborted) return
        if (stopReason === undefined || stopReason === null) {
          yield { type: 'error', message: 'Anthropic API error: the stream ended before the message did' }
          return
        }
        if (stopReason === 'refusal') {
          yield { type: 'error', message: 'The model declined to answer (stop reason: refusal).' }
          return
        }
        const content = blocks.filter(b => b !== undefined).map(({ json: _json, ...block }) => block)
        if (stopReason !== 'tool_use' && stopReason !== 'pause_turn') {
          yield { type: 'done' }
          return
        }
        const results: object[] = []
        for (const block of content) {
          if (block.type !== 'tool_use') continue
          const id = String(block.id)
          const result = yield * callTool(options.runTool, String(block.name), block.input, id, signal)
          if (result === undefined) return
          results.push({ type: 'tool_result', tool_use_id: id, content: forModel(result.output), ...(result.isError ? { is_error: true } : {}) })
        }
        messages.push({ role: 'assistant', content })
        // pause_turn: the reply as it stands goes back, and the model continues it.
        if (results.length > 0) messages.push({ role: 'user', content: results })
      }
      yield { type: 'error', message: `Stopped after ${maxSteps} model calls (maxSteps) with tool calls still going.` }
    }
  }
}

/** Applies one stream event to the message's blocks; returns the text it adds, if any. */
function apply (blocks: Block[], ev: AnthropicStreamEvent): string | undefined {
  if (ev.type === 'content_block_start' && ev.index !== undefined && ev.content_block !== undefined) {
    const block: Block = { ...ev.content_block }
    blocks[ev.index] = block
    return typeof block.text === 'string' ? block.text : undefined
  }
  const block = ev.index === undefined ? undefined : blocks[ev.index]
  if (block === undefined) return undefined
  if (ev.type === 'content_block_delta' && ev.delta !== undefined) {
    const d = ev.delta
    if (d.type === 'text_delta' && typeof d.text === 'string') {
      block.text = String(block.text ?? '') + d.text
      return d.text
    }
    if (d.type === 'input_json_delta' && typeof d.partial_json === 'string') block.json = (block.json ?? '') + d.partial_json
    else if (d.type === 'thinking_delta' && typeof d.thinking === 'string') block.thinking = String(block.thinking ?? '') + d.thinking
    else if (d.type === 'signature_delta' && typeof d.signature === 'string') block.signature = d.signature
    return undefined
  }
  if (ev.type === 'content_block_stop' && block.json !== undefined) {
    // The input arrives as JSON text in pieces; whole only at the block's stop. No piece: an empty input.
    try {
      block.input = block.json.trim() === '' ? {} : JSON.parse(block.json)
    } catch {
      throw new Error(`the input of tool call ${String(block.id)} is not valid JSON`)
    }
  }
  return undefined
}

/** Runs one tool call and emits its result; undefined when the run was aborted meanwhile. */
async function * callTool (
  runTool: AnthropicAgentOptions['runTool'], name: string, input: unknown, id: string, signal: AbortSignal
): AsyncGenerator<AgentEvent, { output: unknown, isError: boolean } | undefined> {
  let output: unknown
  let isError = false
  try {
    if (runTool === undefined) throw new Error(`no runTool was given to run ${name}`)
    output = await runTool(name, input, signal)
  } catch (err) {
    output = err instanceof Error ? err.message : String(err)
    isError = true
  }
  if (signal.aborted) return undefined
  yield { type: 'tool_result', id, output, isError }
  return { output, isError }
}

/** A tool result's content as the Messages API takes it: text. */
function forModel (output: unknown): string {
  if (typeof output === 'string') return output
  return JSON.stringify(output) ?? String(output)
}
