/**
 * Redis run store (`fastify-htmx-sse/runs/redis`): runs shared by every
 * instance on the Redis the hub already uses, and kept across restarts of
 * the instances (Redis ≥ 5, ioredis 5).
 *
 * Keys (prefix `runs` by default):
 * - `runs:r:<id>`       hash, one run. `status`, `owner`, `kind` and `leaseUntil`
 *                       are what the scripts decide on; `finishedAt`, `cancel`
 *                       (cancelRequested) and `data` are JSON text, present only
 *                       when the run has them; `json` is the JSON of the rest
 *                       (id, title, startedAt), which nothing changes after create.
 * - `runs:k:<kind>`     zset of a kind's runs scored by startedAt: `recent` and the bound.
 * - `runs:lease:<kind>` zset of a kind's running runs scored by leaseUntil, so
 *                       `expired` is one range read instead of a scan.
 * - `runs:e:<id>`       list, the transcript: one JSON text per entry.
 *
 * The scripts never decode JSON: the runner's values are encoded and decoded
 * by JSON.stringify/JSON.parse only, so they come back exactly as
 * MemoryRunStore's copies do (cjson would turn `[]` into `{}` and reformat
 * numbers), and a patch is `{ ...run, ...patch }` field by field (a field
 * patched to undefined is removed, as in a JSON copy).
 *
 * Every change that depends on what is stored is one Lua script (atomic),
 * because each is a check followed by a write: is the run still running and
 * ours (update, append, renew), has its lease ended (interrupt), is the kind
 * full (create). Two instances doing the check and the write as separate
 * commands could both pass the check: a dead owner's late write would land on
 * an interrupted run, two sweeps would both announce the interruption, two
 * creates would both take the last place. Scripts that answer with a run
 * return it from inside the script, so the caller gets the state its own
 * change produced, not one a later change (or a drop) made.
 *
 * One clock: lease ends are Redis `TIME` plus the duration the owner asks
 * for (create, renew), and expiry and the instant of an interruption are
 * judged against Redis `TIME` inside the scripts. No instance's own clock
 * decides whether another instance's run is alive, so clock skew between
 * instances cannot interrupt a healthy run. Every by-id script checks the
 * run's kind too: a run of another kind is answered as unknown.
 *
 * Outage: every call waits at most `commandTimeoutMs` for the connection and
 * the reply, then rejects with `run store: redis unavailable: …` (code
 * HTMX_SSE_RUN_STORE_UNAVAILABLE, which the route modules answer with 503).
 * Nothing is left in ioredis's offline queue. Each write carries a deadline
 * in Redis's clock (the offset is learned from every write's reply) and its
 * script refuses to apply after it, so a write ioredis resends after a
 * reconnect, or one stuck behind a slow Redis, cannot land long after its
 * caller was told it failed (an interrupt nobody announces, a run created
 * for a request that got a 503). A write that timed out may still have been
 * applied just before its deadline (the reply, not the command, was lost).
 *
 * Not supported: ioredis `keyPrefix` on the client (rejected; use `prefix`),
 * and Cluster (untested; the scripts touch keys they derive from the prefix
 * and the stored kind, so at least a hash-tagged prefix like `{runs}` is needed).
 */
import type { Redis } from 'ioredis'
import { scripts, type Script } from './store-redis-scripts.js'
import type { CancelRequest, CreateResult, NewRun, RunPatch, RunStore, StoredRun } from './store.js'
import { SseInvalidEventError, SseInvalidOptionError, SseRedisError } from '../plugin/errors.js'

export interface RedisRunStoreOptions {
  /** Your ioredis client (the one the hub's transport uses). Never closed here. */
  redis: Redis
  /** Key prefix. Default `runs`. */
  prefix?: string
  /** Bound on each call: waiting for the connection, then for the reply. Default 2 000 ms. */
  commandTimeoutMs?: number
}

