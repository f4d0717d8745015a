/**
 * An agent run as a page sees it: `RunState` folds a run's events into its
 * state and the out-of-band fragments that move a page along; `agentEvents`
 * streams a source's run over one connection. Re-exported by agent-runner.tsx.
 */
import { randomBytes } from 'node:crypto'
import type { SseEvent } from '../plugin/stream.js'
import {
  AgentError, AgentStatus, AgentTranscript, MessageChunk, ToolResult, ToolUseCard,
  type AgentItem, type AgentState
} from '../views/agent.js'
import { Oob, SSE_CLOSE_EVENT } from '../views/sse.js'
import { coalesceWhitespace, type AgentEvent, type AgentSource } from './agent-source.js'

/** What a run's transcript records: the source's events, and how a run ended without them. */
export type RunEvent = AgentEvent | { type: 'cancelled' } | { type: 'interrupted' }

/** The state of one run, folded from its events. */
export class RunState {
  items: AgentItem[] = []
  state: AgentState = 'thinking'
  status = 'Thinking…'
  readonly #tools = new Map<string, number>()

  constructor (readonly runId: string, readonly prompt: string) {}

  get domId (): string { return `agent-${this.runId}` }

  toolDomId (id: string): string {
    let n = this.#tools.get(id)
    if (n === undefined) this.#tools.set(id, n = this.#tools.size + 1)
    return `${this.domId}-tool-${n}`
  }

  get finished (): boolean {
    return this.state === 'done' || this.state === 'error' || this.state === 'cancelled' || this.state === 'interrupted'
  }

  /** Applies one event; returns the out-of-band fragments that bring a page from the old state to the new. */
  apply (ev: RunEvent): JSX.Element {
    const out = `${this.domId}-output`
    const before = this.state
    let fragment: JSX.Element = ''
    switch (ev.type) {
      case 'text': {
        const last = this.items[this.items.length - 1]
        if (last?.kind === 'text') last.text += ev.text
        else this.items.push({ kind: 'text', text: ev.text })
        this.state = 'streaming'
        this.status = 'Writing…'
        fragment = <Oob id={out} swap='beforeend'><MessageChunk text={ev.text} /></Oob>
        break
      }
      case 'tool_use': {
        const domId = this.toolDomId(ev.id)
        this.items.push({ kind: 'tool', domId, name: ev.name, input: ev.input, done: false })
        this.state = 'tool'
        this.status = `Calling ${ev.name}…`
        fragment = <Oob id={out} swap='beforeend'><ToolUseCard id={domId} name={ev.name} input={ev.input} /></Oob>
        break
      }
      case 'tool_result': {
        const domId = this.toolDomId(ev.id)
        const tool = this.items.find((i): i is Extract<AgentItem, { kind: 'tool' }> => i.kind === 'tool' && i.domId === domId)
        if (tool !== undefined) Object.assign(tool, { output: ev.output, isError: ev.isError === true, done: true })
        this.state = 'thinking'
        this.status = 'Reading the result…'
        fragment = <ToolResult id={domId} output={ev.output} isError={ev.isError === true} />
        break
      }
      case 'error':
        this.items.push({ kind: 'error', message: ev.message })
        this.state = 'error'
        this.status = 'Failed'
        fragment = <Oob id={out} swap='beforeend'><AgentError message='Agent error' detail={ev.message} /></Oob>
        break
      case 'done':
        this.state = 'done'
        this.status = 'Done'
        break
      case 'cancelled':
        this.state = 'cancelled'
        this.status = 'Cancelled'
        break
      case 'interrupted':
        this.state = 'interrupted'
        this.status = 'Interrupted'
        break
    }
    const changed = before !== this.state || ev.type === 'tool_use' || ev.type === 'tool_result'
    return changed ? <>{fragment}<Oob id={`${this.domId}-state`} swap='innerHTML'><AgentStatus id={`${this.domId}-status`} state={this.state} text={this.status} /></Oob></> : fragment
  }
}

/**
 * A whole run as it stands (the page render, and the body of a run's first
 * event); `oob` replaces a page's copy of it by id (an interrupted run).
 */
export function AgentRunSnapshot (props: { run: RunState, href?: string | undefined, oob?: boolean }): JSX.Element {
  const { run } = props
  return <AgentTranscript id={run.domId} prompt={run.prompt} state={run.state} status={run.status} items={run.items} href={props.href} oob={props.oob} />
}

/** The first event of a run: its skeleton, into the page's run slot. */
export function startFragment (slotId: string, run: RunState, href?: string): JSX.Element {
  return <Oob id={slotId} swap='innerHTML'><AgentRunSnapshot run={run} href={href} /></Oob>
}

/** The event that ends a run's stream (`sse-close` / `hx-sse:close`); it carries data, or EventSource would drop it. */
export const DONE_EVENT: SseEvent = { event: SSE_CLOSE_EVENT, data: 'end' }

/**
 * Turns a source's run into SSE events for one connection (`reply.sse(signal => …)`):
 * the run skeleton into `#slotId`, then out-of-band updates, then `done`.
 */
export async function * agentEvents (
  source: AgentSource, prompt: string, signal: AbortSignal,
  options: { runId?: string, slotId?: string } = {}
): AsyncGenerator<SseEvent> {
  const run = new RunState(options.runId ?? newRunId(), prompt)
  yield { data: startFragment(options.slotId ?? 'agent-session-run', run) }
  try {
    for await (const ev of coalesceWhitespace(source.run(prompt, signal))) {
      yield { data: run.apply(ev) }
      if (ev.type === 'done' || ev.type === 'error') break
    }
  } catch (err) {
    if (signal.aborted) return
    yield { data: run.apply({ type: 'error', message: err instanceof Error ? err.message : String(err) }) }
  }
  yield DONE_EVENT
}

export function newRunId (): string {
  return 'r' + randomBytes(8).toString('hex')
}

/** The shape of `newRunId()`'s ids. */
export const RUN_ID = /^r[0-9a-f]{16}$/
