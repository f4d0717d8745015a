/**
 * Redis transport (`fastify-htmx-sse/redis`): several Fastify instances share
 * topics, ids and history through Redis Streams (Redis ≥ 5, ioredis 5). Its
 * parts: the keys and Lua scripts (./redis/scripts.ts), what was delivered
 * here and in which epoch (./redis/delivery.ts), the XREAD loop
 * (./redis/live.ts), and the Redis call layer it shares with the run store
 * (../redis/call.ts): bounded calls, deadlines in Redis's clock, script
 * reloads, one coded error.
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
import type { Redis } from 'ioredis'
import { SseHubClosedError, SseInvalidOptionError } from '../errors.js'
import { TRANSPORT_METRICS, type TransportMetrics } from '../counters.js'
import { describe, RedisCalls } from '../redis/call.js'
import { checkClient, intOption, prefixOption, type RedisUser } from '../redis/client.js'
import type { HubMessage, HubTransport, PublishInput, SincePage, SinceResult } from '../transport.js'
import { parseId } from '../transport.js'
import type { Delivery } from './redis/delivery.js'
import { LiveLoop } from './redis/live.js'
import { type Keys, keysOf, scripts } from './redis/scripts.js'
import { messageOf, seqOf, silentLog, Slots, type StreamEntry } from './redis/support.js'

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

/** Replay page reads in flight at once on the shared client: publishes queue behind at most this many. */
const REPLAY_READS = 2

const USER: RedisUser = { owner: 'redisTransport', noun: 'transport' }

export class RedisTransport implements HubTransport {
  readonly #redis: Redis
  readonly #calls: RedisCalls
  readonly #live: LiveLoop
  readonly #delivery: Delivery
  readonly #keys: Keys
  readonly #token = randomUUID()
  readonly #history: number
  readonly #firehose: number
  readonly #ttlMs: number
  readonly #replayReads = new Slots(REPLAY_READS)
  #started = false
  #log: FastifyBaseLogger = silentLog
  #closed = false

  constructor (options: RedisTransportOptions) {
    this.#redis = checkClient(options?.redis, USER)
    this.#keys = keysOf(prefixOption(USER, options.prefix, 'sse'))
    this.#history = intOption(USER, 'history', options.history, 1000)
    this.#firehose = intOption(USER, 'firehose', options.firehose, 10_000, 1)
    this.#ttlMs = intOption(USER, 'topicTtlMs', options.topicTtlMs, 24 * 3600_000, 4)
    const timeoutMs = intOption(USER, 'publishTimeoutMs', options.publishTimeoutMs, 2000, 1)
    const blockMs = intOption(USER, 'blockMs', options.blockMs, 5000, 1)
    this.#calls = new RedisCalls(this.#redis, { owner: USER.owner, timeoutMs, closed: () => new SseHubClosedError() })
    this.#live = new LiveLoop(this.#calls, this.#keys, blockMs, timeoutMs)
    this.#delivery = this.#live.delivery
  }

