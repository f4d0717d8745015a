/**
 * Agent runs: what an agent emits (`AgentEvent`, the `AgentSource` to plug an
 * LLM into), the bundled offline simulator, the fold of a run's events into
 * its state (`RunState`) and the fragments that move a page along, and
 * `AgentRunner`, which executes runs on hub topics and records them in a run
 * store, so any instance renders a run's transcript and continues it live.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { parseId, type SseEvent, type SseHub } from '../plugin/index.js'
import {
  AgentError, AgentStatus, AgentTranscript, agentRunStatus, MessageChunk, Oob, SSE_CLOSE_EVENT, ToolResult, ToolUseCard,
  type AgentItem, type AgentState, type RunStatus
} from '../views/index.js'
import { RunLeases, type RunLeaseOptions } from './run-lease.js'
import { instanceId, MemoryRunStore, type RunStore, type StoredRun } from './run-store.js'

/** What an agent emits. Map your LLM SDK's stream onto this. */
export type AgentEvent =
  | { type: 'text', text: string }
  | { type: 'tool_use', id: string, name: string, input: unknown }
  | { type: 'tool_result', id: string, output: unknown, isError?: boolean }
  | { type: 'done' }
  | { type: 'error', message: string }

/** What a run's transcript records: the source's events, and how a run ended without them. */
export type RunEvent = AgentEvent | { type: 'cancelled' } | { type: 'interrupted' }

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

