/**
 * What the agent adapter tests share: a bounded wait, the events of one run
 * collected, and a count of unhandled rejections over the whole file (an
 * adapter must never leave one behind, an aborted run included).
 */
import t from 'tap'
import type { AgentEvent, AgentSource } from '../../runs/agent-source.js'

/** Resolves with `promise`, or rejects naming `what` after `ms`. */
export async function within<T> (what: string, promise: Promise<T>, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms) })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Every event of one run of `source`, in order. */
export async function collect (source: AgentSource, prompt: string, signal = new AbortController().signal): Promise<AgentEvent[]> {
  const out: AgentEvent[] = []
  await within('the run to end', (async () => { for await (const ev of source.run(prompt, signal)) out.push(ev) })())
  return out
}

/** Counts unhandled rejections from now until the test file ends: read `count` last. */
export function countUnhandled (): { readonly count: number } {
  let count = 0
  const onUnhandled = (): void => { count++ }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })
  return { get count () { return count } }
}