  async start (deliver: (message: HubMessage) => void, log: FastifyBaseLogger, resync?: () => void, reset?: (id: string, lostBefore?: number) => void): Promise<void> {
    if (this.#started) throw new SseInvalidOptionError('transport', 'is already started by another app (one redisTransport per app)')
    this.#started = true
    this.#log = log ?? silentLog
    await this.#live.start({ deliver, log, resync, reset })
  }

  async publish (topic: string, event: PublishInput): Promise<string> {
    if (this.#closed) throw new SseHubClosedError()
    const fields: string[] = []
    if (event.event !== undefined) fields.push('event', event.event)
    fields.push('data', event.data)
    if (event.retry !== undefined) fields.push('retry', String(event.retry))
    const done = this.#live.publishing()
    let reply: unknown[]
    try {
      reply = await this.#calls.write(`publish to topic "${topic}"`, scripts.publish, [
        ...this.#baseKeys(), this.#keys.ticks, this.#keys.topic(topic), this.#keys.mark(topic), this.#keys.instance(this.#token)
      ], () => [this.#delivery.floor, this.#firehose, this.#history, topic, this.#delivery.after, this.#ttlMs, ...fields], { grace: true })
    } finally {
      done()
    }
    const [id, fresh, missed, epoch] = reply as [string, number, StreamEntry[], string]
    this.#live.published({ id, topic, event: event.event, data: event.data, retry: event.retry }, fresh, missed, epoch)
    return id
  }

  async since (topics: readonly string[], afterId: string, page: SincePage): Promise<SinceResult> {
    const after = parseId(afterId)
    const first = page.upTo === undefined
    const upTo = first ? Math.max(this.#delivery.delivered, after ?? -1) : (parseId(page.upTo) ?? -1)
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
      if (this.#redis.status !== 'ready') throw this.#calls.unavailable(`${what}: connection is ${this.#redis.status}`)
      reply = await this.#calls.script(what, scripts.since, keys, () => [this.#delivery.floor, after, upTo, limit, this.#ttlMs]) as typeof reply
    } catch (err) {
      // The hub cannot fail a stream here: the client gets `reset` instead (or, mid-replay, reconnects).
      this.#log.warn({ err: describe(err), topics }, 'sse redis: replay failed; the reconnecting client gets reset')
      return none
    } finally {
      this.#replayReads.release()
    }
    const [complete, seq, fresh, entries] = reply
    this.#delivery.counted(seq, fresh, 'replay')
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
    if (!more && !await this.#delivery.caughtUp(upTo)) {
      this.#log.warn({ topics, upTo, delivered: this.#delivery.delivered }, 'sse redis: live delivery is behind; the reconnecting client gets reset instead of a replay')
      return none
    }
    return { events, complete: true, upTo: String(upTo), more }
  }

  /** Deletes a topic's history (a dropped run's); its mark keeps the newest id, so clients holding an older one get reset. */
  async forget (topic: string): Promise<void> {
    await this.#calls.script(`forget topic "${topic}"`, scripts.forget, [this.#keys.topic(topic), this.#keys.mark(topic)], [this.#ttlMs])
  }

  async history (topic: string, limit: number): Promise<HubMessage[]> {
    if (limit <= 0) return []
    const entries = await this.#calls.call(`history of topic "${topic}"`,
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
    let reply: unknown[]
    try {
      reply = await this.#calls.timed('head', scripts.head, this.#baseKeys(), () => [this.#delivery.floor])
    } catch (err) {
      this.#log.warn({ err: describe(err) }, 'sse redis: could not read the newest id; using the newest this instance has seen')
      const floor = this.#delivery.floor
      return floor > 0 ? String(floor) : undefined
    }
    const [seq, firehoseTop] = this.#delivery.sawHead(reply, 'head')
    // So that no live event up to the head reaches a client after it was told the head.
    await this.#delivery.caughtUp(firehoseTop)
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
    const reason = this.#live.notReady()
    return reason === undefined ? { ready: true } : { ready: false, reason }
  }

  /** @internal What `fastify-htmx-sse/metrics` reports for this transport. */
  [TRANSPORT_METRICS] (): TransportMetrics {
    const live = this.#live
    return {
      get reconnects () { return live.reconnects },
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
    if (this.#closed || this.#delivery.position === undefined || this.#redis.status !== 'ready') return undefined
    let reply: Array<string | null>
    try {
      reply = await this.#calls.call('lag', () => this.#redis.mget(this.#keys.seq, this.#keys.epoch))
    } catch {
      return undefined
    }
    const seq = parseId(reply[0] ?? undefined)
    if (seq === undefined) return 0
    const delivered = this.#delivery.delivered
    const epoch = parseId(reply[1] ?? undefined) ?? 0
    if (epoch !== this.#delivery.epoch && epoch > delivered) return Math.max(0, seq - epoch)
    return Math.max(0, seq - delivered)
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#calls.close()
    const live = this.#live.close()
    this.#replayReads.drain()
    await live
  }

  #baseKeys (): string[] {
    return [this.#keys.seq, this.#keys.epoch, this.#keys.all]
  }
}

/** A hub transport over Redis Streams, for several instances behind a load balancer. */
export function redisTransport (options: RedisTransportOptions): RedisTransport {
  return new RedisTransport(options)
}
