/**
 * `app.runs`: runs of the app's own work functions, kept in a run store so
 * any instance renders any run. This process holds only the work it
 * executes; pages, lists and the JSON API read the store.
 *
 * Every change is stored first, then published (a run's topic gets the
 * change, its kind's list topic the new row); a write the store refuses
 * means the run is no longer ours (another instance interrupted it after we
 * stalled), so its signal aborts and nothing more of it is published. A
 * run's writes go one at a time, in call order; progress reported while a
 * write is under way is coalesced into the next one (latest wins), so a
 * work function reporting faster than the store answers queues nothing.
 * Writes are retried with backoff through a store outage (the work's awaited
 * calls wait), never rejected into a timer.
 */
import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { SseHub } from '../plugin/hub.js'
import type { HubEvent } from '../plugin/hub.js'
import { SseInvalidOptionError, SseNotReadyError, SseRunAbortedError, SseRunEndedError, SseRunsFullError, SseInvalidRunValueError } from '../plugin/errors.js'
import { SSE_CLOSE_EVENT } from '../views/sse.js'
import { RunDetail, RunEntryUpdate, RunProgressUpdate, RunRowUpdate } from '../views/run.js'
import { retryStore, RunLeases, type RunLeaseOptions } from './lease.js'
import { instanceId, MemoryRunStore, type RunStatus, type RunStore, type StoredRun } from './store.js'
import {
  checkFraction, checkKind, checkLabel, checkTitle, jsonOf, MAX_ENTRIES, MAX_ENTRY_BYTES, MAX_RESULT_BYTES, runOf, storeKind,
  type Run, type RunContext, type RunData
} from './run.js'

export interface RunsServiceOptions extends RunLeaseOptions {
  /** Where runs are kept. Default: a `MemoryRunStore` (this process; gone when it exits). */
  store?: RunStore
  /** Runs kept per kind (running and finished); past it the oldest finished are dropped, and when all are running `start` throws. Default 100. */
  maxRuns?: number
  /** This process as a run owner. Default `instanceId()`. */
  owner?: string
}

/** Rows a kind's live list keeps (the newest runs; `recent()` returns as many). */
export const LIST_SIZE = 8

/** What `cancel` did. Of concurrent cancels of one run exactly one gets 'cancelled', 'pending' or 'requested'. */
export type CancelOutcome =
  | { result: 'cancelled', run: Run }
  /** This process stopped it; the store was unreachable, so it is recorded as cancelled once the store answers. */
  | { result: 'pending', run: Run }
  /** Another instance runs it; it finishes as cancelled when that owner next renews its lease. */
  | { result: 'requested', run: Run }
  | { result: 'already-requested', run: Run }
  /** Over, or ending (`run.status` says how). */
  | { result: 'not-running', run: Run }
  | { result: 'unknown' }

interface Ending {
  run: Run
  /** The run once its end is stored and announced; undefined when it was no longer ours. */
  done: Promise<Run | undefined>
  /** Resolves if the store fails to answer a write of the run while it ends (a cancel then answers 'pending'). */
  stalled: Promise<void>
}

/** A run this process executes. */
interface Active {
  readonly kind: string
  readonly stored: StoredRun
  readonly url: string
  readonly controller: AbortController
  data: RunData
  /** Entries appended (stored or queued). */
  entries: number
  queue: Promise<unknown>
  /** The coalesced progress write not yet started, shared by every call it covers. */
  pending: Promise<void> | undefined
  /** The work function returned or threw: calls now are a mistake. */
  workDone: boolean
  ending: Ending | undefined
  /** A write of this run is being retried (the store does not answer). */
  failing: boolean
  onStall: (() => void) | undefined
  lastProgress: string | undefined
}

type Work = (run: RunContext, signal: AbortSignal) => unknown

/** A rejected promise nobody has to handle: a call after an abort answers with the signal's reason, and ignoring it is no crash. */
function refused (reason: unknown): Promise<never> {
  const p = Promise.reject(reason)
  p.catch(() => {})
  return p
}

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err)).slice(0, 2000)

export class RunsService {
  readonly store: RunStore
  readonly owner: string
  readonly maxRuns: number
  readonly #path: string
  readonly #hub: SseHub
  readonly #log: FastifyBaseLogger | undefined
  readonly #leaseOptions: RunLeaseOptions
  readonly #leases = new Map<string, RunLeases>()
  readonly #active = new Map<string, Active>()
  readonly #closing = new AbortController()
  #closed = false

