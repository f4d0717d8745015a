/**
 * The broadcast hub: topics, fan-out of one encoded frame to every
 * subscriber, and lossless replay for reconnecting clients.
 */
import type { FastifyBaseLogger } from 'fastify'
import { assertEventName, assertRetry, encodeEvent, type Frame } from './encode.js'
import type { FlushScheduler, SseData, SseStream } from './stream.js'
import { parseId, type HubMessage, type HubTransport } from './transport.js'

/** What `publish` takes: the hub assigns the id. */
export interface HubEvent {
  event?: string | undefined
  data: SseData
  retry?: number | undefined
}

export interface HubStats {
  /** Open hub subscriptions (connections subscribed to at least one topic). */
  connections: number
  /** Subscribers per topic, for topics with at least one. */
  topics: Record<string, number>
  /** Events published through this instance. */
  published: number
  /** Events handed to sockets (all SSE streams of this instance), replay included. */
  delivered: number
  /** Events handed to sockets by replay. */
  replayed: number
  /** Connections closed for being slow consumers. */
  evicted: number
  /** Reconnects whose Last-Event-ID was older than the history (sent a `reset`). */
  resets: number
}

/** Topic names: 1–64 chars of letters, digits and `_ - . : /`. */
export const TOPIC_PATTERN = /^[A-Za-z0-9_\-.:/]{1,64}$/
export const MAX_TOPICS_PER_CONNECTION = 32

/** Returns why a topic list is invalid, or undefined when it is fine. */
export function topicsProblem (topics: unknown): string | undefined {
  if (!Array.isArray(topics) || topics.length === 0) return 'topics must be a non-empty array of topic names'
  if (topics.length > MAX_TOPICS_PER_CONNECTION) return `at most ${MAX_TOPICS_PER_CONNECTION} topics per connection, got ${topics.length}`
  for (const t of topics) {
    if (typeof t !== 'string' || !TOPIC_PATTERN.test(t)) {
      return `invalid topic ${JSON.stringify(String(t)).slice(0, 80)}: use 1-64 characters of A-Z a-z 0-9 _ - . : /`
    }
  }
  return undefined
}

export function assertTopic (topic: string): void {
  const problem = topicsProblem([topic])
  if (problem !== undefined) throw new TypeError(problem)
}

const RESET_DATA = 'history no longer reaches your last event; reload'

/** One connection's subscription to one or more topics. */
class Subscriber {
  /** While replaying: live frames that arrive meanwhile, with their ids. */
  held: Array<{ id: number, frame: Frame }> | null = null
  heldBytes = 0

  constructor (readonly stream: SseStream, readonly topics: readonly string[]) {}
}

export interface HubOptions {
  transport: HubTransport
  scheduler: FlushScheduler
  log: FastifyBaseLogger
  maxBufferedBytes: number
  counters: { delivered: number, evicted: number }
}

export class SseHub {
  readonly #transport: HubTransport
  readonly #scheduler: FlushScheduler
  readonly #log: FastifyBaseLogger
  readonly #maxBuffered: number
  readonly #counters: { delivered: number, evicted: number }
  readonly #topics = new Map<string, Set<Subscriber>>()
  #connections = 0
  #published = 0
  #replayed = 0
  #resets = 0
  #closed = false

  /** @internal Created by the plugin. */
  constructor (options: HubOptions) {
    this.#transport = options.transport
    this.#scheduler = options.scheduler
    this.#log = options.log
    this.#maxBuffered = options.maxBufferedBytes
    this.#counters = options.counters
  }

  /** @internal */
  async start (): Promise<void> {
    await this.#transport.start(message => this.#deliver(message), this.#log, () => this.#resync())
  }

