/**
 * Runs (jobs, agent runs) as stored state: a page decides live or static from
 * the store, never from the memory of the process that executes the run. An
 * owner holds a lease on each run it executes and renews it; a run whose
 * lease ran out is `interrupted` (its owner died), set by whichever instance
 * notices first.
 *
 * `MemoryRunStore` is the embedded default: one process, gone on restart.
 * `RedisRunStore` (`fastify-htmx-sse/runs/redis`) shares runs between
 * instances on the Redis the hub already uses, and keeps them across restarts.
 */
import { hostname } from 'node:os'
import { SseInvalidOptionError } from '../plugin/errors.js'

/**
 * Where a run stands. `interrupted`: the instance running it stopped (its
 * lease ran out) before it finished. The views take the same strings as plain
 * props (views/run.tsx), and never import this module.
 */
export const RUN_STATUSES = ['running', 'done', 'failed', 'cancelled', 'interrupted'] as const
export type RunStatus = typeof RUN_STATUSES[number]

/** One run as stored. `data` is the runner's own JSON state (job progress, an agent's prompt). */
export interface StoredRun {
  readonly id: string
  /** Which runner it belongs to ('job', 'agent'); lists, bounds and every by-id call are per kind. */
  readonly kind: string
  readonly title: string
  readonly status: RunStatus
  /** The instance executing it (see `instanceId`). */
  readonly owner: string
  /**
   * While running: the owner is presumed alive until then, in the STORE's
   * clock (Redis `TIME` for `RedisRunStore`). Only the store compares it, so
   * instances whose clocks disagree never judge each other's leases.
   */
  readonly leaseUntil: number
  readonly startedAt: number
  readonly finishedAt?: number
  /** Set by `requestCancel` on any instance; the owner sees it when it renews. */
  readonly cancelRequested?: boolean
  readonly data: unknown
}

/** A run to create: it starts running, with a lease the store computes. */
export type NewRun = Omit<StoredRun, 'status' | 'leaseUntil' | 'finishedAt' | 'cancelRequested'>

/** What an owner may change on a run it holds. */
export interface RunPatch {
  status?: RunStatus
  data?: unknown
  finishedAt?: number
}

export interface CreateResult {
  /** False when the kind is full of running runs (nothing was stored). */
  readonly created: boolean
  /** Finished runs dropped to make room (their hub topics can be forgotten). */
  readonly dropped: readonly string[]
}

export interface CancelRequest {
  /** The run as stored after the call. */
  readonly run: StoredRun
  /** True for the one call that set the request (the run was running without one). */
  readonly first: boolean
}

/**
 * Every by-id call names the kind: a run of another kind is answered as
 * unknown and never changed (a job route cannot cancel an agent run). Times
 * that decide anything (lease ends, expiry, the moment of an interruption)
 * are read from the store's own clock; callers pass durations.
 */
export interface RunStore {
  /** Stores a new running run with a lease of `leaseMs` from now, dropping the oldest finished runs of its kind past `maxRuns`. */
  create: (run: NewRun, maxRuns: number, leaseMs: number) => Promise<CreateResult>
  get: (kind: string, id: string) => Promise<StoredRun | undefined>
  /** The newest `limit` runs of a kind, newest first. */
  recent: (kind: string, limit: number) => Promise<StoredRun[]>
  /**
   * The owner's write. False (and nothing written) when the run is unknown, no
   * longer running, or held by another owner: the owner must stop executing it.
   * A patch whose status is not 'running' finishes the run.
   */
  update: (kind: string, id: string, owner: string, patch: RunPatch) => Promise<boolean>
  /**
   * Appends to a running run's transcript (same owner rule as `update`).
   * With `index` (the number of entries before this one) the call is safe to
   * retry: when the transcript already holds more than `index` entries, an
   * earlier attempt landed, and it resolves true without writing again.
   */
  append: (kind: string, id: string, owner: string, entry: unknown, index?: number) => Promise<boolean>
  /** The transcript, oldest first. */
  entries: (kind: string, id: string) => Promise<unknown[]>
  /** Extends the lease of the owner's running runs to `leaseMs` from now; resolves with those of them that have a cancel request. */
  renew: (kind: string, owner: string, ids: readonly string[], leaseMs: number) => Promise<string[]>
  /** Asks the owner of a running run to cancel it (undefined: unknown). */
  requestCancel: (kind: string, id: string) => Promise<CancelRequest | undefined>
  /** Ids of running runs of a kind whose lease has ended. */
  expired: (kind: string) => Promise<string[]>
  /**
   * Marks a running run whose lease has ended as interrupted, at the store's
   * now. Resolves with the updated run when this call did it (exactly one
   * caller wins), undefined otherwise.
   */
  interrupt: (kind: string, id: string) => Promise<StoredRun | undefined>
}

