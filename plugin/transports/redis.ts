/**
 * Redis transport (`fastify-htmx-sse/redis`): several Fastify instances share
 * topics, ids and history through Redis Streams (Redis ≥ 5, ioredis 5).
 *
 * Keys (prefix `sse` by default):
 * - `sse:seq`      the id counter (a string integer); ids are `String(seq)`.
 * - `sse:epoch`    the id the current counter epoch started from (see "Data loss").
 * - `sse:all`      the firehose: every event of every topic, `XADD MAXLEN ~ firehose`.
 *                  Each instance runs one `XREAD BLOCK` loop on it for live delivery.
 * - `sse:t:<topic>` per-topic history, exactly the newest `history` events;
 *                  expires once the topic is idle for `topicTtlMs`.
 * - `sse:m:<topic>` the topic's mark: its newest id and the newest id trimmed
 *                  from its history; outlives the stream by another `topicTtlMs`.
 * - `sse:ticks`    a few counter checkpoints (one per `topicTtlMs / 4`), which
 *                  bound the newest id of any topic whose mark expired.
 * - `sse:i:<instance>` the last id an instance published (expires when idle).
 *
 * Every publish is one Lua script (atomic): it increments the counter and adds
 * the event to the firehose and to the topic's stream, both with the explicit
 * stream id `<seq>-0`. So ids are totally ordered across topics and instances,
 * the firehose order is the id order, and stream ids equal hub ids.
 *
 * An instance delivers its own publish when the script replies, and first
 * what other instances published since its previous publish (or its last
 * delivery, if newer): the script reads those from the firehose (at most
 * MISSED_MAX). Never its own in-flight events: they come with their own
 * replies, in order on the one connection, so a reply costs what others
 * published meanwhile, however many publishes this instance has in flight.
 * The XREAD loop skips what was delivered that way; while the instance keeps
 * publishing it does not read at all (every read would only bring its own
 * events back): it reads again once publishing has paused for QUIET_MS, or at
 * once when a reply could not deliver up to its own id (a gap, more than one
 * reply carries, or another epoch).
 *
 * Live delivery resumes from the last id this instance delivered whenever its
 * blocking connection (a `duplicate()` of your client, owned and closed here)
 * comes back, so nothing Redis accepted is lost while the firehose still holds
 * it. If the firehose was trimmed past that id (more than `firehose` events
 * published while this instance was cut off), its subscribers are closed
 * (resync): their reconnects are replayed from the topics' history, or reset.
 *
 * Replay (`since`) reads pages of at most the page limit per topic, all of a
 * subscription's topics in one script (one instant, so no other publish falls
 * between two topics' reads), at most REPLAY_READS at once, so a herd of
 * reconnects cannot starve publishes. It ends at this instance's live
 * delivery when it starts, so what follows arrives live, and it is complete
 * when every topic's history still reaches back to the client's id: the id is
 * valid, belongs to the current epoch, is not ahead of the counter, nothing
 * after it was trimmed from the topic (its mark), and the topic did not expire
 * with events after it. A client whose id is ahead of this instance's live
 * delivery waits (at most `publishTimeoutMs`) until it catches up, or gets
 * `reset` rather than a replay that could repeat events.
 *
 * Data loss: a Redis that restarts without persistence, fails over or is
 * restored from a snapshot forgets (part of) the counter. Every script
 * receives the highest id this instance has seen as a floor; when the counter
 * is missing or behind the floor or the streams, it starts a new epoch from
 * Redis's clock in microseconds (like the memory transport), never below the
 * floor. Ids therefore never go backwards and are never reissued (as long as
 * fewer than a million events per second were published, and Redis's clock did
 * not go back). Events of the old epoch that this instance had not delivered
 * may be gone (another instance's, published just before the loss), and no one
 * can tell which: when live delivery reaches the new epoch, every subscriber
 * here that was connected before the loss gets `reset`. Nobody records when
 * the loss happened; the epoch's start (its id, converted with the clock
 * offset and its error) is the latest it can have been, so subscribers that
 * arrived later keep their stream, and those that arrived between the loss
 * and the epoch's start get `reset` too. After an outage the live loop runs
 * one script at once, so the epoch starts soon after Redis comes back.
 * Clients holding an id from before the epoch get `reset` when they reconnect.
 *
 * Late start: when Redis does not answer start(), live delivery gets its
 * position once it does; subscribers that connected meanwhile are closed
 * (they resume with replay or reset), unless the epoch began after start()
 * (Redis came back empty): then live delivery starts from the epoch's start.
 *
 * Outage: `publish` waits at most `publishTimeoutMs` for the connection, then
 * rejects with `redis unavailable: ... not accepted` (code
 * HTMX_SSE_REDIS_UNAVAILABLE): the command was never sent. Each publish
 * carries a deadline in Redis's clock (the offset is learned from every
 * reply), `publishTimeoutMs` after it was called, and the script refuses an
 * event that reaches Redis after it ("not accepted" too), so a command ioredis
 * resends after a reconnect is not applied seconds after its caller was told
 * it failed. A publish sent on a healthy connection waits for its reply past
 * `publishTimeoutMs` (at most as long again): the reply says whether it was
 * applied. Only without any reply does it reject with "not confirmed": then it
 * was applied if Redis ran it before its deadline, and is delivered everywhere
 * like any other event. close() rejects a publish still waiting for the
 * connection with HTMX_SSE_HUB_CLOSED (never sent); one already sent keeps
 * waiting for its reply on your client, which close() leaves open.
 * `since`/`head` fall back to `reset` semantics instead of failing the stream.
 * Connected SSE clients stay open; the XREAD loop retries with backoff, logs
 * one warning per outage and one info line on recovery, then delivers
 * everything Redis accepted meanwhile.
 *
 * Not supported: ioredis `Cluster` clients (untested; the scripts touch several
 * keys, so Cluster would at least need a hash-tagged prefix like `{sse}`), and
 * ioredis `keyPrefix` on the client (rejected; use the `prefix` option).
 */