  constructor (hub: SseHub, log: FastifyBaseLogger | undefined, path: string, options: RunsServiceOptions = {}) {
    this.#hub = hub
    this.#log = log
    this.#path = path
    this.store = options.store ?? new MemoryRunStore()
    this.owner = options.owner ?? instanceId()
    this.maxRuns = options.maxRuns ?? 100
    this.#leaseOptions = { leaseMs: options.leaseMs, sweepMs: options.sweepMs }
    if (!(Number.isInteger(this.maxRuns) && this.maxRuns >= 1)) throw new SseInvalidOptionError('maxRuns (runs)', 'must be an integer of at least 1')
    // Checks leaseMs/sweepMs at registration, not at the first run.
    void new RunLeases(this.store, this.owner, '', { onCancel: () => {}, onInterrupted: async () => {} }, undefined, this.#leaseOptions)
  }

  /** The page of a run (its JSON with `Accept: application/json`). */
  urlOf (kind: string, id: string): string { return `${this.#path}/${kind}/${id}` }
  /** The hub topic of one run (`reply.live([app.runs.topicOf(kind, id)], { closeOn: 'done' })`). */
  topicOf (kind: string, id: string): string { return `run:${kind}:${id}` }
  /** The hub topic of a kind's list (rows of its newest runs, see `RunList`). */
  listTopic (kind: string): string { return `runs:${kind}` }
  /** The element id of a kind's list, which the list topic's rows target. */
  listId (kind: string): string { return `runs-${kind}` }

  /**
   * Stores a new run of `kind` and starts `work(run, signal)`; resolves with
   * the run as stored, once it is (the work goes on). Its return value is
   * the result (JSON), a throw fails it. Throws `HTMX_SSE_RUNS_FULL` when
   * `maxRuns` of the kind are running, `HTMX_SSE_INVALID_RUN_VALUE` for a bad
   * kind or title.
   */
  async start (kind: string, work: Work, options: { title?: string } = {}): Promise<Run> {
    checkKind(kind)
    const title = checkTitle(options.title, kind)
    if (typeof work !== 'function') throw new SseInvalidRunValueError(`runs.start: work must be a function (run, signal) => …, got ${typeof work}`)
    if (this.#closed) throw new SseNotReadyError('runs.start: the app is closing')
    const leases = this.#leasesOf(kind)
    const id = randomBytes(8).toString('hex')
    const data: RunData = { progress: 0 }
    const created = { id, kind: storeKind(kind), title, owner: this.owner, startedAt: Date.now(), data }
    const { created: ok, dropped } = await this.store.create(created, this.maxRuns, leases.leaseMs)
    for (const gone of dropped) await this.#hub.forget(this.topicOf(kind, gone)).catch(() => {})
    if (!ok) throw new SseRunsFullError(this.maxRuns, kind)
    const own: Active = {
      kind,
      stored: { ...created, status: 'running', leaseUntil: 0 },
      url: this.urlOf(kind, id),
      controller: new AbortController(),
      data,
      entries: 0,
      queue: Promise.resolve(),
      pending: undefined,
      workDone: false,
      ending: undefined,
      failing: false,
      onStall: undefined,
      lastProgress: undefined
    }
    leases.hold(id)
    this.#active.set(this.#key(kind, id), own)
    const run = this.#runOf(own, 'running', [])
    await this.#publishRow(run)
    void this.#execute(own, work)
    return run
  }

  /** A run as stored (interrupted first if its owner's lease ran out), or undefined. */
  async get (kind: string, id: string): Promise<Run | undefined> {
    checkKind(kind)
    let stored = await this.store.get(storeKind(kind), id)
    if (stored === undefined) return undefined
    // A running run of a kind this instance had not seen: from now on it sweeps the kind too, so its live pages hear of its end.
    if (stored.status === 'running') stored = await this.#leasesOf(kind).settle(stored)
    return runOf(stored, kind, await this.store.entries(storeKind(kind), id), this.urlOf(kind, id))
  }

  /** The newest runs of a kind, newest first (what `RunList` shows). */
  async recent (kind: string, limit = LIST_SIZE): Promise<Run[]> {
    checkKind(kind)
    const stored = await this.store.recent(storeKind(kind), limit)
    if (stored.some(r => r.status === 'running')) this.#leasesOf(kind)
    return await Promise.all(stored.map(async r => runOf(r, kind, await this.store.entries(storeKind(kind), r.id), this.urlOf(kind, r.id))))
  }

  /** Cancels a running run, here or (through the store) on the instance that runs it. */
  async cancel (kind: string, id: string): Promise<CancelOutcome> {
    checkKind(kind)
    const own = this.#active.get(this.#key(kind, id))
    if (own?.ending !== undefined) return { result: 'not-running', run: own.ending.run }
    if (own !== undefined) {
      const ending = this.#end(own, 'cancelled', new SseRunAbortedError('cancelled'))
      const first = await Promise.race([ending.done, ending.stalled.then(() => 'stalled' as const)])
      if (first === 'stalled') return { result: 'pending', run: ending.run }
      if (first !== undefined) return { result: 'cancelled', run: first }
    }
    const asked = await this.store.requestCancel(storeKind(kind), id)
    if (asked === undefined) return { result: 'unknown' }
    const run = runOf(asked.run, kind, [], this.urlOf(kind, id))
    if (run.status !== 'running') return { result: 'not-running', run }
    this.#leasesOf(kind)
    return asked.first ? { result: 'requested', run } : { result: 'already-requested', run }
  }

  /**
   * Stops the lease loops; the runs this process executes are recorded as
   * interrupted at once (their signals abort; other instances need not wait
   * for the lease) and their pages turn static.
   */
  async close (): Promise<void> {
    this.#closed = true
    await Promise.all([...this.#leases.values()].map(async l => await l.stop()))
    // Writes still being retried get one last attempt each; so do the interruptions below.
    this.#closing.abort()
    const endings = [...this.#active.values()].map(own => own.ending ?? this.#end(own, 'interrupted', new SseRunAbortedError('interrupted: the app is closing')))
    await Promise.all(endings.map(async e => await e.done))
  }

  #key (kind: string, id: string): string { return `${kind}/${id}` }

  #leasesOf (kind: string): RunLeases {
    let leases = this.#leases.get(kind)
    if (leases === undefined) {
      leases = new RunLeases(this.store, this.owner, storeKind(kind), {
        onCancel: id => {
          const own = this.#active.get(this.#key(kind, id))
          if (own !== undefined && own.ending === undefined) this.#end(own, 'cancelled', new SseRunAbortedError('cancelled'))
        },
        onInterrupted: async stored => await this.#announce(runOf(stored, kind, await this.store.entries(storeKind(kind), stored.id), this.urlOf(kind, stored.id)))
      }, this.#log, this.#leaseOptions)
      this.#leases.set(kind, leases)
      if (!this.#closed) leases.start()
    }
    return leases
  }

  #runOf (own: Active, status: RunStatus, entries: readonly unknown[], finishedAt?: number): Run {
    return runOf({ ...own.stored, status, finishedAt, data: own.data }, own.kind, entries, own.url)
  }

  #context (own: Active): RunContext {
    const { signal } = own.controller
    const gate = (what: string): void => {
      if (own.workDone) throw new SseRunEndedError(`${what}: run ${own.stored.id} is over (its work function returned); call it before returning`)
    }
    return {
      id: own.stored.id,
      kind: own.kind,
      url: own.url,
      progress: (fraction, label) => {
        checkFraction(fraction)
        checkLabel(label)
        gate('run.progress')
        if (signal.aborted) return refused(signal.reason)
        own.data = { ...own.data, progress: fraction, ...(label === undefined ? {} : { label }) }
        own.pending ??= this.#serial(own, async () => {
          own.pending = undefined
          await this.#write(own, async () => await this.store.update(storeKind(own.kind), own.stored.id, this.owner, { data: own.data }))
          const run = this.#runOf(own, 'running', [])
          const html = await (<RunProgressUpdate run={run} />)
          // Only what a page would show differently is published (a fraction finer than a percent is stored, not sent).
          if (html === own.lastProgress) return
          own.lastProgress = html
          await this.#publish(this.topicOf(own.kind, own.stored.id), { data: html })
          await this.#publishRow(run)
        })
        return own.pending
      },
      append: entry => {
        const json = jsonOf(entry, 'run.append: entry', MAX_ENTRY_BYTES)
        gate('run.append')
        if (signal.aborted) return refused(signal.reason)
        if (own.entries >= MAX_ENTRIES) throw new SseInvalidRunValueError(`run.append: a run keeps at most ${MAX_ENTRIES} entries`)
        const index = own.entries++
        const value = JSON.parse(json) as unknown
        return this.#serial(own, async () => {
          await this.#write(own, async () => await this.store.append(storeKind(own.kind), own.stored.id, this.owner, value, index))
          await this.#publish(this.topicOf(own.kind, own.stored.id), { data: <RunEntryUpdate runId={own.stored.id} index={index} entry={value} /> })
        })
      }
    }
  }

