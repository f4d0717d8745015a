/**
 * Runs (jobs, agent runs) as stored state: a page decides live or static from
 * the store, never from the memory of the process that executes the run. An
 * owner holds a lease on each run it executes and renews it; a run whose
 * lease ran out is `interrupted` (its owner died), set by whichever instance
 * notices first.
 *
 * `MemoryRunStore` is the embedded default: one process, gone on restart.
 * `RedisRunStore` (`fastify-htmx-sse/routes/redis`) shares runs between
 * instances on the Redis the hub already uses, and keeps them across restarts.
 */
import { hostname } from 'node:os'
import type { RunStatus } from '../views/index.js'

/** One run as stored. `data` is the runner's own JSON state (job progress, an agent's prompt). */
export interface StoredRun {
  readonly id: string
  /** Which runner it belongs to ('job', 'agent'); lists and bounds are per kind. */
  readonly kind: string
  readonly title: string
  readonly status: RunStatus
  /** The instance executing it (see `instanceId`). */
  readonly owner: string
  /** While running: the owner is presumed alive until then (ms since the epoch). */
  readonly leaseUntil: number
  readonly startedAt: number
  readonly finishedAt?: number
  /** Set by `requestCancel` on any instance; the owner sees it when it renews. */
  readonly cancelRequested?: boolean
  readonly data: unknown
}

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

export interface RunStore {
  /** Stores a new run, dropping the oldest finished runs of its kind past `maxRuns`. */
  create: (run: StoredRun, maxRuns: number) => Promise<CreateResult>
  get: (id: string) => Promise<StoredRun | undefined>
  /** The newest `limit` runs of a kind, newest first. */
  recent: (kind: string, limit: number) => Promise<StoredRun[]>
  /**
   * The owner's write. False (and nothing written) when the run is unknown, no
   * longer running, or held by another owner: the owner must stop executing it.
   * A patch whose status is not 'running' finishes the run.
   */
  update: (id: string, owner: string, patch: RunPatch) => Promise<boolean>
  /** Appends to a running run's transcript (same owner rule as `update`). */
  append: (id: string, owner: string, entry: unknown) => Promise<boolean>
  /** The transcript, oldest first. */
  entries: (id: string) => Promise<unknown[]>
  /** Extends the lease of the owner's running runs; resolves with those of them that have a cancel request. */
  renew: (owner: string, ids: readonly string[], leaseUntil: number) => Promise<string[]>
  /** Asks the owner of a running run to cancel it. Resolves with the run as stored (undefined: unknown). */
  requestCancel: (id: string) => Promise<StoredRun | undefined>
  /** Ids of running runs of a kind whose lease ended before `now`. */
  expired: (kind: string, now: number) => Promise<string[]>
  /**
   * Marks a running run whose lease ended before `now` as interrupted, at
   * `now`. Resolves with the updated run when this call did it (exactly one
   * caller wins), undefined otherwise.
   */
  interrupt: (id: string, now: number) => Promise<StoredRun | undefined>
}

interface Held {
  run: StoredRun
  entries: unknown[]
}

/** The embedded store: one process; everything is gone when it exits. */
export class MemoryRunStore implements RunStore {
  /** Insertion (= start) order, so the first finished one found is the oldest. */
  readonly #runs = new Map<string, Held>()

  async create (run: StoredRun, maxRuns: number): Promise<CreateResult> {
    if (this.#runs.has(run.id)) throw new Error(`run ${run.id} exists`)
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
    this.#runs.set(run.id, { run: copy(run), entries: [] })
    return { created: true, dropped }
  }

  async get (id: string): Promise<StoredRun | undefined> {
    const held = this.#runs.get(id)
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

  async update (id: string, owner: string, patch: RunPatch): Promise<boolean> {
    const held = this.#held(id, owner)
    if (held === undefined) return false
    held.run = copy({ ...held.run, ...patch })
    return true
  }

  async append (id: string, owner: string, entry: unknown): Promise<boolean> {
    const held = this.#held(id, owner)
    if (held === undefined) return false
    held.entries.push(copy(entry))
    return true
  }

  async entries (id: string): Promise<unknown[]> {
    return copy(this.#runs.get(id)?.entries ?? [])
  }

  async renew (owner: string, ids: readonly string[], leaseUntil: number): Promise<string[]> {
    const cancel: string[] = []
    for (const id of ids) {
      const held = this.#held(id, owner)
      if (held === undefined) continue
      held.run = { ...held.run, leaseUntil }
      if (held.run.cancelRequested === true) cancel.push(id)
    }
    return cancel
  }

  async requestCancel (id: string): Promise<StoredRun | undefined> {
    const held = this.#runs.get(id)
    if (held === undefined) return undefined
    if (held.run.status === 'running') held.run = { ...held.run, cancelRequested: true }
    return copy(held.run)
  }

  async expired (kind: string, now: number): Promise<string[]> {
    return [...this.#runs.values()]
      .filter(h => h.run.kind === kind && h.run.status === 'running' && h.run.leaseUntil < now)
      .map(h => h.run.id)
  }

  async interrupt (id: string, now: number): Promise<StoredRun | undefined> {
    const held = this.#runs.get(id)
    if (held === undefined || held.run.status !== 'running' || held.run.leaseUntil >= now) return undefined
    held.run = { ...held.run, status: 'interrupted', finishedAt: now }
    return copy(held.run)
  }

  #held (id: string, owner: string): Held | undefined {
    const held = this.#runs.get(id)
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
