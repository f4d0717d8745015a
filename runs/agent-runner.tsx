/**
 * Agent runs: `AgentRunner` executes runs on hub topics and records them in
 * a run store, so any instance renders a run's transcript and continues it
 * live. What an agent emits and the bundled simulator are in agent-source.ts,
 * the fold of a run's events into page fragments in agent-render.tsx (both
 * re-exported here).
 */
import type { FastifyBaseLogger } from 'fastify'
import type { SseHub } from '../plugin/hub.js'
import type { SseEvent } from '../plugin/stream.js'
import { parseId } from '../plugin/transport.js'
import { agentRunStatus } from '../views/agent.js'
import type { RunStatus } from './store.js'
import { retryStore, RunLeases, type RunLeaseOptions } from './lease.js'
import { instanceId, MemoryRunStore, type RunStore, type StoredRun } from './store.js'
import { coalesceWhitespace, simulatedAgent, type AgentSource } from './agent-source.js'
import { AgentRunSnapshot, DONE_EVENT, newRunId, RunState, startFragment, type RunEvent } from './agent-render.js'
import { SseInvalidOptionError, SseNotReadyError } from '../plugin/errors.js'

export { coalesceWhitespace, simulatedAgent, type AgentEvent, type AgentSource, type SimulatedAgentOptions } from './agent-source.js'

export { AgentRunSnapshot, agentEvents, DONE_EVENT, newRunId, RUN_ID, RunState, type RunEvent } from './agent-render.js'

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
    if (!(this.maxRuns >= 1)) throw new SseInvalidOptionError('maxRuns (AgentRunner)', 'must be at least 1')
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
    if (this.#closed || hub === undefined || leases === undefined) throw new SseNotReadyError('AgentRunner: not bound to a hub (register agentRoutes), or closed')
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
