/**
 * Redis transport (`fastify-htmx-sse/redis`): several Fastify instances share
 * topics, ids and history through Redis Streams (Redis ≥ 5, ioredis 5).
 *
 * Keys (prefix `sse` by default):
 * - `sse:seq`      the id counter (a string integer); ids are `String(seq)`.
 * - `sse:epoch`    the id the current counter epoch started from (see "Data loss").
 * - `sse:all`      the firehose: every event of every topic, `XADD MAXLEN ~ firehose`.
 *                  Each instance runs one `XREAD BLOCK` loop on it for live delivery.
 * - `sse:t:<topic>` per-topic history, exactly the newest `history` events.
 * - `sse:trimmed`  hash topic → newest id trimmed from that topic's history.
 *
 * Every publish is one Lua script (atomic): it increments the counter and adds
 * the event to the firehose and to the topic's stream, both with the explicit
 * stream id `<seq>-0`. So ids are totally ordered across topics and instances,
 * the firehose order is the id order, and stream ids equal hub ids.
 *
 * An instance delivers its own publish when the script replies, and first
 * what other instances published since its last delivery: the script reads
 * those from the firehose (at most MISSED_MAX). The XREAD loop skips what was
 * delivered that way. That saves a second round trip through Redis per
 * event, which under a busy fan-out waited for a turn of the event loop; and
 * while the instance keeps publishing, its loop does not read at all (every
 * read would only bring its own events back): it reads again once publishing
 * has paused for QUIET_MS, or at once when a reply could not deliver up to
 * its own id (a gap, or more than one reply carries).
 *
 * Live delivery resumes from the last id this instance delivered whenever its
 * blocking connection (a `duplicate()` of your client, owned and closed here)
 * comes back, so nothing Redis accepted is lost while the firehose still holds
 * it. If the firehose was trimmed past that id (more than `firehose` events
 * published while this instance was cut off), a warning is logged: clients
 * connected here missed those events; reconnecting clients get replay or `reset`.
 *
 * Replay (`since`) is complete when the topic's history still reaches back to
 * the client's id: the id is valid, belongs to the current epoch, is not
 * ahead of the counter, and is not older than the newest id trimmed from the
 * topic (kept in `sse:trimmed` by the publish script — works on Redis 5 and 6,
 * unlike XINFO's `max-deleted-entry-id`). To never send an event twice,
 * `since` and `head` wait (at most `publishTimeoutMs`) until this instance's
 * live delivery has passed what they return; if it lags further behind than
 * that, the reconnecting client gets `reset` rather than a replay that could
 * repeat events.
 *
 * Data loss: a Redis that restarts without persistence, fails over or is
 * restored from a snapshot forgets (part of) the counter. Every script
 * receives the highest id this instance has seen as a floor; when the counter
 * is missing or behind the floor or the streams, it starts a new epoch from
 * Redis's clock in microseconds (like the memory transport), never below the
 * floor. Ids therefore never go backwards and are never reissued (as long as
 * fewer than a million events per second were published, and Redis's clock did
 * not go back). Clients holding an id from before the epoch get `reset`.
 *
 * Outage: `publish` waits at most `publishTimeoutMs` for the connection and
 * the reply, then rejects with `redis unavailable: ...` (code HTMX_SSE_REDIS_UNAVAILABLE). "not accepted": the
 * command was never sent, or Redis refused it. Each publish carries a deadline
 * in Redis's clock (the offset is learned from every reply), and the script
 * refuses an event that reaches Redis after it, so a command ioredis resends
 * after a reconnect is not applied seconds after its caller was told it
 * failed. "not confirmed": it was sent and no reply came in time; it may have
 * been applied just before its deadline (the reply, not the command, was
 * lost), and is then delivered everywhere like any other event.
 * `since`/`head` fall back to `reset` semantics instead of failing the stream.
 * Connected SSE clients stay open; the XREAD loop retries with backoff, logs
 * one warning per outage and one info line on recovery, then delivers
 * everything Redis accepted meanwhile.
 *
 * Not supported: ioredis `Cluster` clients (untested; the scripts touch several
 * keys, so Cluster would at least need a hash-tagged prefix like `{sse}`), and
 * ioredis `keyPrefix` on the client (rejected; use the `prefix` option).
 */