// ── rendering ────────────────────────────────────────────────────────────

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
function startFragment (slotId: string, run: RunState, href?: string): JSX.Element {
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

// ── stored runs ──────────────────────────────────────────────────────────

/** The store kind of agent runs. */
export const AGENT_KIND = 'agent'

/** What a run keeps in `StoredRun.data`. */
interface AgentData {
  prompt: string
  /** Hub id of the run's first event (the cursor of a page rendered before any other). */
  startId?: number
}

/** One transcript entry: an event and the hub id it was published with. */
interface Entry {
  id: number
  ev: RunEvent
}

/** Entries recorded per run; past it a run still streams but its page shows the first ones. */
const MAX_ENTRIES = 5_000

/** How a stored status ends a fold whose events stop short of it (entries capped, owner gone). */
const ENDING: Partial<Record<RunStatus, RunEvent>> = {
  done: { type: 'done' },
  failed: { type: 'error', message: 'The run failed.' },
  cancelled: { type: 'cancelled' },
  interrupted: { type: 'interrupted' }
}

/** A run as a page shows it: its state, the cursor it continues from, and whether it is live. */
export interface AgentRunView {
  run: RunState
  /** The hub id the page's connection continues after (undefined: from now). */
  cursor: string | undefined
  /** True while the stored status is running: the page connects. */
  live: boolean
}

/** A run this process executes. */
interface Driving {
  state: RunState
  controller: AbortController
  entries: number
}

export interface AgentRunnerOptions extends RunLeaseOptions {
  /** Topic of run `id` is `${topicPrefix}${id}`. Default 'agent:'. */
  topicPrefix?: string
  source?: AgentSource
  /** Runs kept in the store (live and finished); past it the oldest finished are dropped. Default 100. */
  maxRuns?: number
  /** Id of the element a run's first event fills (`innerHTML`) on the pages that show it. Default 'agent-run'. */
  slotId?: string
  /** The URL of a run's page, linked from its transcript. */
  hrefOf?: (runId: string) => string
  /** Where runs and their transcripts are kept. Default: a `MemoryRunStore` of this runner (gone on restart). */
  store?: RunStore
  /** This process as a run owner. Default `instanceId()`. */
  owner?: string
}

/** `start` when the store is full of running runs. */
export class AgentRunsFullError extends Error {
  readonly code = 'HTMX_SSE_AGENT_RUNS_FULL'
  constructor (maxRuns: number) {
    super(`agent runs: all ${maxRuns} kept runs are running`)
  }
}

/**
 * Runs prompts through a source, each on its own hub topic: the run skeleton
 * into the run slot, then out-of-band updates, then `done`. Every event is
 * published, then appended to the run's stored transcript, in order, so a
 * page rendered from the transcript continues exactly from its last entry.
 */
export class AgentRunner {
  readonly topicPrefix: string
  readonly source: AgentSource
  readonly slotId: string
  readonly maxRuns: number
  readonly store: RunStore
  readonly owner: string
  hrefOf: ((runId: string) => string) | undefined
  readonly #leaseOptions: RunLeaseOptions
  #leases: RunLeases | undefined
  #hub: SseHub | undefined
  #log: FastifyBaseLogger | undefined
  readonly #driving = new Map<string, Driving>()
  #queue: Promise<unknown> = Promise.resolve()
  #closed = false

  constructor (options: AgentRunnerOptions = {}) {
    this.topicPrefix = options.topicPrefix ?? 'agent:'
    this.source = options.source ?? simulatedAgent()
    this.slotId = options.slotId ?? 'agent-run'
    this.maxRuns = options.maxRuns ?? 100
    this.hrefOf = options.hrefOf
    this.store = options.store ?? new MemoryRunStore()
    this.owner = options.owner ?? instanceId()
    this.#leaseOptions = { leaseMs: options.leaseMs, sweepMs: options.sweepMs }
    if (!(this.maxRuns >= 1)) throw new TypeError('AgentRunner: maxRuns must be at least 1')
  }

  /** Connects the runner to a hub and starts its lease loop (done by `agentRoutes`). */
  bind (hub: SseHub, log: FastifyBaseLogger): void {
    this.#hub = hub
    this.#log = log
    this.#leases ??= new RunLeases(this.store, this.owner, AGENT_KIND, {
      onCancel: id => this.#driving.get(id)?.controller.abort(),
      onInterrupted: async run => await this.#announceInterrupted(run)
    }, log, this.#leaseOptions)
    this.#leases.start()
  }

  topicOf (runId: string): string {
    return `${this.topicPrefix}${runId}`
  }

  /** A run as stored (interrupted first if its owner's lease ran out). */
  async get (runId: string): Promise<StoredRun | undefined> {
    const run = await this.store.get(runId)
    if (run === undefined || run.kind !== AGENT_KIND) return undefined
    return this.#leases === undefined ? run : await this.#leases.settle(run)
  }

  /** The newest runs, newest first. */
  async recent (limit = this.maxRuns): Promise<StoredRun[]> {
    return await this.store.recent(AGENT_KIND, limit)
  }

  /** A fresh run id (to subscribe to its topic before `start`). */
  newId (): string {
    return newRunId()
  }

  /** Starts a run; resolves with its id once its first event is published. Rejects with `AgentRunsFullError`. */
  async start (prompt: string, runId = newRunId()): Promise<string> {
    const hub = this.#hub
    const leases = this.#leases
    if (this.#closed || hub === undefined || leases === undefined) throw new Error('agent runner is not bound or closed')
    const state = new RunState(runId, prompt)
    const drive: Driving = { state, controller: new AbortController(), entries: 0 }
    await this.#serial(async () => {
      const now = Date.now()
      const data: AgentData = { prompt }
      const { created, dropped } = await this.store.create({
        id: runId, kind: AGENT_KIND, title: prompt.slice(0, 80), status: 'running', owner: this.owner, leaseUntil: leases.until(now), startedAt: now, data
      }, this.maxRuns)
      for (const gone of dropped) await hub.forget(this.topicOf(gone)).catch(() => {})
      if (!created) throw new AgentRunsFullError(this.maxRuns)
      leases.hold(runId)
      this.#driving.set(runId, drive)
      const id = await hub.publish(this.topicOf(runId), { data: startFragment(this.slotId, state, this.hrefOf?.(runId)) })
      await this.store.update(runId, this.owner, { data: { ...data, startId: parseId(id) ?? 0 } satisfies AgentData })
    })
    void this.#drive(drive)
    return runId
  }

  /** Cancels a live run, here or (through the store) on the instance that runs it; a no-op for a finished or unknown one. */
  async cancel (runId: string): Promise<void> {
    const own = this.#driving.get(runId)
    if (own !== undefined) own.controller.abort()
    else await this.store.requestCancel(runId)
  }

  /**
   * Stops the runs this process executes. They are recorded as interrupted at
   * once (other instances need not wait for the lease) and their pages turn static.
   */
  async close (): Promise<void> {
    this.#closed = true
    await this.#leases?.stop()
    const owned = [...this.#driving.values()]
    for (const own of owned) own.controller.abort()
    await this.settled()
    for (const own of owned) {
      if (own.state.finished) continue
      await this.#serial(async () => {
        const topic = this.topicOf(own.state.runId)
        await this.#record(own, { type: 'interrupted' }, await this.#hub!.publish(topic, { data: own.state.apply({ type: 'interrupted' }) }))
        await this.#end(own)
      }).catch(() => {})
    }
  }

  /** Waits for this process's publishes in flight. */
  async settled (): Promise<void> {
    await this.#queue
  }

  /**
   * The run a page shows: its stored transcript folded, continuing after its
   * last entry (everything published later is replayed when the page connects).
   */
  async view (runId: string): Promise<AgentRunView | undefined> {
    // A head read first: a run without entries yet continues from it.
    const head = await this.#hub?.head()
    const run = await this.get(runId)
    if (run === undefined) return undefined
    const entries = await this.store.entries(runId) as Entry[]
    const state = fold(run, entries)
    const data = run.data as AgentData
    const last = entries.at(-1)?.id ?? data.startId
    return { run: state, cursor: last === undefined ? head : String(last), live: run.status === 'running' && !state.finished }
  }

  /** The run folded from exactly the entries up to `cursor` (undefined: all of them). */
  async snapshot (runId: string, cursor: string | undefined): Promise<RunState | undefined> {
    await this.settled()
    const run = await this.get(runId)
    if (run === undefined) return undefined
    const limit = parseId(cursor) ?? Infinity
    return fold(run, (await this.store.entries(runId) as Entry[]).filter(e => e.id <= limit), false)
  }

  async #serial<T> (fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn)
    this.#queue = next.catch(() => {})
    return await next
  }

  /** Appends an event to the stored transcript; false when the store says the run is no longer ours. */
  async #record (own: Driving, ev: RunEvent, hubId: string): Promise<boolean> {
    if (own.entries >= MAX_ENTRIES) return true
    own.entries++
    try {
      return await this.store.append(own.state.runId, this.owner, { id: parseId(hubId) ?? 0, ev } satisfies Entry)
    } catch (err) {
      // Unreachable store: the run goes on live; its page may miss this entry.
      this.#log?.warn({ err, run: own.state.runId }, 'agent: transcript entry not stored')
      return true
    }
  }

  /** After the last event: close the streams, record the outcome, let go of the lease. */
  async #end (own: Driving): Promise<void> {
    const runId = own.state.runId
    this.#driving.delete(runId)
    this.#leases?.release(runId)
    await this.#hub!.publish(this.topicOf(runId), DONE_EVENT)
    await this.store.update(runId, this.owner, { status: agentRunStatus(own.state.state), finishedAt: Date.now() })
  }

  async #emit (own: Driving, ev: RunEvent): Promise<void> {
    await this.#serial(async () => {
      const id = await this.#hub!.publish(this.topicOf(own.state.runId), { data: own.state.apply(ev) })
      const ours = await this.#record(own, ev, id)
      if (own.state.finished) await this.#end(own)
      else if (!ours) {
        // Interrupted by another instance (we stalled past the lease): stop quietly.
        this.#driving.delete(own.state.runId)
        this.#leases?.release(own.state.runId)
        own.controller.abort()
      }
    })
  }

  /** Another instance's run (or ours, after a stall) is over: its pages turn static with the banner. */
  async #announceInterrupted (stored: StoredRun): Promise<void> {
    const run = fold(stored, await this.store.entries(stored.id) as Entry[])
    const topic = this.topicOf(stored.id)
    await this.#hub?.publish(topic, { data: <AgentRunSnapshot run={run} href={this.hrefOf?.(stored.id)} oob /> })
    await this.#hub?.publish(topic, DONE_EVENT)
  }

  async #drive (own: Driving): Promise<void> {
    const { signal } = own.controller
    try {
      for await (const ev of coalesceWhitespace(this.source.run(own.state.prompt, signal))) {
        if (signal.aborted) break
        await this.#emit(own, ev)
        if (ev.type === 'done' || ev.type === 'error') return
      }
      if (signal.aborted) {
        if (!this.#closed && this.#driving.has(own.state.runId)) await this.#emit(own, { type: 'cancelled' })
        return
      }
      await this.#emit(own, { type: 'done' })
    } catch (err) {
      if (signal.aborted) {
        if (!this.#closed && this.#driving.has(own.state.runId)) await this.#emit(own, { type: 'cancelled' }).catch(() => {})
        return
      }
      this.#log?.warn({ err }, 'agent: run failed')
      await this.#emit(own, { type: 'error', message: err instanceof Error ? err.message : String(err) }).catch(() => {})
    }
  }
}

/**
 * A stored run's state from its entries; with `complete` (the whole
 * transcript), a run whose stored status ended it ends the fold too.
 */
function fold (run: StoredRun, entries: readonly Entry[], complete = true): RunState {
  const state = new RunState(run.id, (run.data as AgentData).prompt)
  for (const { ev } of entries) state.apply(ev)
  const ending = ENDING[run.status]
  if (complete && !state.finished && ending !== undefined) state.apply(ending)
  return state
}
