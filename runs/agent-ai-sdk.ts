/**
 * `aiSdkAgent`: an `AgentSource` over the Vercel AI SDK's `streamText`, so
 * one adapter reaches every provider it has (OpenAI, Anthropic, Google, …).
 * `ai` is an optional peer, imported the first time a run starts; the types
 * below are structural, so the declarations need no `ai` installed.
 */
import { missingPeer } from '../plugin/errors.js'
import type { AgentSource } from './agent-source.js'
import { countOption, describeError } from './agent-sdk-util.js'

export interface AiSdkAgentOptions {
  /** A provider's model (`openai('gpt-5')`, `anthropic('claude-sonnet-4-5')`), or a gateway model id string. */
  model: string | { readonly specificationVersion: string, readonly provider: string, readonly modelId: string }
  system?: string
  /**
   * The AI SDK's tools (`tool({ description, inputSchema, execute })`): those
   * with `execute` run inside the SDK, and their results (or errors) update
   * their cards; the model sees them on its next step.
   */
  tools?: Record<string, object>
  /** Model calls per run (each tool round is one more): `stopWhen: stepCountIs(maxSteps)`. Default 8. */
  maxSteps?: number
  maxOutputTokens?: number
}

type Ai = typeof import('ai')
let loading: Promise<Ai> | undefined

async function loadAi (): Promise<Ai> {
  loading ??= import('ai').catch((err: unknown) => {
    loading = undefined
    throw missingPeer(err, 'ai', 'aiSdkAgent()')
  })
  return await loading
}

/**
 * Streams a prompt through `streamText(…).stream` (ai 7's name for `fullStream`):
 * `text-delta` → `text`, `tool-call` → `tool_use`, `tool-result` /
 * `tool-error` / `tool-output-denied` → `tool_result`, the end → `done`. An
 * `error` part, a thrown stream, a content-filter stop, or a last step that
 * still called tools (`maxSteps` reached, a tool without `execute`) end the
 * run with `error`. After `signal` aborts nothing more is emitted and the
 * SDK's request is aborted.
 */
export function aiSdkAgent (options: AiSdkAgentOptions): AgentSource {
  const maxSteps = countOption(options.maxSteps, 8, 'maxSteps (aiSdkAgent)')
  if (options.maxOutputTokens !== undefined) countOption(options.maxOutputTokens, 1, 'maxOutputTokens (aiSdkAgent)')
  return {
    async * run (prompt, signal) {
      const ai = await loadAi()
      // Ours, so that leaving early (an error part) also ends the SDK's request.
      const controller = new AbortController()
      const abort = (): void => controller.abort(signal.reason)
      signal.addEventListener('abort', abort, { once: true })
      let finished = false
      try {
        if (signal.aborted) return
        const result = ai.streamText({
          model: options.model as Parameters<Ai['streamText']>[0]['model'],
          system: options.system,
          prompt,
          tools: options.tools as Parameters<Ai['streamText']>[0]['tools'],
          stopWhen: ai.stepCountIs(maxSteps),
          maxOutputTokens: options.maxOutputTokens,
          abortSignal: controller.signal,
          // Errors reach the run as `error` parts; the SDK's default logs them to the console as well.
          onError: () => {}
        })
        const open = new Set<string>()
        let finishReason: string | undefined
        for await (const part of result.stream) {
          if (signal.aborted) return
          switch (part.type) {
            case 'text-delta':
              if (part.text !== '') yield { type: 'text', text: part.text }
              break
            case 'tool-call':
              open.add(part.toolCallId)
              yield { type: 'tool_use', id: part.toolCallId, name: part.toolName, input: part.input }
              break
            case 'tool-result':
              // A streaming tool's partial outputs: the card shows the final one.
              if (part.preliminary === true) break
              open.delete(part.toolCallId)
              yield { type: 'tool_result', id: part.toolCallId, output: part.output }
              break
            case 'tool-error':
              open.delete(part.toolCallId)
              yield { type: 'tool_result', id: part.toolCallId, output: part.error instanceof Error ? part.error.message : String(part.error), isError: true }
              break
            case 'tool-output-denied':
              open.delete(part.toolCallId)
              yield { type: 'tool_result', id: part.toolCallId, output: 'The tool call was denied.', isError: true }
              break
            case 'error':
              yield { type: 'error', message: describeError(part.error, 'Model API') }
              return
            case 'abort':
              if (!signal.aborted) yield { type: 'error', message: `The model call was aborted${part.reason === undefined ? '' : `: ${part.reason}`}.` }
              return
            case 'finish':
              finishReason = part.finishReason
              break
          }
        }
        if (signal.aborted) return
        finished = true
        if (finishReason === 'content-filter') {
          yield { type: 'error', message: 'The provider\'s content filter stopped the answer.' }
        } else if (finishReason === 'tool-calls') {
          yield {
            type: 'error',
            message: open.size > 0
              ? `Stopped with ${open.size} tool call(s) unanswered (a tool without execute).`
              : `Stopped after ${maxSteps} model calls (maxSteps) with tool calls still going.`
          }
        } else {
          yield { type: 'done' }
        }
      } catch (err) {
        if (signal.aborted) return
        yield { type: 'error', message: describeError(err, 'Model API') }
      } finally {
        signal.removeEventListener('abort', abort)
        if (!finished) controller.abort()
      }
    }
  }
}