import { createHash } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis, RedisOptions } from 'ioredis'
import { SseRedisUnavailableError } from '../errors.js'
import type { HubMessage, HubTransport, PublishInput, SinceResult } from '../transport.js'
import { parseId } from '../transport.js'

export interface RedisTransportOptions {
  /** Your ioredis client (e.g. from @fastify/redis). Used for publish and reads; never closed here. */
  redis: Redis
  /** Key prefix. Default `sse`. Use a hash tag (`{sse}`) with Redis Cluster. */
  prefix?: string
  /** Events kept per topic for Last-Event-ID replay. Default 1 000. */
  history?: number
  /** Approximate length of the firehose stream all instances read live events from. Default 10 000. */
  firehose?: number
  /** Bound on waiting for Redis in `publish` (and `since`/`head`/`history`). Default 2 000 ms. */
  publishTimeoutMs?: number
  /** `XREAD BLOCK` timeout of the live loop. Default 5 000 ms. */
  blockMs?: number
}

const LIB = `
local function top(key)
  local e = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  if e[1] then return tonumber(string.match(e[1][1], '^(%d+)')) end
  return 0
end
local function fmt(n) return string.format('%.0f', n) end
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function streamOrNone(key)
  local t = redis.call('TYPE', key).ok
  if t ~= 'none' and t ~= 'stream' then return redis.error_reply('fastify-htmx-sse: key ' .. key .. ' holds a ' .. t .. ', not a stream') end
  return nil
end
-- KEYS[1] seq, KEYS[2] epoch, KEYS[3] firehose. Returns the counter and 0, or
-- 1 when a new epoch started because the counter was missing or behind the
-- floor (the highest id the calling instance has seen) or the streams, i.e.
-- Redis lost data, or 2 when it started on an empty Redis (first use).
local function ensure(floor, topicKey)
  local v = redis.call('GET', KEYS[1])
  local cur = v and tonumber(v)
  local min = math.max(floor, top(KEYS[3]))
  if topicKey then min = math.max(min, top(topicKey)) end
  if cur and cur >= min then return cur, 0 end
  local t = redis.call('TIME')
  local base = math.max(tonumber(t[1]) * 1000000 + tonumber(t[2]), min)
  redis.call('SET', KEYS[1], fmt(base))
  redis.call('SET', KEYS[2], fmt(base))
  if cur or min > 0 then return base, 1 end
  return base, 2
end
`

/** How long this instance's publishing must pause before the live loop reads again (see #whilePublishing). */
const QUIET_MS = 2

/** Most foreign events one publish reply carries; the live loop delivers the rest. */
const MISSED_MAX = 256

/**
 * KEYS seq epoch firehose trimmed topic; ARGV floor firehoseLen history topic
 * deadline after field value... → { id, newEpoch, redisMs, missed }. A publish
 * reaching Redis after its deadline (in Redis time; 0: none) is refused, so
 * one that ioredis resends after an outage cannot be applied long after its
 * caller was told it failed. `missed`: the firehose entries between `after`
 * (the newest id the calling instance delivered; -1: none yet) and this one,
 * i.e. what other instances published meanwhile, at most MISSED_MAX of them.
 */
const PUBLISH = LIB + `
local now = nowMs()
local deadline = tonumber(ARGV[5])
if deadline > 0 and now > deadline then return redis.error_reply('EXPIRED publish reached Redis ' .. (now - deadline) .. ' ms after its deadline; not applied') end
local bad = streamOrNone(KEYS[3]) or streamOrNone(KEYS[5])
if bad then return bad end
local _, fresh = ensure(tonumber(ARGV[1]), KEYS[5])
local seq = redis.call('INCR', KEYS[1])
local id = fmt(seq)
local sid = id .. '-0'
redis.call('XADD', KEYS[5], sid, unpack(ARGV, 7))
local over = redis.call('XLEN', KEYS[5]) - tonumber(ARGV[3])
if over > 0 then
  local old = redis.call('XRANGE', KEYS[5], '-', '+', 'COUNT', over)
  redis.call('HSET', KEYS[4], ARGV[4], string.match(old[#old][1], '^(%d+)'))
  redis.call('XTRIM', KEYS[5], 'MAXLEN', ARGV[3])
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], sid, 'topic', ARGV[4], unpack(ARGV, 7))
local missed = {}
local after = tonumber(ARGV[6])
if fresh == 0 and after >= 0 and seq - 1 > after then
  missed = redis.call('XRANGE', KEYS[3], fmt(after + 1) .. '-0', fmt(seq - 1) .. '-0', 'COUNT', ${MISSED_MAX})
end
return { id, fresh, now, missed }
`

