/**
 * What an agent emits (`AgentEvent`), the `AgentSource` to plug an LLM into,
 * and the bundled offline simulator. Re-exported by agent-runner.tsx.
 */
import { setTimeout as sleep } from 'node:timers/promises'

/** What an agent emits. Map your LLM SDK's stream onto this. */
export type AgentEvent =
  | { type: 'text', text: string }
  | { type: 'tool_use', id: string, name: string, input: unknown }
  | { type: 'tool_result', id: string, output: unknown, isError?: boolean }
  | { type: 'done' }
  | { type: 'error', message: string }

/** Runs a prompt. Must stop (return or throw) soon after `signal` aborts. */
export interface AgentSource {
  run: (prompt: string, signal: AbortSignal) => AsyncIterable<AgentEvent>
}

export interface SimulatedAgentOptions {
  /** Delay between text tokens. Default 35 ms. */
  tokenMs?: number
  /** Time a tool takes. Default 700 ms. */
  toolMs?: number
  /** Time before the first token. Default 400 ms. */
  thinkMs?: number
}

/** Words and the whitespace between them as separate tokens, as LLM streams send them. */
function tokens (text: string): string[] {
  return text.match(/\S+|\s+/g) ?? []
}

/**
 * Holds whitespace-only text tokens and sends them with the next text (or at
 * the end), so no event carries only whitespace: htmx 4 drops a
 * whitespace-only swap, and a space between two words would be lost.
 */
export async function * coalesceWhitespace (events: AsyncIterable<AgentEvent>): AsyncGenerator<AgentEvent> {
  let pending = ''
  for await (const ev of events) {
    if (ev.type === 'text') {
      if (ev.text.trim() === '') {
        pending += ev.text
        continue
      }
      yield pending === '' ? ev : { type: 'text', text: pending + ev.text }
      pending = ''
      continue
    }
    if (pending !== '' && (ev.type === 'done' || ev.type === 'error')) {
      yield { type: 'text', text: pending }
      pending = ''
    }
    yield ev
  }
  if (pending !== '') yield { type: 'text', text: pending }
}

/**
 * A deterministic offline agent: no network, same output for the same prompt.
 * It "checks" metrics and docs with two tools, then answers. A prompt that
 * contains "fail" makes the second tool call fail with an upstream error.
 */
export function simulatedAgent (options: SimulatedAgentOptions = {}): AgentSource {
  const tokenMs = options.tokenMs ?? 35
  const toolMs = options.toolMs ?? 700
  const thinkMs = options.thinkMs ?? 400
  return {
    async * run (prompt, signal) {
      const say = async function * (text: string): AsyncGenerator<AgentEvent> {
        for (const t of tokens(text)) {
          await sleep(tokenMs, undefined, { signal })
          yield { type: 'text', text: t }
        }
      }
      const topic = prompt.trim().slice(0, 120) || 'the system'
      await sleep(thinkMs, undefined, { signal })
      yield * say(`Let me look at the live metrics and the runbook before answering “${topic}”. `)
      yield { type: 'tool_use', id: 'call_1', name: 'get_metrics', input: { metrics: ['cpu', 'memory', 'load'], window: '1m' } }
      await sleep(toolMs, undefined, { signal })
      yield { type: 'tool_result', id: 'call_1', output: { cpu_avg_pct: 23.4, cpu_peak_pct: 61.2, memory_used_pct: 41.8, load_1m: 0.92 } }
      yield * say('CPU averaged 23.4% over the last minute (peak 61.2%) and memory sits at 41.8%, so there is headroom. ')
      yield { type: 'tool_use', id: 'call_2', name: 'search_runbook', input: { query: topic, limit: 2 } }
      await sleep(toolMs, undefined, { signal })
      if (/fail/i.test(prompt)) {
        yield { type: 'tool_result', id: 'call_2', output: 'runbook service returned 503 Service Unavailable', isError: true }
        yield { type: 'error', message: 'The runbook search failed (503), so I stopped here instead of guessing.' }
        return
      }
      yield { type: 'tool_result', id: 'call_2', output: [{ title: 'Scaling the web tier', score: 0.82 }, { title: 'When load exceeds cores', score: 0.77 }] }
      yield * say('The runbook says to scale out only when the 5-minute load stays above the core count. ')
      yield * say('It does not, so no action is needed right now; I will keep watching the dashboard.')
      yield { type: 'done' }
    }
  }
}
