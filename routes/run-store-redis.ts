/**
 * `RedisRunStore` (`fastify-htmx-sse/routes/redis`): jobs and agent runs in
 * Redis, on the ioredis client the hub's transport already uses, so every
 * instance renders every run and runs outlive the processes that ran them.
 *
 * Keys (prefix `runs` by default):
 * - `runs:r:<id>`       hash: kind, title, status, owner, leaseUntil, startedAt,
 *                       finishedAt, cancel, and `data` (the runner's JSON, kept as
 *                       the string it was given, so it round-trips exactly).
 * - `runs:k:<kind>`     zset of a kind's runs by startedAt (lists, bounds).
 * - `runs:lease:<kind>` zset of a kind's running runs by lease end (expiry sweeps).
 * - `runs:e:<id>`       list: the transcript, one JSON entry each.
 *
 * Every change that depends on what is stored (only the owner of a running
 * run writes it; exactly one instance marks an expired run interrupted; the
 * bound drops only finished runs) is one Lua script, so two instances can
 * never both win. Each call waits at most `commandTimeoutMs`, then rejects
 * with `run store: redis unavailable: …` (code HTMX_SSE_RUN_STORE_UNAVAILABLE),
 * which the route modules answer with 503.
 *
 * Not supported: ioredis `keyPrefix` (rejected; use `prefix`) and Cluster (the
 * scripts touch keys they derive from the prefix).
 */
import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'
import { RUN_STATUSES, type RunStatus } from '../views/index.js'
import type { CreateResult, RunPatch, RunStore, StoredRun } from './run-store.js'

export interface RedisRunStoreOptions {
  /** Your ioredis client; never closed here. */
  redis: Redis
  /** Key prefix. Default 'runs'. */
  prefix?: string
  /** Bound on each call. Default 2 000 ms. */
  commandTimeoutMs?: number
}

/** The store could not reach Redis in time. */
export class RunStoreUnavailableError extends Error {
  readonly code = 'HTMX_SSE_RUN_STORE_UNAVAILABLE'
  readonly statusCode = 503
  constructor (reason: string, options?: { cause?: unknown }) {
    super(`run store: redis unavailable: ${reason}`, options)
  }
}

