/**
 * Streaming responses in each provider's wire format, for the local LLM
 * server (llm-server.ts).
 *
 * Anthropic Messages API (`POST /v1/messages`, `stream: true`): typed with the
 * SDK's own `RawMessageStreamEvent`, in the documented order — `message_start`,
 * then per content block `content_block_start`, `content_block_delta`s
 * (`text_delta` / `input_json_delta`), `content_block_stop`; `message_delta`
 * with the `stop_reason`, `message_stop`. `ping` may come anywhere; a failure
 * after the 200 is `event: error` with `{ type: 'error', error: { type, message } }`.
 *
 * OpenAI Responses API (`POST /responses`, what `openai(modelId)` of
 * @ai-sdk/openai 4 calls): no typed package is installed, so the types below
 * follow OpenAI's documented streaming events and the schema @ai-sdk/openai
 * validates them with — `response.created`, `response.in_progress`, per output
 * item `response.output_item.added`, (`response.content_part.added`,
 * `response.output_text.delta`s, `response.output_text.done`,
 * `response.content_part.done`) or `response.function_call_arguments.delta`s
 * and `.done`, then `response.output_item.done`; `response.completed`. Every
 * event carries a `sequence_number`; a failure after the 200 is `event: error`
 * with `{ type: 'error', code, message, param }`.
 */
import type { RawMessageStreamEvent, StopReason } from '@anthropic-ai/sdk/resources/messages'
import type { SseFrame } from './llm-server.js'

// ── Anthropic ────────────────────────────────────────────────────────────

export type AnthropicBlock =
  | { text: readonly string[] }
  | { toolUse: { id: string, name: string, json: readonly string[] } }

function anthropicFrame (data: RawMessageStreamEvent | { type: 'ping' }): SseFrame {
  return { event: data.type, data }
}

/** One streamed assistant message: its blocks, each delta its own event, then the stop reason. */
export function anthropicMessage (blocks: readonly AnthropicBlock[], stopReason: StopReason, id = 'msg_test_01'): SseFrame[] {
  const frames: SseFrame[] = [anthropicFrame({
    type: 'message_start',
    message: {
      id,
      type: 'message',
      role: 'assistant',
      model: 'claude-test',
      content: [],
      container: null,
      diagnostics: null,
      stop_details: null,
      stop_reason: null,
      stop_sequence: null,
      usage: {
        input_tokens: 25,
        output_tokens: 1,
        cache_creation: null,
        cache_creation_input_tokens: null,
        cache_read_input_tokens: null,
        inference_geo: null,
        output_tokens_details: null,
        server_tool_use: null,
        service_tier: 'standard',
        speed: null
      }
    }
  }), { event: 'ping', data: { type: 'ping' } }]
  blocks.forEach((block, index) => {
    if ('text' in block) {
      frames.push(anthropicFrame({ type: 'content_block_start', index, content_block: { type: 'text', text: '', citations: null } }))
      for (const text of block.text) frames.push(anthropicFrame({ type: 'content_block_delta', index, delta: { type: 'text_delta', text } }))
    } else {
      const { id: toolId, name, json } = block.toolUse
      frames.push(anthropicFrame({ type: 'content_block_start', index, content_block: { type: 'tool_use', id: toolId, name, input: {}, caller: { type: 'direct' } } }))
      for (const partial of json) frames.push(anthropicFrame({ type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: partial } }))
    }
    frames.push(anthropicFrame({ type: 'content_block_stop', index }))
  })
  frames.push(anthropicFrame({
    type: 'message_delta',
    delta: { stop_reason: stopReason, stop_sequence: null, container: null, stop_details: null },
    usage: { output_tokens: 42, input_tokens: null, cache_creation_input_tokens: null, cache_read_input_tokens: null, output_tokens_details: null, server_tool_use: null }
  }), anthropicFrame({ type: 'message_stop' }))
  return frames
}

/** The frames of a message cut short: everything up to (not including) its `message_delta`, then `event: error`. */
export function anthropicFailing (blocks: readonly AnthropicBlock[], error: { type: string, message: string }): SseFrame[] {
  const frames = anthropicMessage(blocks, 'end_turn')
  return [...frames.slice(0, -2), { event: 'error', data: { type: 'error', error } }]
}

// ── OpenAI Responses ─────────────────────────────────────────────────────

interface ResponsesUsage {
  input_tokens: number
  input_tokens_details: { cached_tokens: number }
  output_tokens: number
  output_tokens_details: { reasoning_tokens: number }
  total_tokens: number
}
interface ResponsesResponse {
  id: string
  object: 'response'
  created_at: number
  model: string
  status: 'in_progress' | 'completed'
  output: ResponsesItem[]
  error: null
  incomplete_details: null
  usage: ResponsesUsage | null
}
type ResponsesOutputText = { type: 'output_text', text: string, annotations: [] }
type ResponsesItem =
  | { type: 'message', id: string, status: 'in_progress' | 'completed', role: 'assistant', content: ResponsesOutputText[] }
  | { type: 'function_call', id: string, call_id: string, name: string, arguments: string, status: 'in_progress' | 'completed' }