/** Redis could not be reached in time (or the connection failed); a write that "timed out" may have been applied just before its deadline. */
export class RunStoreUnavailableError extends Error {
  readonly code = 'HTMX_SSE_RUN_STORE_UNAVAILABLE'
  readonly statusCode = 503
  constructor (reason: string, options?: { cause?: unknown }) {
    super(`run store: redis unavailable: ${reason}`, options)
    this.name = 'RunStoreUnavailableError'
  }
}

/** The fields of a run that scripts change, stored as JSON text when present. */
const JSON_FIELDS = [['finishedAt', 'finishedAt'], ['cancelRequested', 'cancel'], ['data', 'data']] as const

const noop = (): void => {}

function describe (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** Numbers the scripts compare or score by: a Redis store cannot hold NaN or ±Infinity there. */
function finite (name: string, value: number): string {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new SseInvalidOptionError(`${name} (RedisRunStore)`, `must be a finite number, got ${String(value)}`)
  return String(value)
}

/** A lease length: whole ms (Lua prints large doubles in exponent form otherwise). */
function duration (ms: number): string {
  return finite('leaseMs', Math.round(ms))
}

function text (name: string, value: string): string {
  if (typeof value !== 'string') throw new SseInvalidOptionError(`${name} (RedisRunStore)`, `must be a string, got ${typeof value}`)
  return value
}

/** The hash fields of a new run (status and lease are the script's). */
function fieldsOf (run: NewRun): string[] {
  // Whatever a caller passes beyond NewRun (a StoredRun's status, lease…) is not the new run's.
  const { owner, kind, data, status: _s, leaseUntil: _l, finishedAt: _f, cancelRequested: _c, ...fixed } = run as NewRun & Partial<StoredRun>
  const fields = ['json', JSON.stringify(fixed), 'owner', text('owner', owner), 'kind', text('kind', kind)]
  const json = JSON.stringify(data)
  if (json !== undefined) fields.push('data', json)
  return fields
}

/** A run from its hash (as HGETALL gives it: an object, or a flat array from a script). */
function runOf (hash: Record<string, string> | readonly string[]): StoredRun | undefined {
  const h: Record<string, string | undefined> = Array.isArray(hash) ? pairs(hash) : hash as Record<string, string>
  if (h.json === undefined) return undefined
  const run = JSON.parse(h.json) as Record<string, unknown>
  run.kind = h.kind
  run.owner = h.owner
  if (h.status !== undefined) run.status = h.status
  run.leaseUntil = Number(h.leaseUntil)
  for (const [name, field] of JSON_FIELDS) {
    const json = h[field]
    if (json !== undefined) run[name] = JSON.parse(json)
  }
  return run as unknown as StoredRun
}

function pairs (flat: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!
  return out
}

export class RedisRunStore implements RunStore {
  readonly #redis: Redis
  readonly #prefix: string
  readonly #timeoutMs: number
  /** Redis clock minus ours, in ms, once a write has told us. */
  #offset: number | undefined

  constructor (options: RedisRunStoreOptions) {
    const redis = options?.redis
    if (redis === null || typeof redis !== 'object' || typeof redis.evalsha !== 'function' || typeof redis.once !== 'function') {
      throw new SseInvalidOptionError('redis (RedisRunStore)', 'must be an ioredis client (new Redis(url))')
    }
    if (typeof redis.options?.keyPrefix === 'string' && redis.options.keyPrefix !== '') {
      throw new SseInvalidOptionError('redis (RedisRunStore)', 'is an ioredis client with keyPrefix set; use the store option prefix instead')
    }
    const prefix = options.prefix ?? 'runs'
    if (typeof prefix !== 'string' || prefix === '' || /\s/.test(prefix)) throw new SseInvalidOptionError('prefix (RedisRunStore)', 'must be a non-empty string without spaces')
    const timeoutMs = options.commandTimeoutMs ?? 2000
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) throw new SseInvalidOptionError('commandTimeoutMs (RedisRunStore)', `must be an integer >= 1, got ${String(timeoutMs)}`)
    this.#redis = redis
    this.#prefix = prefix
    this.#timeoutMs = timeoutMs
  }

  async create (run: NewRun, maxRuns: number, leaseMs: number): Promise<CreateResult> {
    const id = text('id', run.id)
    const fields = fieldsOf(run)
    const startedAt = finite('startedAt', run.startedAt)
    const lease = duration(leaseMs)
    if (typeof maxRuns !== 'number' || Number.isNaN(maxRuns)) throw new SseInvalidOptionError('maxRuns (RedisRunStore)', `must be a number, got ${String(maxRuns)}`)
    // Lua numbers are doubles too; only ±Infinity needs a stand-in.
    const max = Math.max(-1e15, Math.min(1e15, maxRuns))
    const [created, dropped] = await this.#write(`create run "${id}"`, scripts.create,
      [this.#run(id), this.#byKind(run.kind), this.#leases(run.kind), this.#entries(id)],
      [this.#prefix, id, max, startedAt, lease, ...fields]) as [number, string[]]
    return { created: created === 1, dropped }
  }

  async get (kind: string, id: string): Promise<StoredRun | undefined> {
    text('kind', kind)
    const run = runOf(await this.#call(`get run "${id}"`, async () => await this.#redis.hgetall(this.#run(id))))
    return run?.kind === kind ? run : undefined
  }

  async recent (kind: string, limit: number): Promise<StoredRun[]> {
    if (!(limit > 0)) return []
    const stop = Number.isFinite(limit) ? Math.ceil(limit) - 1 : -1
    const hashes = await this.#call(`recent runs of kind "${kind}"`,
      async () => await scripts.recent.run(this.#redis, [this.#byKind(kind)], [this.#prefix, stop])) as string[][]
    return hashes.map(h => runOf(h)).filter(r => r !== undefined)
  }

  async update (kind: string, id: string, owner: string, patch: RunPatch): Promise<boolean> {
    const changes: string[] = []
    // As `{ ...run, ...patch }` copied through JSON: a field given as undefined is removed.
    if (Object.hasOwn(patch, 'status')) changes.push('status', ...(patch.status === undefined ? ['0', ''] : ['1', text('status', patch.status)]))
    for (const name of ['finishedAt', 'data'] as const) {
      if (!Object.hasOwn(patch, name)) continue
      const json = JSON.stringify(patch[name])
      changes.push(name, ...(json === undefined ? ['0', ''] : ['1', json]))
    }
    const [written] = await this.#write(`update run "${id}"`, scripts.update, [this.#run(id)],
      [this.#prefix, id, text('owner', owner), text('kind', kind), ...changes]) as [number]
    return written === 1
  }

  async append (kind: string, id: string, owner: string, entry: unknown, index?: number): Promise<boolean> {
    const json = JSON.stringify(entry)
    if (json === undefined) throw new SseInvalidEventError('RedisRunStore: a transcript entry must be JSON (got undefined or a function)')
    if (index !== undefined && !(Number.isSafeInteger(index) && index >= 0)) throw new SseInvalidEventError(`RedisRunStore: index must be an integer >= 0, got ${String(index)}`)
    const [written] = await this.#write(`append to run "${id}"`, scripts.append, [this.#run(id), this.#entries(id)],
      [text('owner', owner), text('kind', kind), json, index ?? -1]) as [number]
    return written === 1
  }

  async entries (kind: string, id: string): Promise<unknown[]> {
    const list = await this.#call(`transcript of run "${id}"`,
      async () => await scripts.entries.run(this.#redis, [this.#run(id), this.#entries(id)], [text('kind', kind)])) as string[]
    return list.map(e => JSON.parse(e) as unknown)
  }

  async renew (kind: string, owner: string, ids: readonly string[], leaseMs: number): Promise<string[]> {
    const lease = duration(leaseMs)
    if (ids.length === 0) return []
    const [cancel] = await this.#write(`renew ${ids.length} lease(s)`, scripts.renew, ids.map(id => this.#run(id)),
      [this.#prefix, text('owner', owner), text('kind', kind), lease, ...ids]) as [string[]]
    return cancel
  }

  async requestCancel (kind: string, id: string): Promise<CancelRequest | undefined> {
    const [first, hash] = await this.#write(`cancel request for run "${id}"`, scripts.requestCancel, [this.#run(id)], [text('kind', kind)]) as [number, string[]]
    const run = runOf(hash)
    return run === undefined ? undefined : { run, first: first === 1 }
  }

  async expired (kind: string): Promise<string[]> {
    return await this.#call(`expired runs of kind "${kind}"`,
      async () => await scripts.expired.run(this.#redis, [this.#leases(kind)], [])) as string[]
  }

  async interrupt (kind: string, id: string): Promise<StoredRun | undefined> {
    const [hash] = await this.#write(`interrupt run "${id}"`, scripts.interrupt, [this.#run(id)], [this.#prefix, id, text('kind', kind)]) as [string[]]
    return runOf(hash)
  }

  #run (id: string): string { return `${this.#prefix}:r:${id}` }
  #entries (id: string): string { return `${this.#prefix}:e:${id}` }
  #byKind (kind: string): string { return `${this.#prefix}:k:${text('kind', kind)}` }
  #leases (kind: string): string { return `${this.#prefix}:lease:${text('kind', kind)}` }

  /** A write script: ARGV[1] is its deadline, and its reply starts with Redis's time. */
  async #write (what: string, script: Script, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown[]> {
    // Redis refuses the write after this instant (its clock): the moment the
    // caller is told it failed. Unknown (0) until a reply gave the offset.
    const deadline = this.#offset === undefined ? 0 : Math.round(Date.now() + this.#offset + this.#timeoutMs)
    let sent = 0
    const reply = await this.#call(what, async () => {
      sent = Date.now()
      return await script.run(this.#redis, keys, [deadline, ...args])
    }, true) as unknown[]
    const redisMs = reply[0]
    if (typeof redisMs === 'number') this.#offset = redisMs - (sent + Date.now()) / 2
    return reply.slice(1)
  }

  /**
   * One call on the user's client: waits at most commandTimeoutMs for the
   * connection, then for the reply. A command is only sent on a ready
   * connection, so none waits in ioredis's offline queue to be applied later.
   */
  async #call<T> (what: string, send: () => Promise<T>, write = false): Promise<T> {
    const client = this.#redis
    const started = Date.now()
    if (client.status !== 'ready') {
      if (client.status === 'end') throw new RunStoreUnavailableError(`${what}: the ioredis client was closed (quit or disconnect)`)
      if (client.status === 'wait') client.connect().catch(noop)
      await this.#ready(what)
    }
    const left = Math.max(1, this.#timeoutMs - (Date.now() - started))
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new RunStoreUnavailableError(write
        ? `${what} not confirmed within ${this.#timeoutMs} ms (Redis refuses it after that; it may have been applied just before)`
        : `${what}: no reply within ${this.#timeoutMs} ms`)), left)
    })
    const reply = send()
    // The reply may still fail after the timeout won.
    reply.catch(noop)
    try {
      return await Promise.race([reply, timeout])
    } catch (err) {
      if (err instanceof RunStoreUnavailableError) throw err
      if (err instanceof Error && err.name === 'ReplyError') {
        if (err.message.startsWith('EXPIRED ')) throw new RunStoreUnavailableError(`${what} not accepted: ${err.message.slice(8)}`, { cause: err })
        if (err.message.startsWith('EXISTS ')) throw new SseInvalidOptionError('id (RunStore.create)', `is taken by another run (${err.message.slice(7)})`)
        // Redis itself refused (a key of the wrong type, say): not an outage.
        throw new SseRedisError(`RedisRunStore: ${what} failed: ${err.message}`, { cause: err })
      }
      throw new RunStoreUnavailableError(`${what}: ${describe(err)}`, { cause: err })
    } finally {
      clearTimeout(timer)
    }
  }

  #ready (what: string): Promise<void> {
    const client = this.#redis
    return new Promise((resolve, reject) => {
      const onReady = (): void => {
        clearTimeout(timer)
        resolve()
      }
      const timer = setTimeout(() => {
        client.off('ready', onReady)
        reject(new RunStoreUnavailableError(`${what} not sent: connection is ${client.status} (waited ${this.#timeoutMs} ms)`))
      }, this.#timeoutMs)
      client.once('ready', onReady)
    })
  }
}