import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis, RedisOptions } from 'ioredis'
import { TRANSPORT_METRICS, type TransportMetrics } from '../counters.js'
import { SseHubClosedError, SseInvalidOptionError, SseRedisError, SseRedisUnavailableError } from '../errors.js'
import type { HubMessage, HubTransport, PublishInput, SincePage, SinceResult } from '../transport.js'
import { parseId } from '../transport.js'
import { type Keys, keysOf, scripts } from './redis/scripts.js'
import { describe, messageOf, noop, nonNegativeInt, seqOf, silentLog, Slots, type StreamEntry, unavailable } from './redis/support.js'

export interface RedisTransportOptions {
  /** Your ioredis client (e.g. from @fastify/redis). Used for publish and reads; never closed here. */
  redis: Redis
  /** Key prefix. Default `sse`. Use a hash tag (`{sse}`) with Redis Cluster. */
  prefix?: string
  /** Events kept per topic for Last-Event-ID replay. Default 1 000. */
  history?: number
  /** Approximate length of the firehose stream all instances read live events from. Default 10 000. */
  firehose?: number
  /**
   * A topic nobody published to for this long is dropped from Redis (its
   * history first, its mark another `topicTtlMs` later); a client still
   * holding an id older than its newest event gets `reset`. Default 24 h.
   */
  topicTtlMs?: number
  /** Bound on waiting for Redis in `publish` (and `since`/`head`/`history`). Default 2 000 ms. */
  publishTimeoutMs?: number
  /** `XREAD BLOCK` timeout of the live loop. Default 5 000 ms. */
  blockMs?: number
}

/** How long this instance's publishing must pause before the live loop reads again (see #whilePublishing). */
const QUIET_MS = 2

/** A clock offset sample is replaced by a less precise one once it is this old (clocks drift). */
const OFFSET_KEEP_MS = 60_000

/** Replay page reads in flight at once on the shared client: publishes queue behind at most this many. */
const REPLAY_READS = 2

