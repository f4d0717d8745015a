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
 * Outage: every call goes through the Redis call layer the hub's transport
 * uses (../plugin/redis/call.ts): it waits at most `commandTimeoutMs` for
 * the connection and the reply, then rejects with `run store: redis
 * unavailable: …` (code HTMX_SSE_RUN_STORE_UNAVAILABLE, a 503 whose class
 * extends the transport's SseRedisUnavailableError). Nothing is left in
 * ioredis's offline queue. Each write carries a deadline in Redis's clock
 * (the offset is learned from every write's reply) and its script refuses
 * to apply after it, so a write ioredis resends after a reconnect, or one
 * stuck behind a slow Redis, cannot land long after its caller was told it
 * failed (an interrupt nobody announces, a run created for a request that
 * got a 503). A write that timed out may still have been applied just
 * before its deadline (the reply, not the command, was lost): its error
 * says "not confirmed".
 *
 * Not supported: ioredis `keyPrefix` on the client (rejected; use `prefix`),
 * and Cluster (untested; the scripts touch keys they derive from the prefix
 * and the stored kind, so at least a hash-tagged prefix like `{runs}` is needed).
 */
import type { Redis } from 'ioredis'
import { scripts } from './store-redis-scripts.js'
import type { CancelRequest, CreateResult, NewRun, RunPatch, RunStore, StoredRun } from './store.js'
import { SseInvalidEventError, SseInvalidOptionError, SseRedisError, SseRunStoreUnavailableError } from '../plugin/errors.js'
import { RedisCalls } from '../plugin/redis/call.js'
import { checkClient, intOption, prefixOption, type RedisUser } from '../plugin/redis/client.js'

export interface RedisRunStoreOptions {
  /** Your ioredis client (the one the hub's transport uses). Never closed here. */
  redis: Redis
  /** Key prefix. Default `runs`. */
  prefix?: string
  /** Bound on each call: waiting for the connection, then for the reply. Default 2 000 ms. */
  commandTimeoutMs?: number
}

const USER: RedisUser = { owner: 'RedisRunStore', noun: 'store' }

/** The fields of a run that scripts change, stored as JSON text when present. */
const JSON_FIELDS = [['finishedAt', 'finishedAt'], ['cancelRequested', 'cancel'], ['data', 'data']] as const

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
  readonly #calls: RedisCalls

  constructor (options: RedisRunStoreOptions) {
    this.#redis = checkClient(options?.redis, USER)
    this.#prefix = prefixOption(USER, options.prefix, 'runs')
    const timeoutMs = intOption(USER, 'commandTimeoutMs', options.commandTimeoutMs, 2000, 1)
    this.#calls = new RedisCalls(this.#redis, { owner: USER.owner, timeoutMs, unavailable: SseRunStoreUnavailableError })
  }

  async create (run: NewRun, maxRuns: number, leaseMs: number): Promise<CreateResult> {
    const id = text('id', run.id)
    const fields = fieldsOf(run)
    const startedAt = finite('startedAt', run.startedAt)
    const lease = duration(leaseMs)
    if (typeof maxRuns !== 'number' || Number.isNaN(maxRuns)) throw new SseInvalidOptionError('maxRuns (RedisRunStore)', `must be a number, got ${String(maxRuns)}`)
    // Lua numbers are doubles too; only ±Infinity needs a stand-in.
    const max = Math.max(-1e15, Math.min(1e15, maxRuns))
    const [created, dropped] = await this.#calls.write(`create run "${id}"`, scripts.create,
      [this.#run(id), this.#byKind(run.kind), this.#leases(run.kind), this.#entries(id)],
      [this.#prefix, id, max, startedAt, lease, ...fields]).catch((err: unknown) => {
      // The script's own refusal, not Redis's: the caller's id is taken.
      const reply = err instanceof SseRedisError ? err.cause : undefined
      if (reply instanceof Error && reply.message.startsWith('EXISTS ')) throw new SseInvalidOptionError('id (RunStore.create)', `is taken by another run (${reply.message.slice(7)})`)
      throw err
    }) as [number, string[]]
    return { created: created === 1, dropped }
  }

  async get (kind: string, id: string): Promise<StoredRun | undefined> {
    text('kind', kind)
    const run = runOf(await this.#calls.call(`get run "${id}"`, async () => await this.#redis.hgetall(this.#run(id))))
    return run?.kind === kind ? run : undefined
  }

  async recent (kind: string, limit: number): Promise<StoredRun[]> {
    if (!(limit > 0)) return []
    const stop = Number.isFinite(limit) ? Math.ceil(limit) - 1 : -1
    const hashes = await this.#calls.script(`recent runs of kind "${kind}"`, scripts.recent, [this.#byKind(kind)], [this.#prefix, stop]) as string[][]
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
    const [written] = await this.#calls.write(`update run "${id}"`, scripts.update, [this.#run(id)],
      [this.#prefix, id, text('owner', owner), text('kind', kind), ...changes]) as [number]
    return written === 1
  }

  async append (kind: string, id: string, owner: string, entry: unknown, index?: number): Promise<boolean> {
    const json = JSON.stringify(entry)
    if (json === undefined) throw new SseInvalidEventError('RedisRunStore: a transcript entry must be JSON (got undefined or a function)')
    if (index !== undefined && !(Number.isSafeInteger(index) && index >= 0)) throw new SseInvalidEventError(`RedisRunStore: index must be an integer >= 0, got ${String(index)}`)
    const [written] = await this.#calls.write(`append to run "${id}"`, scripts.append, [this.#run(id), this.#entries(id)],
      [text('owner', owner), text('kind', kind), json, index ?? -1]) as [number]
    return written === 1
  }

  async entries (kind: string, id: string): Promise<unknown[]> {
    const list = await this.#calls.script(`transcript of run "${id}"`, scripts.entries, [this.#run(id), this.#entries(id)], [text('kind', kind)]) as string[]
    return list.map(e => JSON.parse(e) as unknown)
  }

  async renew (kind: string, owner: string, ids: readonly string[], leaseMs: number): Promise<string[]> {
    const lease = duration(leaseMs)
    if (ids.length === 0) return []
    const [cancel] = await this.#calls.write(`renew ${ids.length} lease(s)`, scripts.renew, ids.map(id => this.#run(id)),
      [this.#prefix, text('owner', owner), text('kind', kind), lease, ...ids]) as [string[]]
    return cancel
  }

  async requestCancel (kind: string, id: string): Promise<CancelRequest | undefined> {
    const [first, hash] = await this.#calls.write(`cancel request for run "${id}"`, scripts.requestCancel, [this.#run(id)], [text('kind', kind)]) as [number, string[]]
    const run = runOf(hash)
    return run === undefined ? undefined : { run, first: first === 1 }
  }

  async expired (kind: string): Promise<string[]> {
    return await this.#calls.script(`expired runs of kind "${kind}"`, scripts.expired, [this.#leases(kind)], []) as string[]
  }

  async interrupt (kind: string, id: string): Promise<StoredRun | undefined> {
    const [hash] = await this.#calls.write(`interrupt run "${id}"`, scripts.interrupt, [this.#run(id)], [this.#prefix, id, text('kind', kind)]) as [string[]]
    return runOf(hash)
  }

  #run (id: string): string { return `${this.#prefix}:r:${id}` }
  #entries (id: string): string { return `${this.#prefix}:e:${id}` }
  #byKind (kind: string): string { return `${this.#prefix}:k:${text('kind', kind)}` }
  #leases (kind: string): string { return `${this.#prefix}:lease:${text('kind', kind)}` }
}