/** KEYS r:<id> k:<kind> lease:<kind>; ARGV prefix id maxRuns startedAt leaseUntil then the hash fields as pairs. */
const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('RUNEXISTS') end
local prefix, id, max = ARGV[1], ARGV[2], tonumber(ARGV[3])
local excess = redis.call('ZCARD', KEYS[2]) + 1 - max
local dropped = {}
if excess > 0 then
  for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    if excess <= 0 then break end
    if redis.call('HGET', prefix .. ':r:' .. m, 'status') ~= 'running' then
      redis.call('DEL', prefix .. ':r:' .. m, prefix .. ':e:' .. m)
      redis.call('ZREM', KEYS[2], m)
      redis.call('ZREM', KEYS[3], m)
      dropped[#dropped + 1] = m
      excess = excess - 1
    end
  end
end
if excess > 0 then return {0, dropped} end
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZADD', KEYS[2], ARGV[4], id)
redis.call('ZADD', KEYS[3], ARGV[5], id)
return {1, dropped}
`

const HELD = `
local function held(key, owner)
  local v = redis.call('HMGET', key, 'status', 'owner', 'kind')
  if v[1] == 'running' and v[2] == owner then return v[3] end
  return nil
end
`

/** KEYS r:<id>; ARGV prefix id owner then pairs to set (status last when present). */
const UPDATE = HELD + `
local kind = held(KEYS[1], ARGV[3])
if not kind then return 0 end
local fields = {}
local finished = false
for i = 4, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  if ARGV[i] == 'status' and ARGV[i + 1] ~= 'running' then finished = true end
end
if #fields > 0 then redis.call('HSET', KEYS[1], unpack(fields)) end
if finished then redis.call('ZREM', ARGV[1] .. ':lease:' .. kind, ARGV[2]) end
return 1
`

/** KEYS r:<id> e:<id>; ARGV owner entry. */
const APPEND = HELD + `
if not held(KEYS[1], ARGV[1]) then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
return 1
`

/** ARGV prefix owner leaseUntil ids… → ids with a cancel request. */
const RENEW = HELD + `
local cancel = {}
for i = 4, #ARGV do
  local key = ARGV[1] .. ':r:' .. ARGV[i]
  local kind = held(key, ARGV[2])
  if kind then
    redis.call('HSET', key, 'leaseUntil', ARGV[3])
    redis.call('ZADD', ARGV[1] .. ':lease:' .. kind, ARGV[3], ARGV[i])
    if redis.call('HGET', key, 'cancel') == '1' then cancel[#cancel + 1] = ARGV[i] end
  end
end
return cancel
`

/** KEYS r:<id>. */
const REQUEST_CANCEL = `
if redis.call('HGET', KEYS[1], 'status') == 'running' then redis.call('HSET', KEYS[1], 'cancel', '1') end
return 1
`

/** KEYS r:<id>; ARGV prefix id now → 1 when this call interrupted it. */
const INTERRUPT = `
local v = redis.call('HMGET', KEYS[1], 'status', 'leaseUntil', 'kind')
if v[1] ~= 'running' or tonumber(v[2]) >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], 'status', 'interrupted', 'finishedAt', ARGV[3])
redis.call('ZREM', ARGV[1] .. ':lease:' .. v[3], ARGV[2])
return 1
`

class Script {
  readonly sha: string
  constructor (readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex')
  }

  async run (redis: Redis, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args)
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      return await redis.eval(this.source, keys.length, ...keys, ...args)
    }
  }
}

const scripts = {
  create: new Script(CREATE),
  update: new Script(UPDATE),
  append: new Script(APPEND),
  renew: new Script(RENEW),
  requestCancel: new Script(REQUEST_CANCEL),
  interrupt: new Script(INTERRUPT)
}

export class RedisRunStore implements RunStore {
  readonly #redis: Redis
  readonly #prefix: string
  readonly #timeoutMs: number

  constructor (options: RedisRunStoreOptions) {
    const { redis } = options
    if (redis === null || typeof redis !== 'object' || typeof redis.evalsha !== 'function') {
      throw new TypeError('RedisRunStore: option redis must be an ioredis client')
    }
    if (typeof redis.options?.keyPrefix === 'string' && redis.options.keyPrefix !== '') {
      throw new TypeError('RedisRunStore: the ioredis client has keyPrefix set; use the store option prefix instead')
    }
    this.#redis = redis
    this.#prefix = options.prefix ?? 'runs'
    this.#timeoutMs = options.commandTimeoutMs ?? 2_000
    if (!(this.#timeoutMs > 0)) throw new TypeError('RedisRunStore: commandTimeoutMs must be positive')
  }

  #run (id: string): string { return `${this.#prefix}:r:${id}` }
  #entries (id: string): string { return `${this.#prefix}:e:${id}` }
  #kind (kind: string): string { return `${this.#prefix}:k:${kind}` }
  #lease (kind: string): string { return `${this.#prefix}:lease:${kind}` }

  async create (run: StoredRun, maxRuns: number): Promise<CreateResult> {
    const fields = [
      'kind', run.kind, 'title', run.title, 'status', run.status, 'owner', run.owner,
      'leaseUntil', String(run.leaseUntil), 'startedAt', String(run.startedAt), 'data', JSON.stringify(run.data ?? null),
      ...(run.finishedAt === undefined ? [] : ['finishedAt', String(run.finishedAt)]),
      ...(run.cancelRequested === true ? ['cancel', '1'] : [])
    ]
    const [created, dropped] = await this.#call(`create run ${run.id}`, async () => await scripts.create.run(this.#redis,
      [this.#run(run.id), this.#kind(run.kind), this.#lease(run.kind)],
      [this.#prefix, run.id, maxRuns, run.startedAt, run.leaseUntil, ...fields])) as [number, string[]]
    return { created: created === 1, dropped }
  }

  async get (id: string): Promise<StoredRun | undefined> {
    const hash = await this.#call(`get run ${id}`, async () => await this.#redis.hgetall(this.#run(id)))
    return runOf(id, hash)
  }

  async recent (kind: string, limit: number): Promise<StoredRun[]> {
    if (limit <= 0) return []
    const ids = await this.#call(`recent ${kind} runs`, async () => await this.#redis.zrevrange(this.#kind(kind), 0, limit - 1))
    if (ids.length === 0) return []
    const hashes = await this.#call(`recent ${kind} runs`, async () => {
      const multi = this.#redis.multi()
      for (const id of ids) multi.hgetall(this.#run(id))
      return await multi.exec()
    })
    const runs: StoredRun[] = []
    ids.forEach((id, i) => {
      const run = runOf(id, (hashes?.[i]?.[1] ?? {}) as Record<string, string>)
      if (run !== undefined) runs.push(run)
    })
    return runs
  }

  async update (id: string, owner: string, patch: RunPatch): Promise<boolean> {
    const pairs: string[] = []
    if (patch.data !== undefined) pairs.push('data', JSON.stringify(patch.data))
    if (patch.finishedAt !== undefined) pairs.push('finishedAt', String(patch.finishedAt))
    if (patch.status !== undefined) pairs.push('status', patch.status)
    return await this.#call(`update run ${id}`, async () => await scripts.update.run(this.#redis, [this.#run(id)], [this.#prefix, id, owner, ...pairs])) === 1
  }

  async append (id: string, owner: string, entry: unknown): Promise<boolean> {
    return await this.#call(`append to run ${id}`, async () => await scripts.append.run(this.#redis,
      [this.#run(id), this.#entries(id)], [owner, JSON.stringify(entry ?? null)])) === 1
  }

  async entries (id: string): Promise<unknown[]> {
    const list = await this.#call(`transcript of run ${id}`, async () => await this.#redis.lrange(this.#entries(id), 0, -1))
    return list.map(e => JSON.parse(e) as unknown)
  }

  async renew (owner: string, ids: readonly string[], leaseUntil: number): Promise<string[]> {
    if (ids.length === 0) return []
    return await this.#call('renew leases', async () => await scripts.renew.run(this.#redis, [], [this.#prefix, owner, leaseUntil, ...ids])) as string[]
  }

  async requestCancel (id: string): Promise<StoredRun | undefined> {
    await this.#call(`cancel run ${id}`, async () => await scripts.requestCancel.run(this.#redis, [this.#run(id)], []))
    return await this.get(id)
  }

  async expired (kind: string, now: number): Promise<string[]> {
    return await this.#call(`expired ${kind} runs`, async () => await this.#redis.zrangebyscore(this.#lease(kind), '-inf', `(${now}`))
  }

  async interrupt (id: string, now: number): Promise<StoredRun | undefined> {
    const won = await this.#call(`interrupt run ${id}`, async () => await scripts.interrupt.run(this.#redis, [this.#run(id)], [this.#prefix, id, now]))
    return won === 1 ? await this.get(id) : undefined
  }

  /** One bounded call: a script's own refusal stays an error of its own, everything else is an outage. */
  async #call<T> (what: string, send: () => Promise<T>): Promise<T> {
    if (this.#redis.status === 'end') throw new RunStoreUnavailableError(`${what}: the ioredis client was closed`)
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new RunStoreUnavailableError(`${what}: no reply within ${this.#timeoutMs} ms`)), this.#timeoutMs)
    })
    const reply = send()
    reply.catch(() => {}) // a late failure after the timeout won
    try {
      return await Promise.race([reply, timeout])
    } catch (err) {
      if (err instanceof RunStoreUnavailableError) throw err
      if (err instanceof Error && err.message.includes('RUNEXISTS')) throw new Error(`run store: ${what}: the id exists`)
      if (err instanceof Error && err.name === 'ReplyError') throw new Error(`run store: ${what} failed: ${err.message}`, { cause: err })
      throw new RunStoreUnavailableError(`${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
    } finally {
      clearTimeout(timer)
    }
  }
}

function runOf (id: string, hash: Record<string, string>): StoredRun | undefined {
  if (hash.status === undefined || hash.kind === undefined) return undefined
  const status = (RUN_STATUSES as readonly string[]).includes(hash.status) ? hash.status as RunStatus : 'interrupted'
  return {
    id,
    kind: hash.kind,
    title: hash.title ?? '',
    status,
    owner: hash.owner ?? '',
    leaseUntil: Number(hash.leaseUntil),
    startedAt: Number(hash.startedAt),
    ...(hash.finishedAt === undefined ? {} : { finishedAt: Number(hash.finishedAt) }),
    ...(hash.cancel === '1' ? { cancelRequested: true } : {}),
    data: JSON.parse(hash.data ?? 'null') as unknown
  }
}