export class RedisTransport implements HubTransport {
  readonly #redis: Redis
  readonly #keys: Keys
  readonly #token = randomUUID()
  readonly #history: number
  readonly #firehose: number
  readonly #ttlMs: number
  readonly #timeoutMs: number
  readonly #blockMs: number
  readonly #replayReads = new Slots(REPLAY_READS)
  #sub: Redis | undefined
  #deliver: ((message: HubMessage) => void) | undefined
  #resync: (() => void) | undefined
  #reset: ((id: string, lostBefore?: number) => void) | undefined
  #log: FastifyBaseLogger = silentLog
  #loop: Promise<void> = Promise.resolve()
  #closed = false
  #down = false
  /** Times live delivery came back after an outage. */
  #reconnects = 0
  /** Stream id the live loop reads after, and its number: every event up to it was delivered (or predates start). */
  #position: string | undefined
  #delivered = -1
  /** The epoch of the ids delivered here (see "Data loss"). */
  #epoch = -1
  /** A reply showed another epoch: the live loop checks the epoch key before delivering more. */
  #epochSuspect = false
  /** Before live delivery has a position (Redis was down at start): just below the first id published here, so the loop still delivers it. */
  #earliest = Infinity
  /** When start() was called (Date.now()): no subscriber of this instance arrived before. */
  #startedAt = 0
  /** Redis clock minus ours, in ms, once known; off by at most #offsetError, learned at #offsetAt (Date.now()). */
  #offset: number | undefined
  #offsetError = Infinity
  #offsetAt = -Infinity
  /** Highest id this instance has seen anywhere: the floor ids never go below. */
  #floor = 0
  /** Publishes of this instance awaiting Redis, and when the last one's reply came (performance.now()). */
  #publishing = 0
  #publishedAt = -Infinity
  /** A publish reply could not deliver everything up to its id: the loop must read now. */
  #behind = false
  /** Ends the live loop's pause (see #whilePublishing). */
  #resume: (() => void) | undefined
  /** The one wait for the client's 'ready' that every command in an outage shares. */
  #ready: Promise<void> | undefined
  /** since/head calls waiting for live delivery to pass an id. */
  readonly #waiters = new Set<{ target: number, done: (ok: boolean) => void }>()
  /** Cancels pending timers and waits on close. */
  readonly #pending = new Set<() => void>()

  constructor (options: RedisTransportOptions) {
    const redis = options?.redis
    if (redis === null || typeof redis !== 'object' || typeof redis.duplicate !== 'function' || typeof redis.evalsha !== 'function') {
      throw new SseInvalidOptionError('redis (redisTransport)', 'must be an ioredis client (new Redis(url))')
    }
    if (typeof redis.options?.keyPrefix === 'string' && redis.options.keyPrefix !== '') {
      throw new SseInvalidOptionError('redis (redisTransport)', 'is an ioredis client with keyPrefix set; use the transport option prefix instead')
    }
    const prefix = options.prefix ?? 'sse'
    if (typeof prefix !== 'string' || prefix === '' || /[\s]/.test(prefix)) throw new SseInvalidOptionError('prefix (redisTransport)', 'must be a non-empty string without spaces')
    this.#redis = redis
    this.#keys = keysOf(prefix)
    this.#history = nonNegativeInt('history', options.history, 1000)
    this.#firehose = nonNegativeInt('firehose', options.firehose, 10_000, 1)
    this.#ttlMs = nonNegativeInt('topicTtlMs', options.topicTtlMs, 24 * 3600_000, 4)
    this.#timeoutMs = nonNegativeInt('publishTimeoutMs', options.publishTimeoutMs, 2000, 1)
    this.#blockMs = nonNegativeInt('blockMs', options.blockMs, 5000, 1)
  }

  async start (deliver: (message: HubMessage) => void, log: FastifyBaseLogger, resync?: () => void, reset?: (id: string, lostBefore?: number) => void): Promise<void> {
    if (this.#deliver !== undefined) throw new SseInvalidOptionError('transport', 'is already started by another app (one redisTransport per app)')
    this.#deliver = deliver
    this.#resync = resync
    this.#reset = reset
    this.#log = log ?? silentLog
    this.#startedAt = Date.now()
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
      this.#setStart(head, sent, false)
    } catch (err) {
      this.#markDown(err)
    }
    this.#loop = this.#run()
  }

