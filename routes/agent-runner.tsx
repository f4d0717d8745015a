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
import { retryStore, RunLeases, type RunLeaseOptions } from './run-lease.js'
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
  /** Hub id of the run's last event, stored when it ends (so a cursor can place its last entry). */
  endId?: number
}

/**
 * One transcript entry. An event is recorded BEFORE it is published (only
 * what the store accepted while the run was ours is ever published), so an
 * entry cannot carry its own hub id: it carries `after`, the hub id of the
 * run's previous published event. The id entry k was published with is
 * therefore entry k+1's `after` (the run's `endId` for the last one).
 * Entries with `id` (their own hub id) are from before this scheme.
 */
interface Entry {
  after?: number
  id?: number
  ev: RunEvent
}

/** Entries recorded per run; past it a run still streams (each event checked against the store first) but its page shows the first ones. */
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
  data: AgentData
  /** Entries recorded. */
  entries: number
  /** Hub id of the run's last published event. */
  lastId: number
  /** This run's store writes and publishes, in order. */
  queue: Promise<unknown>
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
 * appended to the run's stored transcript, then published, in order: the
 * store's append is the check that the run is still this owner's and still
 * running, so an owner that stalled past its lease (and was interrupted by
 * another instance) publishes nothing after the interruption. Store failures
 * are retried with backoff (the source waits), never rejected into a timer.
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
  /** Work in flight (each run's queue), for `settled`. */
  readonly #inFlight = new Set<Promise<unknown>>()
  readonly #closing = new AbortController()
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
    const run = await this.store.get(AGENT_KIND, runId)
    if (run === undefined) return undefined
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
    const data: AgentData = { prompt }
    const { created, dropped } = await this.store.create({
      id: runId, kind: AGENT_KIND, title: prompt.slice(0, 80), owner: this.owner, startedAt: Date.now(), data
    }, this.maxRuns, leases.leaseMs)
    for (const gone of dropped) await hub.forget(this.topicOf(gone)).catch(() => {})
    if (!created) throw new AgentRunsFullError(this.maxRuns)
    const own: Driving = { state: new RunState(runId, prompt), controller: new AbortController(), data, entries: 0, lastId: 0, queue: Promise.resolve() }
    leases.hold(runId)
    this.#driving.set(runId, own)
    try {
      own.lastId = parseId(await hub.publish(this.topicOf(runId), { data: startFragment(this.slotId, own.state, this.hrefOf?.(runId)) })) ?? 0
    } catch (err) {
      // Not started: nobody will drive it, so it must not stay running.
      this.#driving.delete(runId)
      leases.release(runId)
      await this.store.update(AGENT_KIND, runId, this.owner, { status: 'failed', finishedAt: Date.now() }).catch(() => {})
      throw err
    }
    own.data = { ...data, startId: own.lastId }
    // Only a shortcut for a page rendered before the first entry (entries carry it too).
    await this.store.update(AGENT_KIND, runId, this.owner, { data: own.data })
      .catch((err: unknown) => this.#log?.warn({ err, run: runId }, 'agent: start id not stored'))
    void this.#drive(own)
    return runId
  }

  /** Cancels a live run, here or (through the store) on the instance that runs it; a no-op for a finished or unknown one. */
  async cancel (runId: string): Promise<void> {
    const own = this.#driving.get(runId)
    if (own !== undefined) own.controller.abort()
    else await this.store.requestCancel(AGENT_KIND, runId)
  }

  /**
   * Stops the runs this process executes. They are recorded as interrupted at
   * once (other instances need not wait for the lease) and their pages turn
   * static. Store writes still being retried get one last attempt.
   */
  async close (): Promise<void> {
    this.#closed = true
    this.#closing.abort()
    await this.#leases?.stop()
    const owned = [...this.#driving.values()]
    for (const own of owned) own.controller.abort()
    await this.settled()
    for (const own of owned) {
      if (own.state.finished || this.#driving.get(own.state.runId) !== own) continue
      await this.#emit(own, { type: 'interrupted' }).catch(() => {})
    }
  }

  /** Waits for this process's store writes and publishes in flight. */
  async settled (): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight])
  }

  /**
   * The run a page shows: its stored transcript folded up to the last entry
   * known to be published, continuing after it (everything published later,
   * the newest entry included, is replayed when the page connects).
   */
  async view (runId: string): Promise<AgentRunView | undefined> {
    // A head read first: a run without a known id yet continues from it.
    const head = await this.#hub?.head()
    const run = await this.get(runId)
    if (run === undefined) return undefined
    const entries = await this.store.entries(AGENT_KIND, runId) as Entry[]
    const data = run.data as AgentData
    const ids = publishedIds(entries, data)
    let known = 0
    while (known < entries.length && ids[known] !== undefined) known++
    const last = known > 0 ? ids[known - 1] : data.startId ?? entries[0]?.after
    const cursor = last === undefined ? head : String(last)
    if (run.status !== 'running') return { run: fold(run, entries), cursor, live: false }
    const state = fold(run, entries.slice(0, known), false)
    return { run: state, cursor, live: !state.finished }
  }

  /** The run folded from exactly the entries published up to `cursor` (undefined: all of them). */
  async snapshot (runId: string, cursor: string | undefined): Promise<RunState | undefined> {
    await this.settled()
    const run = await this.get(runId)
    if (run === undefined) return undefined
    const entries = await this.store.entries(AGENT_KIND, runId) as Entry[]
    const limit = parseId(cursor)
    if (limit === undefined) return fold(run, entries, false)
    const ids = publishedIds(entries, run.data as AgentData)
    let upTo = 0
    while (upTo < entries.length && ids[upTo] !== undefined && ids[upTo]! <= limit) upTo++
    return fold(run, entries.slice(0, upTo), false)
  }

  /** Runs `fn` after the run's earlier work (its events stay in order); other runs do not wait. */
  async #serial<T> (own: Driving, fn: () => Promise<T>): Promise<T> {
    const next = own.queue.then(fn)
    const tail = next.catch(() => {})
    own.queue = tail
    this.#inFlight.add(tail)
    void tail.then(() => this.#inFlight.delete(tail))
    return await next
  }

  /**
   * Records an event (retrying while the store is unreachable: it must be
   * recorded before it is published). False when the store says the run is
   * no longer ours (interrupted by another instance, say).
   */
  async #record (own: Driving, ev: RunEvent): Promise<boolean> {
    const runId = own.state.runId
    const retry = { what: `agent run ${runId} transcript`, log: this.#log, signal: this.#closing.signal }
    if (own.entries >= MAX_ENTRIES) {
      // Not recorded any more; still never published unless the run is ours.
      const run = await retryStore(async () => await this.store.get(AGENT_KIND, runId), retry)
      return run?.status === 'running' && run.owner === this.owner
    }
    const index = own.entries
    const entry: Entry = { after: own.lastId, ev }
    // With its index the append is safe to retry: an attempt that landed but lost its reply is not doubled.
    const ours = await retryStore(async () => await this.store.append(AGENT_KIND, runId, this.owner, entry, index), retry)
    if (ours) own.entries++
    return ours
  }

  /** Records the outcome (retried until the store answers), lets go of the lease, then closes the streams. */
  async #end (own: Driving): Promise<void> {
    const runId = own.state.runId
    this.#driving.delete(runId)
    const status = agentRunStatus(own.state.state)
    const finishedAt = Date.now()
    const data: AgentData = { ...own.data, endId: own.lastId }
    let attempts = 0
    let stored = false
    try {
      stored = await retryStore(async () => {
        if (await this.store.update(AGENT_KIND, runId, this.owner, { status, finishedAt, data })) return true
        if (attempts++ === 0) return false
        // An earlier attempt landed but its reply was lost: the run stands as we wrote it.
        const now = await this.store.get(AGENT_KIND, runId)
        return now?.owner === this.owner && now.status === status && now.finishedAt === finishedAt
      }, { what: `agent run ${runId} ${status}`, log: this.#log, signal: this.#closing.signal })
    } catch (err) {
      this.#log?.error({ err, run: runId, status }, 'agent: end not stored before closing')
    } finally {
      this.#leases?.release(runId)
    }
    // Not stored: another instance interrupted it and announced that itself.
    if (stored) await this.#publish(own, DONE_EVENT)
  }

  async #publish (own: Driving, event: SseEvent): Promise<void> {
    try {
      own.lastId = parseId(await this.#hub!.publish(this.topicOf(own.state.runId), event)) ?? own.lastId
    } catch (err) {
      // Recorded all the same: a page that reloads shows it.
      this.#log?.warn({ err, run: own.state.runId }, 'agent: publish failed')
    }
  }

  /** Records, then publishes, one event; nothing once the run is no longer ours. */
  async #emit (own: Driving, ev: RunEvent): Promise<void> {
    await this.#serial(own, async () => {
      const runId = own.state.runId
      if (this.#driving.get(runId) !== own) return
      if (!await this.#record(own, ev)) {
        // Interrupted by another instance (we stalled past the lease): stop quietly.
        this.#driving.delete(runId)
        this.#leases?.release(runId)
        own.controller.abort()
        this.#log?.warn({ run: runId }, 'agent: run no longer ours; stopped')
        return
      }
      await this.#publish(own, { data: own.state.apply(ev) })
      if (own.state.finished) await this.#end(own)
    })
  }

  /** Another instance's run (or ours, after a stall) is over: its pages turn static with the banner. */
  async #announceInterrupted (stored: StoredRun): Promise<void> {
    const run = fold(stored, await this.store.entries(AGENT_KIND, stored.id) as Entry[])
    const topic = this.topicOf(stored.id)
    await this.#hub?.publish(topic, { data: <AgentRunSnapshot run={run} href={this.hrefOf?.(stored.id)} oob /> })
    await this.#hub?.publish(topic, DONE_EVENT)
  }

  async #drive (own: Driving): Promise<void> {
    const { signal } = own.controller
    const cancelled = async (): Promise<void> => {
      if (!this.#closed && this.#driving.get(own.state.runId) === own) await this.#emit(own, { type: 'cancelled' }).catch(() => {})
    }
    try {
      for await (const ev of coalesceWhitespace(this.source.run(own.state.prompt, signal))) {
        if (signal.aborted) break
        await this.#emit(own, ev)
        if (ev.type === 'done' || ev.type === 'error') return
      }
      if (signal.aborted) return await cancelled()
      await this.#emit(own, { type: 'done' })
    } catch (err) {
      if (signal.aborted) return await cancelled()
      this.#log?.warn({ err }, 'agent: run failed')
      await this.#emit(own, { type: 'error', message: err instanceof Error ? err.message : String(err) }).catch(() => {})
    }
  }
}

/** The hub id each entry was published with, where known (see `Entry`). */
function publishedIds (entries: readonly Entry[], data: AgentData): Array<number | undefined> {
  return entries.map((e, i) => e.id ?? (i + 1 < entries.length ? entries[i + 1]!.after : data.endId))
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