/** KEYS seq epoch firehose; ARGV floor → { seq, firehoseTop, newEpoch, redisMs } */
const HEAD = LIB + `
local seq, fresh = ensure(tonumber(ARGV[1]), nil)
return { fmt(seq), fmt(top(KEYS[3])), fresh, nowMs() }
`

/** KEYS seq epoch firehose trimmed topic; ARGV floor after topic → { complete, seq, firehoseTop, newEpoch, entries } */
const SINCE = LIB + `
local seq, fresh = ensure(tonumber(ARGV[1]), KEYS[5])
local after = tonumber(ARGV[2])
local epoch = tonumber(redis.call('GET', KEYS[2]) or '0')
local trimmed = tonumber(redis.call('HGET', KEYS[4], ARGV[3]) or '0')
local complete = 0
if after >= epoch and after <= seq and after >= trimmed then complete = 1 end
local entries = {}
if complete == 1 then entries = redis.call('XRANGE', KEYS[5], ARGV[2] .. '-1', '+') end
return { complete, fmt(seq), fmt(top(KEYS[3])), fresh, entries }
`

class Script {
  readonly sha: string
  constructor (readonly source: string, readonly keys: number) {
    this.sha = createHash('sha1').update(source).digest('hex')
  }

  async run (client: Redis, args: Array<string | number>): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, this.keys, ...args)
    } catch (err) {
      // A restarted (or flushed) Redis has an empty script cache.
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      return await client.eval(this.source, this.keys, ...args)
    }
  }
}

const scripts = {
  publish: new Script(PUBLISH, 5),
  head: new Script(HEAD, 3),
  since: new Script(SINCE, 5)
}

type StreamEntry = [id: string, fields: string[]]

const noop = (): void => {}
const silentLog: FastifyBaseLogger = {
  level: 'silent', fatal: noop, error: noop, warn: noop, info: noop, debug: noop, trace: noop, silent: noop, child: () => silentLog
} as unknown as FastifyBaseLogger

/** Parses `<n>-0`, the only stream ids this transport writes. */
function seqOf (streamId: string): number | undefined {
  const dash = streamId.indexOf('-')
  return dash > 0 ? parseId(streamId.slice(0, dash)) : undefined
}

function messageOf (id: string, topic: string | undefined, fields: string[]): HubMessage | undefined {
  let event: string | undefined
  let data: string | undefined
  let retry: number | undefined
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const value = fields[i + 1]!
    switch (fields[i]) {
      case 'topic': topic = value; break
      case 'event': event = value; break
      case 'data': data = value; break
      case 'retry': retry = Number(value); break
    }
  }
  if (topic === undefined || data === undefined) return undefined
  return { id, topic, event, data, retry }
}

function unavailable (message: string, cause?: unknown): Error {
  return cause === undefined ? new SseRedisUnavailableError(message) : new SseRedisUnavailableError(message, { cause })
}

function describe (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function nonNegativeInt (name: string, value: number | undefined, fallback: number, min = 0): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < min) throw new TypeError(`redisTransport: option ${name} must be an integer >= ${min}, got ${String(value)}`)
  return value
}