  /**
   * Renders `event.data` once, hands it to the transport, and resolves with
   * the id the transport assigned once it is accepted. Every subscriber of
   * the topic, on every instance, gets the same bytes.
   */
  async publish (topic: string, event: HubEvent): Promise<string> {
    assertTopic(topic)
    if (event === null || typeof event !== 'object') throw new TypeError('publish(topic, event): event must be an object { data, event?, retry? }')
    if (event.event !== undefined) assertEventName(event.event)
    if (event.retry !== undefined) assertRetry(event.retry)
    if ('id' in event && (event as { id?: unknown }).id !== undefined) {
      throw new TypeError('publish(topic, event): the hub assigns ids; remove "id"')
    }
    if (this.#closed) throw new Error('sseHub is closed')
    const data = await event.data
    if (typeof data !== 'string') throw new TypeError(`publish: data must render to a string, got ${typeof data}`)
    const id = await this.#transport.publish(topic, { event: event.event, data, retry: event.retry })
    this.#published++
    return id
  }

  /** The newest events of a topic (oldest first), for pre-rendering a page. Put the last id into the page's connect URL. */
  async history (topic: string, options: { limit?: number } = {}): Promise<HubMessage[]> {
    assertTopic(topic)
    const limit = options.limit ?? 100
    if (!Number.isSafeInteger(limit) || limit < 0) throw new TypeError('history: limit must be a non-negative integer')
    const kept = await this.#transport.history(topic, limit)
    // Plain copies: callers may spread or serialize them, and the encoded frame stays internal.
    return kept.map(m => ({ id: m.id, topic: m.topic, event: m.event, data: m.data, retry: m.retry }))
  }

  /** The newest id assigned on any topic (what a page renders into `lastEventId` when it has no history). */
  async head (): Promise<string | undefined> {
    return await this.#transport.head()
  }

  stats (): HubStats {
    const topics: Record<string, number> = {}
    for (const [name, subs] of this.#topics) topics[name] = subs.size
    return {
      connections: this.#connections,
      topics,
      published: this.#published,
      delivered: this.#counters.delivered,
      replayed: this.#replayed,
      evicted: this.#counters.evicted,
      resets: this.#resets
    }
  }

  /**
   * @internal Subscribes a stream to topics; with a Last-Event-ID, first
   * replays what it missed. Live events that arrive during the replay are
   * held and released after it, skipping any the replay already sent.
   */
  async subscribe (stream: SseStream, topics: readonly string[], lastEventId: string | undefined): Promise<void> {
    const sub = new Subscriber(stream, topics)
    if (lastEventId !== undefined) sub.held = []
    for (const topic of topics) {
      let subs = this.#topics.get(topic)
      if (subs === undefined) this.#topics.set(topic, subs = new Set())
      subs.add(sub)
    }
    this.#connections++
    stream.onClose(() => this.#unsubscribe(sub))
    if (lastEventId === undefined) return
    try {
      await this.#replay(sub, lastEventId)
    } catch (err) {
      // The transport could not say what was missed. Ending the stream makes
      // the client reconnect with the same id and try again: nothing is skipped.
      this.#log.error({ err }, 'sse: replay failed; closing the stream so the client retries')
      stream.close()
    }
  }

  /** @internal */
  async close (): Promise<void> {
    this.#closed = true
    await this.#transport.close()
  }

  #resync (): void {
    const streams = new Set<SseStream>()
    for (const subs of this.#topics.values()) for (const sub of subs) streams.add(sub.stream)
    this.#log.warn({ connections: streams.size }, 'sse: transport reported a gap; closing subscribers so they resume from history')
    for (const stream of streams) stream.close()
  }

  #unsubscribe (sub: Subscriber): void {
    for (const topic of sub.topics) {
      const subs = this.#topics.get(topic)
      if (subs === undefined) continue
      subs.delete(sub)
      if (subs.size === 0) this.#topics.delete(topic)
    }
    sub.held = null
    this.#connections--
  }

  #frameOf (message: HubMessage): Frame {
    message.frame ??= encodeEvent({ id: message.id, event: message.event, retry: message.retry, data: message.data })
    return message.frame
  }

  #deliver (message: HubMessage): void {
    const subs = this.#topics.get(message.topic)
    const frame = this.#frameOf(message)
    if (subs === undefined) return
    const seq = this.#scheduler.nextSeq()
    for (const sub of subs) {
      if (sub.held === null) {
        sub.stream.enqueue(frame, seq)
      } else {
        sub.held.push({ id: Number(message.id), frame })
        sub.heldBytes += frame.bytes.length
        if (sub.heldBytes > this.#maxBuffered) this.#evictWhileReplaying(sub)
      }
    }
  }

  #evictWhileReplaying (sub: Subscriber): void {
    sub.held = null
    sub.stream.evict()
  }

  async #replay (sub: Subscriber, lastEventId: string): Promise<void> {
    const { stream } = sub
    let lastSent = parseId(lastEventId) ?? -1
    let missed: HubMessage[] = []
    let complete = lastSent >= 0
    if (complete) {
      const results = await Promise.all(sub.topics.map(topic => this.#transport.since(topic, lastEventId)))
      for (const r of results) {
        if (!r.complete) complete = false
        missed = missed.concat(r.events)
      }
    }
    if (!complete) {
      // Lost history: tell the page to reload its state, then go live from the head.
      const head = await this.#transport.head()
      const headId = parseId(head) ?? -1
      if (stream.closed) return
      this.#resets++
      stream.writeNow(encodeEvent({ event: 'reset', id: head, data: RESET_DATA }), 0)
      missed = []
      lastSent = headId
    }
    if (sub.topics.length > 1) missed.sort((a, b) => Number(a.id) - Number(b.id))
    // Paced by the socket: written as it drains, never queued all at once, or a
    // client evicted for slowness would be evicted again on every reconnect.
    for (const message of missed) {
      if (stream.closed) return
      const id = Number(message.id)
      if (id <= lastSent) continue
      stream.writeNow(this.#frameOf(message), 1)
      this.#replayed++
      lastSent = id
      if (stream.backlog > this.#maxBuffered / 2) await stream.writable(this.#maxBuffered / 4)
    }
    if (stream.closed || sub.held === null) return
    const held = sub.held
    sub.held = null
    for (const { id, frame } of held) {
      if (id > lastSent) stream.enqueue(frame, -1)
    }
  }
}