type ResponsesEvent =
  | { type: 'response.created' | 'response.in_progress' | 'response.completed', response: ResponsesResponse }
  | { type: 'response.output_item.added' | 'response.output_item.done', output_index: number, item: ResponsesItem }
  | { type: 'response.content_part.added' | 'response.content_part.done', item_id: string, output_index: number, content_index: number, part: ResponsesOutputText }
  | { type: 'response.output_text.delta', item_id: string, output_index: number, content_index: number, delta: string, logprobs: [] }
  | { type: 'response.output_text.done', item_id: string, output_index: number, content_index: number, text: string, logprobs: [] }
  | { type: 'response.function_call_arguments.delta', item_id: string, output_index: number, delta: string }
  | { type: 'response.function_call_arguments.done', item_id: string, output_index: number, arguments: string }
  | { type: 'error', code: string, message: string, param: null }

export type ResponsesBlock =
  | { text: readonly string[] }
  | { call: { id: string, name: string, json: readonly string[] } }

/** One streamed response: its output items, each delta its own event, then `response.completed`. */
export function responsesStream (blocks: readonly ResponsesBlock[], id = 'resp_test_01', options: { failWith?: { code: string, message: string } } = {}): SseFrame[] {
  let seq = 0
  const frames: SseFrame[] = []
  const push = (ev: ResponsesEvent): void => { frames.push({ event: ev.type, data: { ...ev, sequence_number: seq++ } }) }
  const response = (status: ResponsesResponse['status'], output: ResponsesItem[]): ResponsesResponse => ({
    id,
    object: 'response',
    created_at: 1_765_000_000,
    model: 'gpt-test',
    status,
    output,
    error: null,
    incomplete_details: null,
    usage: status === 'completed' ? { input_tokens: 20, input_tokens_details: { cached_tokens: 0 }, output_tokens: 30, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 50 } : null
  })
  push({ type: 'response.created', response: response('in_progress', []) })
  push({ type: 'response.in_progress', response: response('in_progress', []) })
  const done: ResponsesItem[] = []
  blocks.forEach((block, index) => {
    if ('text' in block) {
      const itemId = `msg_${id}_${index}`
      const empty: ResponsesOutputText = { type: 'output_text', text: '', annotations: [] }
      push({ type: 'response.output_item.added', output_index: index, item: { type: 'message', id: itemId, status: 'in_progress', role: 'assistant', content: [] } })
      push({ type: 'response.content_part.added', item_id: itemId, output_index: index, content_index: 0, part: empty })
      for (const delta of block.text) push({ type: 'response.output_text.delta', item_id: itemId, output_index: index, content_index: 0, delta, logprobs: [] })
      const text = block.text.join('')
      const part: ResponsesOutputText = { type: 'output_text', text, annotations: [] }
      push({ type: 'response.output_text.done', item_id: itemId, output_index: index, content_index: 0, text, logprobs: [] })
      push({ type: 'response.content_part.done', item_id: itemId, output_index: index, content_index: 0, part })
      const item: ResponsesItem = { type: 'message', id: itemId, status: 'completed', role: 'assistant', content: [part] }
      push({ type: 'response.output_item.done', output_index: index, item })
      done.push(item)
    } else {
      const itemId = `fc_${id}_${index}`
      const { id: callId, name, json } = block.call
      push({ type: 'response.output_item.added', output_index: index, item: { type: 'function_call', id: itemId, call_id: callId, name, arguments: '', status: 'in_progress' } })
      for (const delta of json) push({ type: 'response.function_call_arguments.delta', item_id: itemId, output_index: index, delta })
      const args = json.join('')
      push({ type: 'response.function_call_arguments.done', item_id: itemId, output_index: index, arguments: args })
      const item: ResponsesItem = { type: 'function_call', id: itemId, call_id: callId, name, arguments: args, status: 'completed' }
      push({ type: 'response.output_item.done', output_index: index, item })
      done.push(item)
    }
  })
  if (options.failWith !== undefined) {
    // A failure mid-stream: the text so far, then the error, and no completion.
    const cut = frames.findLastIndex(f => (f.data as { type: string }).type === 'response.output_text.delta')
    frames.splice(cut + 1)
    push({ type: 'error', code: options.failWith.code, message: options.failWith.message, param: null })
    return frames
  }
  push({ type: 'response.completed', response: response('completed', done) })
  return frames
}