export class RedisTransport implements HubTransport {
  readonly #redis: Redis
  readonly #keys: { seq: string, epoch: string, all: string, trimmed: string, topic: (t: string) => string }
  readonly #history: number
  readonly #firehose: number
  readonly #timeoutMs: number
  readonly #blockMs: number
  #log: FastifyBaseLogger = silentLog
  #deliver: ((message: HubMessage) => void) | undefined
  #resync: (() => void) | undefined
  /** The blocking connection of the live loop (a duplicate of the user's client). */
  #sub: Redis | undefined
  #loop: Promise<void> | undefined
  #closed = false
  #down = false
  /** Stream id the live loop reads after, and its number: every event up to it was delivered (or predates start). */
  #position: string | undefined
  #delivered = -1
  /** Before live delivery has a position (Redis was down at start): just below the first id published here, so the loop still delivers it. */
  #earliest = Infinity
  /** Redis clock minus ours, in ms, once known. */
  #offset: number | undefined
  /** Highest id this instance has seen anywhere: the floor ids never go below. */
  #floor = 0
  /** Publishes of this instance awaiting Redis, and when the last one's reply came (performance.now()). */
  #publishing = 0
  #publishedAt = -Infinity
  /** A publish reply could not deliver everything up to its id: the loop must read now. */
  #behind = false
  /** Ends the live loop's pause (see #whilePublishing). */
  #resume: (() => void) | undefined
  /** since/head calls waiting for live delivery to pass an id. */
  readonly #waiters = new Set<{ target: number, done: (ok: boolean) => void }>()
  /** Cancels pending timers and waits on close. */
  readonly #pending = new Set<() => void>()