  async publish (topic: string, event: PublishInput): Promise<string> {
    if (this.#closed) throw new SseHubClosedError()
    const fields: string[] = []
    if (event.event !== undefined) fields.push('event', event.event)
    fields.push('data', event.data)
    if (event.retry !== undefined) fields.push('retry', String(event.retry))
    const what = `publish to topic "${topic}"`
    const called = Date.now()
    // Redis refuses the event after this instant (Redis clock), the moment
    // the caller would be told it failed; unknown until the clock offset is known.
    const deadline = this.#offset === undefined ? 0 : Math.round(called + this.#offset + this.#timeoutMs)
    let sent = called
    this.#publishing++
    let reply: unknown
    try {
      reply = await this.#call(what, () => {
        sent = Date.now()
        return scripts.publish.run(this.#redis, [
          ...this.#baseKeys(), this.#keys.ticks, this.#keys.topic(topic), this.#keys.mark(topic), this.#keys.instance(this.#token),
          this.#floor, this.#firehose, this.#history, topic, deadline,
          this.#position === undefined ? -1 : this.#delivered, this.#ttlMs, ...fields
        ])
      }, deadline)
    } finally {
      this.#publishing--
      this.#publishedAt = performance.now()
    }
    const [id, fresh, redisMs, missed, epoch] = reply as [string, number, number, StreamEntry[], string]
    this.#clock(redisMs, sent)
    if (fresh !== 0) this.#newEpoch(id, 'publish', fresh)
    const n = Number(id)
    if (this.#position === undefined) this.#earliest = Math.min(this.#earliest, n - 1)
    this.#see(n)
    // Deliver now, in id order, what other instances published since this
    // one's previous publish (the script read it), then our own event, instead
    // of when the XREAD loop brings them: a second round trip through Redis
    // that waits for a turn of an event loop busy with fan-out. A gap (ids
    // trimmed, more than the reply carries, an earlier reply not delivered
    // yet) or another epoch is left to the loop, which delivers in id order
    // and skips what is delivered here.
    if (Number(epoch) !== this.#epoch) this.#epochSuspect = true
    else if (fresh === 0 && this.#position !== undefined && !this.#closed) {
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

  async since (topics: readonly string[], afterId: string, page: SincePage): Promise<SinceResult> {
    const after = parseId(afterId)
    const first = page.upTo === undefined
    const upTo = first ? Math.max(this.#delivered, after ?? -1) : (parseId(page.upTo) ?? -1)
    const none: SinceResult = { events: [], complete: false, upTo: String(upTo), more: false }
    if (after === undefined || upTo < 0 || this.#closed) return none
    const limit = Math.max(1, Math.floor(page.limit))
    const keys = [...this.#baseKeys(), this.#keys.ticks]
    for (const topic of topics) keys.push(this.#keys.topic(topic), this.#keys.mark(topic))
    const what = `replay of ${topics.length === 1 ? `topic "${topics[0]!}"` : `${topics.length} topics`}`
    let reply: [number, string, number, Array<[number, string, string[]]>]
    await this.#replayReads.acquire()
    try {
      // Queued behind a herd of replays while Redis went away: fail now, not one timeout after another.
      if (this.#closed) return none
      if (this.#redis.status !== 'ready') throw unavailable(`${what}: connection is ${this.#redis.status}`)
      reply = await this.#call(what, () => scripts.since.run(this.#redis, [...keys, this.#floor, after, upTo, limit, this.#ttlMs], keys.length)) as typeof reply
    } catch (err) {
      // The hub cannot fail a stream here: the client gets `reset` instead (or, mid-replay, reconnects).
      this.#log.warn({ err: describe(err), topics }, 'sse redis: replay failed; the reconnecting client gets reset')
      return none
    } finally {
      this.#replayReads.release()
    }
    const [complete, seq, fresh, entries] = reply
    if (fresh !== 0) this.#newEpoch(seq, 'replay', fresh)
    this.#see(Number(seq))
    if (complete !== 1) return none
    const events: HubMessage[] = []
    for (const [index, sid, fields] of entries) {
      const n = seqOf(sid)
      const message = n === undefined ? undefined : messageOf(String(n), topics[index - 1], fields)
      if (message !== undefined) events.push(message)
    }
    const more = entries.length >= limit
    // Live delivery here must pass the end of the replay (the client's own id
    // when it is ahead of us), or it would send those events a second time.
    if (!more && !await this.#caughtUp(upTo)) {
      this.#log.warn({ topics, upTo, delivered: this.#delivered }, 'sse redis: live delivery is behind; the reconnecting client gets reset instead of a replay')
      return none
    }
    return { events, complete: true, upTo: String(upTo), more }
  }

  /** Deletes a topic's history (a dropped run's); its mark keeps the newest id, so clients holding an older one get reset. */
  async forget (topic: string): Promise<void> {
    await this.#call(`forget topic "${topic}"`,
      async () => await scripts.forget.run(this.#redis, [this.#keys.topic(topic), this.#keys.mark(topic), this.#ttlMs]))
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
    let reply: [string, string, number, number, string]
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
    const [seq, firehoseTop] = this.#sawHead(reply, sent, 'head')
    // So that no live event up to the head reaches a client after it was told the head.
    await this.#caughtUp(firehoseTop)
    return seq
  }

  /**
   * Not ready while either connection (the client's, or the live loop's) is
   * down, or before live delivery knows where to start (Redis unreachable at start).
   */
  ready (): { ready: boolean, reason?: string } {
    if (this.#closed) return { ready: false, reason: 'redis transport closed' }
    const status = this.#redis.status
    if (status !== 'ready') return { ready: false, reason: `redis connection is ${status}` }
    if (this.#position === undefined) return { ready: false, reason: 'redis live delivery has not started' }
    if (this.#down || this.#sub?.status !== 'ready') return { ready: false, reason: 'redis live delivery is reconnecting' }
    return { ready: true }
  }

  /** @internal What `fastify-htmx-sse/metrics` reports for this transport. */
  [TRANSPORT_METRICS] (): TransportMetrics {
    const reconnects = (): number => this.#reconnects
    return {
      get reconnects () { return reconnects() },
      lag: async () => await this.#lag()
    }
  }

  /**
   * Ids the counter assigned that live delivery here has not reached. Ids
   * are consecutive within an epoch; when the counter is in an epoch this
   * instance has not reached yet, what is left of the old one is unknown and
   * only the new epoch's events are counted.
   */
  async #lag (): Promise<number | undefined> {
    if (this.#closed || this.#position === undefined || this.#redis.status !== 'ready') return undefined
    let reply: Array<string | null>
    try {
      reply = await this.#call('lag', () => this.#redis.mget(this.#keys.seq, this.#keys.epoch))
    } catch {
      return undefined
    }
    const seq = parseId(reply[0] ?? undefined)
    if (seq === undefined) return 0
    const epoch = parseId(reply[1] ?? undefined) ?? 0
    if (epoch !== this.#epoch && epoch > this.#delivered) return Math.max(0, seq - epoch)
    return Math.max(0, seq - this.#delivered)
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#deliver = undefined
    for (const cancel of [...this.#pending]) cancel()
    for (const waiter of [...this.#waiters]) waiter.done(false)
    this.#replayReads.drain()
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

  /**
   * Learns Redis's clock offset from a reply's TIME (sent: when the command
   * left). Redis read its clock between sending and now, so the midpoint is
   * off by at most half the round trip (and TIME's truncation to ms). The
   * sample with the smallest error wins, unless the kept one is old.
   */
  #clock (redisMs: number, sent: number): void {
    if (typeof redisMs !== 'number') return
    const now = Date.now()
    const error = (now - sent) / 2 + 1
    if (error > this.#offsetError && now - this.#offsetAt < OFFSET_KEEP_MS) return
    this.#offset = redisMs - (sent + now) / 2
    this.#offsetError = error
    this.#offsetAt = now
  }

  /**
   * An instant (performance.now()) after which Redis had surely lost the
   * data that epoch `epoch` replaced. The first script that ran after the
   * loss created the epoch from Redis's clock in µs (or from a floor above
   * it), so the loss came before epoch / 1000 in Redis's clock; in ours, at
   * most the offset's error later. Without a known offset: now, the moment
   * we learn of the epoch, which is also after the loss.
   */
  #lostBefore (epoch: number): number {
    const now = performance.now()
    if (this.#offset === undefined) return now
    return Math.min(now, now + epoch / 1000 - this.#offset + this.#offsetError - Date.now())
  }

  #see (id: number): void {
    if (Number.isSafeInteger(id) && id > this.#floor) this.#floor = id
  }

  /**
   * Fixes where live delivery starts. `late`: start() could not reach Redis,
   * so subscribers may have connected before this position was read, and
   * an event published between their arrival and the read would never reach
   * them. When the epoch began after start() (Redis came back empty, as
   * after a restart without persistence), every event of it may be owed to
   * them: live delivery starts from the epoch's start. Otherwise their
   * arrival cannot be placed among the ids, and they are closed (resync),
   * so clients resume with replay or reset.
   */
  #setStart (head: unknown, sent: number, late: boolean): void {
    const [seq, , fresh, redisMs, epoch] = head as [string, string, number, number, string]
    this.#clock(redisMs, sent)
    if (fresh !== 0) this.#newEpoch(seq, 'start', fresh)
    this.#see(Number(seq))
    const e = Number(epoch)
    // The epoch's id is Redis's clock (µs) when it began (see "Data loss").
    const whole = late && this.#offset !== undefined && e / 1000 - this.#offset - this.#offsetError > this.#startedAt
    const n = Math.min(Number(seq), this.#earliest, whole ? e : Infinity)
    this.#position = `${n}-0`
    this.#delivered = n
    this.#epoch = e
    if (late && !whole) {
      this.#log.info({ after: n }, 'sse redis: live delivery starts now that Redis answers; subscribers that connected before are closed so they resume')
      this.#resync?.()
    }
    this.#wake()
  }

  /** A head reply outside start: learns the clock, a new epoch and the counter. */
  #sawHead (head: unknown, sent: number, where: string): [string, number] {
    const [seq, firehoseTop, fresh, redisMs, epoch] = head as [string, string, number, number, string]
    this.#clock(redisMs, sent)
    if (fresh !== 0) this.#newEpoch(seq, where, fresh)
    if (Number(epoch) !== this.#epoch) this.#epochSuspect = true
    this.#see(Number(seq))
    return [seq, Number(firehoseTop)]
  }

  #newEpoch (id: string, where: string, code: number): void {
    this.#epochSuspect = true
    if (code === 2) {
      this.#log.info({ id, prefix: this.#keys.seq }, 'sse redis: started the id counter')
      return
    }
    this.#log.warn({ id, where }, 'sse redis: the id counter was missing or behind (Redis lost data: restart without persistence, failover or restore); ids continue from a new epoch, clients here get reset')
  }

  #markDown (err: unknown): void {
    if (this.#down || this.#closed) return
    this.#down = true
    this.#log.warn({ err: describe(err), delivered: this.#position }, 'sse redis: Redis unavailable; publishes fail with "redis unavailable", connected clients stay open, retrying in the background')
  }

  #markUp (): void {
    if (!this.#down) return
    this.#down = false
    this.#reconnects++
    this.#log.info({ resumeAfter: this.#position }, 'sse redis: Redis reachable again; live delivery resumes after the last delivered id')
  }

  /**
   * Runs a command on the user's client: waits at most publishTimeoutMs for
   * the connection, then for the reply. Never leaves a command queued offline.
   * A publish (`deadline`: when Redis refuses it, 0 when unknown) that is
   * still unanswered on a healthy connection then waits as long again for
   * the reply that says whether it was applied.
   *
   * close() ends the wait for the connection (the command is never sent:
   * HTMX_SSE_HUB_CLOSED) and the wait for a reply, except a publish's: the
   * client is the user's and stays open, so its reply (or the client's own
   * failure, "not confirmed") still tells whether Redis applied it.
   */
  async #call<T> (what: string, send: () => Promise<T>, deadline?: number): Promise<T> {
    const client = this.#redis
    const publish = deadline !== undefined
    const started = Date.now()
    if (client.status !== 'ready') {
      if (client.status === 'end') throw unavailable(`${what}${publish ? ' not accepted' : ''}: the ioredis client was closed (quit or disconnect)`)
      if (client.status === 'wait') client.connect().catch(noop)
      await this.#within(this.#connected(), this.#timeoutMs, () => unavailable(
        `${what}${publish ? ' not accepted' : ' failed'}: connection is ${client.status} (waited ${this.#timeoutMs} ms)`), undefined, true)
    }
    if (this.#closed) throw new SseHubClosedError()
    const left = Math.max(1, this.#timeoutMs - (Date.now() - started))
    const reply = send()
    let grace = publish ? this.#timeoutMs : 0
    const extend = (): number => {
      if (client.status !== 'ready') return 0
      const more = grace
      grace = 0
      return more
    }
    try {
      return await this.#within(reply, left, () => publish
        ? unavailable(`${what} not confirmed: no reply within ${this.#timeoutMs * 2} ms; it was applied only if Redis ran it ${deadline > 0 ? 'before its deadline (then it is delivered like any other event)' : 'at all (the Redis clock was not known yet, so it carries no deadline)'}`)
        : unavailable(`${what}: no reply within ${this.#timeoutMs} ms`), extend, !publish)
    } catch (err) {
      if (err instanceof SseRedisUnavailableError || err instanceof SseHubClosedError) throw err
      if (err instanceof Error && err.message.startsWith('EXPIRED')) throw unavailable(`${what} not accepted: ${err.message.slice(8)}`, err)
      // An error reply from Redis itself (script error, wrong key type): not an outage.
      if (err instanceof Error && err.name === 'ReplyError') throw new SseRedisError(`redisTransport: ${what} failed: ${err.message}`, { cause: err })
      if (publish) throw unavailable(`${what} not confirmed: ${describe(err)}; it was applied only if Redis ran it before the connection failed`, err)
      throw unavailable(`${what}: ${describe(err)}`, err)
    }
  }

  /** Resolves when the client is ready: one 'ready' listener however many commands wait. */
  #connected (): Promise<void> {
    this.#ready ??= new Promise<void>(resolve => {
      const done = (): void => {
        this.#redis.off('ready', done)
        this.#pending.delete(done)
        this.#ready = undefined
        resolve()
      }
      this.#redis.once('ready', done)
      this.#pending.add(done)
    })
    return this.#ready
  }

  /**
   * `promise`, or `error()` after `ms` (unless `extend()` grants more time),
   * or (`onClose`) HTMX_SSE_HUB_CLOSED when the transport closes first.
   */
  #within<T> (promise: Promise<T>, ms: number, error: () => Error, extend?: () => number, onClose = false): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const settle = (): boolean => {
        if (timer === undefined) return false
        clearTimeout(timer)
        timer = undefined
        this.#pending.delete(closed)
        return true
      }
      const closed = (): void => { if (settle()) reject(new SseHubClosedError()) }
      const expire = (): void => {
        const more = extend?.() ?? 0
        if (more > 0 && timer !== undefined) timer = setTimeout(expire, more)
        else if (settle()) reject(error())
      }
      let timer: NodeJS.Timeout | undefined = setTimeout(expire, ms)
      if (onClose) this.#pending.add(closed)
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
          this.#setStart(await scripts.head.run(sub, [...this.#baseKeys(), this.#floor]), sent, true)
        } else if (this.#down) {
          // Back after an outage: if Redis lost its data meanwhile, the new
          // epoch starts now rather than at the next publish, so fewer
          // subscribers arrive between the loss and the epoch (they get reset).
          const sent = Date.now()
          this.#sawHead(await scripts.head.run(sub, [...this.#baseKeys(), this.#floor]), sent, 'reconnect')
        }
        this.#markUp()
        await this.#whilePublishing()
        this.#behind = false
        const reply = await this.#xread(sub, this.#position!)
        backoff = 100
        if (reply !== null) {
          // A jump in ids is either a new epoch (Redis lost data) or a trimmed
          // firehose (events this instance can no longer deliver live): only
          // the epoch key tells them apart. A reply elsewhere may also have
          // shown a new epoch whose ids follow ours without a jump.
          const first = seqOf(reply[0]?.[1][0]?.[0] ?? '')
          const check = this.#epochSuspect || (first !== undefined && first > this.#delivered + 1 && this.#delivered > 0)
          const epoch = check ? Number(await sub.get(this.#keys.epoch)) : undefined
          if (check) this.#epochSuspect = false
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

  /** Delivers an XREAD reply; `epoch` (the epoch key, when read) tells a new epoch from a trimmed firehose. */
  #handle (reply: Array<[string, StreamEntry[]]>, epoch?: number): void {
    for (const [, entries] of reply) {
      for (const [sid, fields] of entries) {
        const n = seqOf(sid)
        // Never back: an event delivered on publish may already be past this one.
        if (n === undefined || n > this.#delivered) this.#position = sid
        if (n === undefined || n <= this.#delivered) continue
        if (epoch !== undefined && epoch !== this.#epoch && n > epoch) {
          // Redis lost data: events of the old epoch this instance had not
          // delivered yet may be gone, and nothing tells which.
          this.#log.warn({ from: this.#delivered, epoch },
            'sse redis: live delivery reached a new epoch (Redis lost data); sending reset to subscribers here')
          this.#epoch = epoch
          this.#reset?.(String(epoch), this.#lostBefore(epoch))
        } else if (n > this.#delivered + 1 && this.#delivered > 0) {
          this.#log.warn({ from: this.#delivered, to: n },
            'sse redis: ids jumped (firehose trimmed while this instance was cut off); closing subscribers here so they resume with replay or reset')
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