interface Held {
  run: StoredRun
  entries: unknown[]
}

/** The embedded store: one process; everything is gone when it exits. */
export class MemoryRunStore implements RunStore {
  /** Insertion (= start) order, so the first finished one found is the oldest. */
  readonly #runs = new Map<string, Held>()

  async create (run: NewRun, maxRuns: number, leaseMs: number): Promise<CreateResult> {
    if (this.#runs.has(run.id)) throw new SseInvalidOptionError('id (RunStore.create)', `${JSON.stringify(run.id)} is taken by another run`)
    const ofKind = [...this.#runs.values()].filter(h => h.run.kind === run.kind)
    const dropped: string[] = []
    let excess = ofKind.length + 1 - maxRuns
    for (const held of ofKind) {
      if (excess <= 0) break
      if (held.run.status === 'running') continue
      this.#runs.delete(held.run.id)
      dropped.push(held.run.id)
      excess--
    }
    if (excess > 0) return { created: false, dropped }
    const { status: _s, leaseUntil: _l, finishedAt: _f, cancelRequested: _c, ...fixed } = run as Partial<StoredRun>
    this.#runs.set(run.id, { run: copy({ ...fixed, status: 'running', leaseUntil: Date.now() + leaseMs } as StoredRun), entries: [] })
    return { created: true, dropped }
  }

  async get (kind: string, id: string): Promise<StoredRun | undefined> {
    const held = this.#ofKind(kind, id)
    return held === undefined ? undefined : copy(held.run)
  }

  async recent (kind: string, limit: number): Promise<StoredRun[]> {
    const out: StoredRun[] = []
    for (const held of [...this.#runs.values()].reverse()) {
      if (out.length >= limit) break
      if (held.run.kind === kind) out.push(copy(held.run))
    }
    return out
  }

  async update (kind: string, id: string, owner: string, patch: RunPatch): Promise<boolean> {
    const held = this.#held(kind, id, owner)
    if (held === undefined) return false
    held.run = copy({ ...held.run, ...patch })
    return true
  }

  async append (kind: string, id: string, owner: string, entry: unknown, index?: number): Promise<boolean> {
    const held = this.#held(kind, id, owner)
    if (held === undefined) return false
    if (index !== undefined && held.entries.length > index) return true
    held.entries.push(copy(entry))
    return true
  }

  async entries (kind: string, id: string): Promise<unknown[]> {
    return copy(this.#ofKind(kind, id)?.entries ?? [])
  }

  async renew (kind: string, owner: string, ids: readonly string[], leaseMs: number): Promise<string[]> {
    const cancel: string[] = []
    const leaseUntil = Date.now() + leaseMs
    for (const id of ids) {
      const held = this.#held(kind, id, owner)
      if (held === undefined) continue
      held.run = { ...held.run, leaseUntil }
      if (held.run.cancelRequested === true) cancel.push(id)
    }
    return cancel
  }

  async requestCancel (kind: string, id: string): Promise<CancelRequest | undefined> {
    const held = this.#ofKind(kind, id)
    if (held === undefined) return undefined
    const first = held.run.status === 'running' && held.run.cancelRequested !== true
    if (first) held.run = { ...held.run, cancelRequested: true }
    return { run: copy(held.run), first }
  }

  async expired (kind: string): Promise<string[]> {
    const now = Date.now()
    return [...this.#runs.values()]
      .filter(h => h.run.kind === kind && h.run.status === 'running' && h.run.leaseUntil < now)
      .map(h => h.run.id)
  }

  async interrupt (kind: string, id: string): Promise<StoredRun | undefined> {
    const held = this.#ofKind(kind, id)
    const now = Date.now()
    if (held === undefined || held.run.status !== 'running' || held.run.leaseUntil >= now) return undefined
    held.run = { ...held.run, status: 'interrupted', finishedAt: now }
    return copy(held.run)
  }

  #ofKind (kind: string, id: string): Held | undefined {
    const held = this.#runs.get(id)
    return held?.run.kind === kind ? held : undefined
  }

  #held (kind: string, id: string, owner: string): Held | undefined {
    const held = this.#ofKind(kind, id)
    return held !== undefined && held.run.status === 'running' && held.run.owner === owner ? held : undefined
  }
}

/** Stored values are JSON: a copy is what a Redis store would give back, so callers cannot tell the stores apart. */
function copy<T> (value: T): T {
  return JSON.parse(JSON.stringify(value)) as T
}

/** A name for this process as a run owner: host, pid and a random part (a restarted process is a new owner). */
export function instanceId (): string {
  return `${hostname().replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 40)}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
}