  constructor (options: RedisTransportOptions) {
    const redis = options?.redis
    if (redis === null || typeof redis !== 'object' || typeof redis.duplicate !== 'function' || typeof redis.evalsha !== 'function') {
      throw new TypeError('redisTransport: option redis must be an ioredis client (new Redis(url))')
    }
    if (typeof redis.options?.keyPrefix === 'string' && redis.options.keyPrefix !== '') {
      throw new TypeError('redisTransport: the ioredis client has keyPrefix set; use the transport option prefix instead')
    }
    const prefix = options.prefix ?? 'sse'
    if (typeof prefix !== 'string' || prefix === '' || /[\s]/.test(prefix)) throw new TypeError('redisTransport: option prefix must be a non-empty string without spaces')
    this.#redis = redis
    this.#keys = {
      seq: `${prefix}:seq`,
      epoch: `${prefix}:epoch`,
      all: `${prefix}:all`,
      trimmed: `${prefix}:trimmed`,
      topic: t => `${prefix}:t:${t}`
    }
    this.#history = nonNegativeInt('history', options.history, 1000)
    this.#firehose = nonNegativeInt('firehose', options.firehose, 10_000, 1)
    this.#timeoutMs = nonNegativeInt('publishTimeoutMs', options.publishTimeoutMs, 2000, 1)
    this.#blockMs = nonNegativeInt('blockMs', options.blockMs, 5000, 1)
  }

  async start (deliver: (message: HubMessage) => void, log: FastifyBaseLogger, resync?: () => void): Promise<void> {
    if (this.#deliver !== undefined) throw new Error('redisTransport: already started (one transport per app)')
    this.#deliver = deliver
    this.#resync = resync
    this.#log = log ?? silentLog
    const sub = this.#redis.duplicate({
      lazyConnect: false,
      enableOfflineQueue: true,
      // Fail the blocked XREAD as soon as the connection drops; the loop
      // retries by itself, from its last id.
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      enableAutoPipelining: false,
      retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
      connectionName: `${this.#keys.all}:xread`
    } satisfies Partial<RedisOptions>)
    // Connection errors surface through the loop's failing XREAD, logged once per outage.
    sub.on('error', noop)
    this.#sub = sub
    try {
      // Where live delivery starts: the counter now (the `$` of the firehose, in ids).
      let sent = 0
      const head = await this.#call('start', () => {
        sent = Date.now()
        return scripts.head.run(this.#redis, [...this.#baseKeys(), this.#floor])
      })
      this.#setStart(head, sent)
    } catch (err) {
      this.#markDown(err)
    }
    this.#loop = this.#run()
  }

  async publish (topic: string, event: PublishInput): Promise<string> {
    if (this.#closed) throw new Error('redisTransport: closed')
    const fields: string[] = []
    if (event.event !== undefined) fields.push('event', event.event)
    fields.push('data', event.data)
    if (event.retry !== undefined) fields.push('retry', String(event.retry))
    const what = `publish to topic "${topic}"`
    const called = Date.now()
    // Redis refuses the event after this instant (Redis clock), the moment
    // the caller is told it failed; unknown until the clock offset is known.
    const deadline = this.#offset === undefined ? 0 : Math.round(called + this.#offset + this.#timeoutMs)
    let sent = called
    this.#publishing++
    let reply: unknown
    try {
      reply = await this.#call(what, () => {
        sent = Date.now()
        return scripts.publish.run(this.#redis, [
          ...this.#baseKeys(), this.#keys.trimmed, this.#keys.topic(topic),
          this.#floor, this.#firehose, this.#history, topic, deadline,
          this.#position === undefined ? -1 : this.#delivered, ...fields
        ])
      }, 'publish')
    } finally {
      this.#publishing--
      this.#publishedAt = performance.now()
    }
    const [id, fresh, redisMs, missed] = reply as [string, number, number, StreamEntry[]]
    this.#clock(redisMs, sent)
    if (fresh !== 0) this.#newEpoch(id, 'publish', fresh)
    const n = Number(id)
    if (this.#position === undefined) this.#earliest = Math.min(this.#earliest, n - 1)
    this.#see(n)
    // Deliver now, in id order, what other instances published since this
    // one's last delivery (the script read it), then our own event, instead
    // of when the XREAD loop brings them: a second round trip through Redis
    // that waits for a turn of an event loop busy with fan-out. A gap (ids
    // trimmed, or more than the reply carries) is left to the loop, which
    // delivers in id order and skips what is delivered here.
    if (fresh === 0 && this.#position !== undefined && !this.#closed) {
      this.#deliverInOrder(missed)
      if (n === this.#delivered + 1) {
        this.#position = `${id}-0`
        this.#deliverOne(n, { id, topic, event: event.event, data: event.data, retry: event.retry })
      }
      this.#wake()
    }
    // Behind what Redis holds: the loop must not wait for publishing to pause.
    if (this.#delivered < n) this.#resumeLoop()
    return id
  }

  /** Delivers firehose entries that are next in id order; stops at the first gap. */
  #deliverInOrder (entries: StreamEntry[]): void {
    for (const [sid, fields] of entries) {
      const m = seqOf(sid)
      if (m === undefined || m <= this.#delivered) continue
      if (m !== this.#delivered + 1) return
      this.#position = sid
      this.#deliverEntry(m, fields)
    }
  }

  /** Delivers firehose entry `n` (the next in id order); an entry that is not an event only moves the cursor. */
  #deliverEntry (n: number, fields: string[]): void {
    this.#see(n)
    const message = messageOf(String(n), undefined, fields)
    if (message === undefined) this.#delivered = n
    else this.#deliverOne(n, message)
  }

  async since (topic: string, afterId: string): Promise<SinceResult> {
    const after = parseId(afterId)
    if (after === undefined || this.#closed) return { events: [], complete: false }
    let reply: [number, string, string, number, StreamEntry[]]
    try {
      reply = await this.#call(`replay of topic "${topic}"`, () => scripts.since.run(this.#redis, [
        ...this.#baseKeys(), this.#keys.trimmed, this.#keys.topic(topic),
        this.#floor, after, topic
      ])) as typeof reply
    } catch (err) {
      // The hub cannot fail a stream here: the client gets `reset` instead.
      this.#log.warn({ err: describe(err), topic }, 'sse redis: replay failed; the reconnecting client gets reset')
      return { events: [], complete: false }
    }
    const [complete, seq, firehoseTop, fresh, entries] = reply
    if (fresh !== 0) this.#newEpoch(seq, 'replay', fresh)
    this.#see(Number(seq))
    const events: HubMessage[] = []
    for (const [sid, fields] of entries) {
      const n = seqOf(sid)
      const message = n === undefined ? undefined : messageOf(String(n), topic, fields)
      if (message !== undefined) events.push(message)
    }
    if (complete !== 1) return { events: [], complete: false }
    // Live delivery here must pass everything replayed (and the client's own
    // id), or it would send those events a second time after the replay.
    const newest = events.length > 0 ? Number(events[events.length - 1]!.id) : -1
    const target = Math.min(Math.max(after, newest), Number(firehoseTop))
    if (!await this.#caughtUp(target)) {
      this.#log.warn({ topic, target, delivered: this.#delivered }, 'sse redis: live delivery is behind; the reconnecting client gets reset instead of a replay')
      return { events: [], complete: false }
    }
    return { events, complete: true }
  }

  /** Deletes a topic's history (a dropped run's): its stream and its trim mark. */
  async forget (topic: string): Promise<void> {
    await this.#call(`forget topic "${topic}"`,
      async () => await this.#redis.multi().del(this.#keys.topic(topic)).hdel(this.#keys.trimmed, topic).exec())
  }

  async history (topic: string, limit: number): Promise<HubMessage[]> {
    if (limit <= 0) return []
    const entries = await this.#call(`history of topic "${topic}"`,
      () => this.#redis.xrevrange(this.#keys.topic(topic), '+', '-', 'COUNT', limit)) as StreamEntry[]
    const out: HubMessage[] = []
    for (let i = entries.length - 1; i >= 0; i--) {
      const [sid, fields] = entries[i]!
      const n = seqOf(sid)
      const message = n === undefined ? undefined : messageOf(String(n), topic, fields)
      if (message !== undefined) out.push(message)
    }
    return out
  }

  async head (): Promise<string | undefined> {
    let reply: [string, string, number, number]
    let sent = 0
    try {
      reply = await this.#call('head', () => {
        sent = Date.now()
        return scripts.head.run(this.#redis, [...this.#baseKeys(), this.#floor])
      }) as typeof reply
    } catch (err) {
      this.#log.warn({ err: describe(err) }, 'sse redis: could not read the newest id; using the newest this instance has seen')
      return this.#floor > 0 ? String(this.#floor) : undefined
    }
    const [seq, firehoseTop, fresh, redisMs] = reply
    this.#clock(redisMs, sent)
    if (fresh !== 0) this.#newEpoch(seq, 'head', fresh)
    this.#see(Number(seq))
    // So that no live event up to the head reaches a client after it was told the head.
    await this.#caughtUp(Number(firehoseTop))
    return seq
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#deliver = undefined
    for (const cancel of [...this.#pending]) cancel()
    for (const waiter of [...this.#waiters]) waiter.done(false)
    // disconnect, not quit: QUIT would wait for the blocked XREAD.
    this.#sub?.disconnect()
    // Bounded: a command the loop queued while its connection was between
    // reconnects may never settle once that connection is disconnected (no
    // 'close' event comes to flush ioredis's offline queue), and app.close()
    // must not wait on it forever.
    let timer: NodeJS.Timeout | undefined
    await Promise.race([this.#loop, new Promise<void>(resolve => { timer = setTimeout(resolve, this.#timeoutMs) })])
    clearTimeout(timer)
  }

  #baseKeys (): string[] {
    return [this.#keys.seq, this.#keys.epoch, this.#keys.all]
  }

  /** Learns Redis's clock offset from a reply's TIME (sent: when the command left). */
  #clock (redisMs: number, sent: number): void {
    if (typeof redisMs === 'number') this.#offset = redisMs - (sent + Date.now()) / 2
  }

  #see (id: number): void {
    if (Number.isSafeInteger(id) && id > this.#floor) this.#floor = id
  }

  #setStart (head: unknown, sent: number): void {
    const [seq, , fresh, redisMs] = head as [string, string, number, number]
    this.#clock(redisMs, sent)
    if (fresh !== 0) this.#newEpoch(seq, 'start', fresh)
    this.#see(Number(seq))
    const n = Math.min(Number(seq), this.#earliest)
    this.#position = `${n}-0`
    this.#delivered = n
    this.#wake()
  }

  #newEpoch (id: string, where: string, code: number): void {
    if (code === 2) {
      this.#log.info({ id, prefix: this.#keys.seq }, 'sse redis: started the id counter')
      return
    }
    this.#log.warn({ id, where }, 'sse redis: the id counter was missing or behind (Redis lost data: restart without persistence, failover or restore); ids continue from a new epoch, clients with older ids get reset')
  }

  #markDown (err: unknown): void {
    if (this.#down || this.#closed) return
    this.#down = true
    this.#log.warn({ err: describe(err), delivered: this.#position }, 'sse redis: Redis unavailable; publishes fail with "redis unavailable", connected clients stay open, retrying in the background')
  }

  #markUp (): void {
    if (!this.#down) return
    this.#down = false
    this.#log.info({ resumeAfter: this.#position }, 'sse redis: Redis reachable again; live delivery resumes after the last delivered id')
  }

  /**
   * Runs a command on the user's client: waits at most publishTimeoutMs for
   * the connection, then for the reply. Never leaves a command queued offline.
   */
  async #call<T> (what: string, send: () => Promise<T>, kind?: 'publish'): Promise<T> {
    const client = this.#redis
    const started = Date.now()
    if (client.status !== 'ready') {
      if (client.status === 'end') throw unavailable(`${what}: the ioredis client was closed (quit or disconnect)`)
      if (client.status === 'wait') client.connect().catch(noop)
      await this.#ready(client, what, kind)
    }
    const left = Math.max(1, this.#timeoutMs - (Date.now() - started))
    const reply = send()
    try {
      return await this.#within(reply, left, () => kind === 'publish'
        ? unavailable(`${what} not confirmed within ${this.#timeoutMs} ms (Redis refuses it after that deadline; if it was applied just before, it is delivered like any other event)`)
        : unavailable(`${what}: no reply within ${this.#timeoutMs} ms`))
    } catch (err) {
      if (err instanceof SseRedisUnavailableError) throw err
      // An error reply from Redis itself (script error, wrong key type): not an outage.
      if (err instanceof Error && err.message.startsWith('EXPIRED')) throw unavailable(`${what} not accepted: ${err.message.slice(8)}`, err)
      if (err instanceof Error && err.name === 'ReplyError') throw new Error(`redisTransport: ${what} failed: ${err.message}`, { cause: err })
      throw unavailable(`${what}: ${describe(err)}`, err)
    }
  }

  #ready (client: Redis, what: string, kind?: 'publish'): Promise<void> {
    return new Promise((resolve, reject) => {
      const finish = (err?: Error): void => {
        clearTimeout(timer)
        client.off('ready', onReady)
        this.#pending.delete(cancel)
        if (err === undefined) resolve()
        else reject(err)
      }
      const onReady = (): void => finish()
      const cancel = (): void => finish(new Error(`redisTransport: closed before ${what}`))
      const timer = setTimeout(() => finish(unavailable(
        `${what}${kind === 'publish' ? ' not accepted' : ' failed'}: connection is ${client.status} (waited ${this.#timeoutMs} ms)`)), this.#timeoutMs)
      client.once('ready', onReady)
      this.#pending.add(cancel)
    })
  }

  /** `promise`, or `error()` after `ms`, or a rejection when the transport closes first. */
  #within<T> (promise: Promise<T>, ms: number, error: () => Error): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const settle = (): boolean => {
        if (timer === undefined) return false
        clearTimeout(timer)
        timer = undefined
        this.#pending.delete(closed)
        return true
      }
      const closed = (): void => { if (settle()) reject(new Error('redisTransport: closed')) }
      let timer: NodeJS.Timeout | undefined = setTimeout(() => { if (settle()) reject(error()) }, ms)
      this.#pending.add(closed)
      promise.then(value => { if (settle()) resolve(value) }, (err: unknown) => { if (settle()) reject(err) })
    })
  }

  /** Resolves true once live delivery has passed `target`, false after publishTimeoutMs or on close. */
  #caughtUp (target: number): Promise<boolean> {
    if (this.#delivered >= target) return Promise.resolve(true)
    if (this.#closed) return Promise.resolve(false)
    return new Promise(resolve => {
      const waiter = {
        target,
        done: (ok: boolean) => {
          clearTimeout(timer)
          this.#waiters.delete(waiter)
          resolve(ok)
        }
      }
      const timer = setTimeout(() => waiter.done(false), this.#timeoutMs)
      this.#waiters.add(waiter)
    })
  }

  #wake (): void {
    for (const waiter of [...this.#waiters]) {
      if (this.#delivered >= waiter.target) waiter.done(true)
    }
  }

  #sleep (ms: number): Promise<void> {
    return new Promise(resolve => {
      const cancel = (): void => {
        clearTimeout(timer)
        this.#pending.delete(cancel)
        resolve()
      }
      const timer = setTimeout(cancel, ms)
      this.#pending.add(cancel)
    })
  }

  /** The live loop: XREAD BLOCK on the firehose after the last delivered id, forever. */
  async #run (): Promise<void> {
    const sub = this.#sub!
    let backoff = 100
    while (!this.#closed) {
      try {
        if (this.#position === undefined) {
          const sent = Date.now()
          this.#setStart(await scripts.head.run(sub, [...this.#baseKeys(), this.#floor]), sent)
        }
        if (this.#down) {
          await sub.ping()
          this.#markUp()
        }
        await this.#whilePublishing()
        this.#behind = false
        const reply = await this.#xread(sub, this.#position!)
        backoff = 100
        if (reply !== null) {
          // A jump in ids is either a new epoch (Redis lost data: nothing more
          // to recover) or a trimmed firehose (events this instance can no
          // longer deliver live): only the epoch key tells them apart.
          const first = seqOf(reply[0]?.[1][0]?.[0] ?? '')
          const epoch = first !== undefined && first > this.#delivered + 1 && this.#delivered > 0
            ? Number(await sub.get(this.#keys.epoch))
            : undefined
          this.#handle(reply, epoch)
        }
      } catch (err) {
        if (this.#closed) break
        this.#markDown(err)
        await this.#sleep(backoff)
        backoff = Math.min(backoff * 2, 2000)
      }
    }
  }

  async #xread (sub: Redis, after: string): Promise<Array<[string, StreamEntry[]]> | null> {
    // A half-open connection never answers: force a reconnect if the BLOCK
    // does not come back well after its own timeout.
    const watchdog = setTimeout(() => {
      this.#log.warn('sse redis: XREAD did not return in time; reconnecting')
      sub.disconnect(true)
    }, this.#blockMs + 10_000)
    try {
      return await sub.xread('COUNT', 1000, 'BLOCK', this.#blockMs, 'STREAMS', this.#keys.all, after) as Array<[string, StreamEntry[]]> | null
    } finally {
      clearTimeout(watchdog)
    }
  }

  /**
   * While this instance keeps publishing, its own events and what other
   * instances published meanwhile come with each publish's reply, so the
   * loop, whose every XREAD would only bring our own events back, waits
   * until publishing pauses for QUIET_MS (or a reply shows a gap).
   */
  async #whilePublishing (): Promise<void> {
    while (!this.#closed && !this.#behind && (this.#publishing > 0 || performance.now() - this.#publishedAt < QUIET_MS)) {
      await new Promise<void>(resolve => {
        const done = (): void => {
          clearTimeout(timer)
          this.#pending.delete(done)
          if (this.#resume === done) this.#resume = undefined
          resolve()
        }
        const timer = setTimeout(done, QUIET_MS)
        this.#pending.add(done)
        this.#resume = done
      })
    }
  }

  #resumeLoop (): void {
    this.#behind = true
    this.#resume?.()
  }

  #handle (reply: Array<[string, StreamEntry[]]>, epoch?: number): void {
    for (const [, entries] of reply) {
      for (const [sid, fields] of entries) {
        const n = seqOf(sid)
        // Never back: an event delivered on publish may already be past this one.
        if (n === undefined || n > this.#delivered) this.#position = sid
        if (n === undefined || n <= this.#delivered) continue
        if (n > this.#delivered + 1 && this.#delivered > 0 && n !== (epoch ?? -1) + 1) {
          this.#log.warn({ from: this.#delivered, to: n },
            'sse redis: ids jumped (firehose trimmed while this instance was cut off, or Redis lost data); closing subscribers here so they resume with replay or reset')
          this.#resync?.()
        }
        this.#deliverEntry(n, fields)
      }
    }
    this.#wake()
  }

  #deliverOne (n: number, message: HubMessage): void {
    this.#delivered = n
    try {
      this.#deliver?.(message)
    } catch (err) {
      this.#log.error({ err }, 'sse redis: delivering an event failed')
    }
  }
}

/** A hub transport over Redis Streams, for several instances behind a load balancer. */
export function redisTransport (options: RedisTransportOptions): RedisTransport {
  return new RedisTransport(options)
}