  /** Runs `fn` after the run's earlier writes; once the run's signal aborted, later writes are refused with its reason. */
  #serial (own: Active, fn: () => Promise<void>): Promise<void> {
    const next = own.queue.then(async () => {
      if (own.controller.signal.aborted) throw own.controller.signal.reason
      await fn()
    })
    own.queue = next.catch(() => {})
    next.catch(() => {})
    return next
  }

  /** One store write of a running run, retried through an outage; a refusal means it is no longer ours. */
  async #write (own: Active, write: () => Promise<boolean>): Promise<void> {
    const ours = await retryStore(write, { what: `run ${own.stored.id}`, log: this.#log, signal: this.#closing.signal, onFail: () => this.#failing(own) })
    own.failing = false
    if (!ours) {
      this.#lost(own)
      throw own.controller.signal.reason
    }
  }

  #failing (own: Active): void {
    own.failing = true
    own.onStall?.()
  }

  /** The store no longer lets us run it (another instance interrupted it, or it was dropped): stop, publish nothing. */
  #lost (own: Active): void {
    own.controller.abort(new SseRunAbortedError('no longer this instance\'s: its lease ran out and another instance ended it'))
    this.#active.delete(this.#key(own.kind, own.stored.id))
    this.#leases.get(own.kind)?.release(own.stored.id)
    this.#log?.warn({ run: own.stored.id, kind: own.kind }, 'runs: run no longer ours; stopped')
  }

  async #execute (own: Active, work: Work): Promise<void> {
    const { signal } = own.controller
    let status: RunStatus = 'done'
    let fields: Partial<RunData> = {}
    try {
      const result: unknown = await work(this.#context(own), signal)
      if (result !== undefined) fields = { result: JSON.parse(jsonOf(result, 'run result', MAX_RESULT_BYTES)) }
    } catch (err) {
      status = 'failed'
      fields = { error: messageOf(err) }
      if (!signal.aborted) this.#log?.warn({ err, run: own.stored.id, kind: own.kind }, 'runs: work failed')
    } finally {
      own.workDone = true
    }
    // Cancelled, closing or lost: the end is already decided.
    if (own.ending !== undefined || signal.aborted) return
    await this.#end(own, status, undefined, fields).done
  }

  /**
   * Ends a run this process executes: aborts its signal (for a cancel or a
   * shutdown), then, after its earlier writes, stores its end (retried
   * through an outage, the lease held meanwhile) and announces it. Never rejects.
   */
  #end (own: Active, status: RunStatus, abort?: Error, fields: Partial<RunData> = {}): Ending {
    const finishedAt = Date.now()
    own.data = { ...own.data, ...(status === 'done' ? { progress: 1 } : {}), ...fields }
    const kind = storeKind(own.kind)
    const id = own.stored.id
    const ending: Ending = {
      run: this.#runOf(own, status, [], finishedAt),
      done: Promise.resolve(undefined),
      stalled: new Promise<void>(resolve => { own.onStall = resolve })
    }
    if (own.failing) own.onStall?.()
    own.ending = ending
    // A write under way finishes first; after an abort, those queued behind it are refused with its reason.
    const before = own.queue
    if (abort !== undefined) own.controller.abort(abort)
    ending.done = (async () => {
      await before
      if (this.#active.get(this.#key(own.kind, id)) !== own) return undefined
      let attempts = 0
      try {
        const stored = await retryStore(async () => {
          if (await this.store.update(kind, id, this.owner, { status, finishedAt, data: own.data })) return true
          if (attempts++ === 0) return false
          // An earlier attempt landed but its reply was lost: the run stands as we wrote it.
          const now = await this.store.get(kind, id)
          return now?.owner === this.owner && now.status === status && now.finishedAt === finishedAt
        }, { what: `run ${id} ${status}`, log: this.#log, signal: this.#closing.signal, onFail: () => this.#failing(own) })
        if (!stored) {
          this.#lost(own)
          return undefined
        }
        this.#active.delete(this.#key(own.kind, id))
        this.#leases.get(own.kind)?.release(id)
        const run = runOf({ ...own.stored, status, finishedAt, data: own.data }, own.kind, await this.store.entries(kind, id).catch(() => []), own.url)
        await this.#announce(run)
        return run
      } catch (err) {
        // Only when closing with the store still unreachable: its lease runs out and another instance interrupts it.
        this.#active.delete(this.#key(own.kind, id))
        this.#leases.get(own.kind)?.release(id)
        this.#log?.error({ err, run: id, status }, 'runs: end not stored before closing')
        return undefined
      }
    })()
    return ending
  }

  /** A run is over: its pages get the static run (out of band, with no connection element), then the close event; lists get its row. */
  async #announce (run: Run): Promise<void> {
    const topic = this.topicOf(run.kind, run.id)
    await this.#publish(topic, { data: <RunDetail run={run} oob /> })
    await this.#publish(topic, { event: SSE_CLOSE_EVENT, data: run.status })
    await this.#publishRow(run)
  }

  async #publishRow (run: Run): Promise<void> {
    await this.#publish(this.listTopic(run.kind), { data: <RunRowUpdate list={this.listId(run.kind)} run={run} limit={LIST_SIZE} /> })
  }

  async #publish (topic: string, event: HubEvent): Promise<void> {
    try {
      await this.#hub.publish(topic, event)
    } catch (err) {
      // Stored all the same: a page that reloads shows it.
      this.#log?.warn({ err, topic }, 'runs: publish failed')
    }
  }
}
