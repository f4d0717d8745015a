/**
 * The broadcast hub: topics, fan-out of one encoded frame to every
 * subscriber, and lossless replay for reconnecting clients.
 */
import type { FastifyBaseLogger } from 'fastify'
import { encodeEvent, encodeEventText, type Frame, joinFrames, validateFields } from './encode.js'
import { SseEventTooLargeError, SseHubClosedError, SseInvalidEventError, SseInvalidTopicsError } from './errors.js'
import type { HubPacing } from './scheduler.js'
import type { SseCounters } from './counters.js'
import type { FrameJoiner, Session } from './session.js'
import type { SseEvent } from './stream.js'
import { parseId, type HubMessage, type HubTransport, type SinceResult } from './transport.js'

/** What `publish` takes: an `SseEvent` without `id` (the hub assigns ids). */
export type HubEvent = Omit<SseEvent, 'id'>

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
  /**
   * Socket writes (all SSE streams of this instance). One write carries
   * every frame its stream had queued: `delivered / writes` is how many
   * events a write carried on average.
   */
  writes: number
  /** Connections closed for being slow consumers. */
  evicted: number
  /** `reset` events sent: reconnects whose Last-Event-ID was older than the history, and connected subscribers told of lost events. */
  resets: number
}

/** Topic names: 1–64 chars of letters, digits and `_ - . : /`. */
export const TOPIC_PATTERN = /^[A-Za-z0-9_\-.:/]{1,64}$/
export const MAX_TOPICS_PER_CONNECTION = 32

/** A short, safe description of a value that is not a topic (it may be any JSON, or a hostile object). */
function describe (value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 64))
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return `a${typeof value === 'object' || typeof value === 'undefined' ? 'n' : ''} ${typeof value}`
}

/** Returns why a topic list is invalid, or undefined when it is fine. */
export function topicsProblem (topics: unknown): string | undefined {
  if (!Array.isArray(topics) || topics.length === 0) return 'topics must be a non-empty array of topic names'
  if (topics.length > MAX_TOPICS_PER_CONNECTION) return `at most ${MAX_TOPICS_PER_CONNECTION} topics per connection, got ${topics.length}`
  for (const t of topics as unknown[]) {
    if (typeof t !== 'string' || !TOPIC_PATTERN.test(t)) {
      return `invalid topic ${describe(t)}: use 1-64 characters of A-Z a-z 0-9 _ - . : /`
    }
  }
  return undefined
}

export function assertTopic (topic: unknown): asserts topic is string {
  const problem = topicsProblem([topic])
  if (problem !== undefined) throw new SseInvalidTopicsError(problem)
}

/** The `id:` line of any hub id (at most 16 digits), for sizing an event before it has its id. */
const ID_LINE_MAX = 'id: \n'.length + 16

/**
 * The encoded size of an event with the longest id, when that is more than
 * `max`; undefined when it fits. Most events are far below any bound: a
 * UTF-16 code unit is at most 3 bytes of UTF-8 and each line break adds
 * `data: `, so a short string is not measured at all.
 */
function oversize (event: string | undefined, retry: number | undefined, data: string, max: number): number | undefined {
  if (data.length * 4 + 512 <= max) return undefined
  const size = Buffer.byteLength(encodeEventText({ event, retry, data }), 'utf8') + ID_LINE_MAX
  return size > max ? size : undefined
}

/**
 * Fan-out numbering: every frame the hub hands to subscribers is numbered,
 * so subscribers that received the same run of frames share one joined
 * buffer (a burst to N sockets costs one concat, not N). Numbers only grow
 * and are never reused, so a cached join is right whenever it is looked up;
 * the cache is cleared after each flush slice only to bound its memory.
 */
class TickBatch implements FrameJoiner {
  #seq = 0
  /** Frames fanned out since the last flush slice (for the write-latency sample). */
  frames = 0
  /** When the first of them was fanned out (performance.now()). */
  firstAt = 0
  readonly #joined = new Map<number, Map<number, Frame>>()

  next (now: number): number {
    if (this.frames++ === 0) this.firstAt = now
    return this.#seq++
  }

  joined (first: number, last: number, frames: readonly Frame[]): Frame {
    let byLast = this.#joined.get(first)
    if (byLast === undefined) this.#joined.set(first, byLast = new Map())
    let frame = byLast.get(last)
    if (frame === undefined) byLast.set(last, frame = joinFrames(frames))
    return frame
  }

  reset (): void {
    this.frames = 0
    this.#joined.clear()
  }
}

const RESET_DATA = 'history no longer reaches your last event; reload'

/** Events per replay page read from the transport (the socket paces how fast pages follow). */
const REPLAY_PAGE = 100

/** One connection's subscription to one or more topics. */
class Subscriber {
  /** While replaying: live frames that arrive meanwhile, with their ids. */
  held: Array<{ id: number, frame: Frame }> | null = null
  heldBytes = 0
  /**
   * Live events up to this id are skipped: after a `reset` carrying the
   * head, live delivery may not have passed the head yet (the transport
   * could not wait for it), and those events are part of what the client reloads.
   */
  after = -1
  /** When it subscribed (performance.now()): events lost before that were never owed to it. */
  readonly since = performance.now()

  constructor (readonly session: Session, readonly topics: readonly string[]) {}
}

export interface HubOptions {
  transport: HubTransport
  /** The pacing policy (the plugin's FlushScheduler): the hub's only view of it. */
  scheduler: HubPacing
  log: FastifyBaseLogger
  maxBufferedBytes: number
  counters: SseCounters
}

export class SseHub {
  readonly #transport: HubTransport
  readonly #pacing: HubPacing
  readonly #log: FastifyBaseLogger
  readonly #maxBuffered: number
  readonly #counters: SseCounters
  readonly #topics = new Map<string, Set<Subscriber>>()
  readonly #batch = new TickBatch()
  /** Encoded frames of the messages the transport handed us (memory transport: its history objects, so replay reuses them). */
  readonly #frames = new WeakMap<HubMessage, Frame>()
  readonly #watchers = new Map<string, Set<{ start: () => void, stop: () => void, running: boolean }>>()
  #connections = 0
  #closing = false
  #closed = false

  /** @internal Created by the plugin. */
  constructor (options: HubOptions) {
    this.#transport = options.transport
    this.#pacing = options.scheduler
    this.#log = options.log
    this.#maxBuffered = options.maxBufferedBytes
    this.#counters = options.counters
    options.scheduler.onSlice(() => {
      // One sample per slice, not per socket: the oldest frame this slice could have written.
      const observe = this.#counters.observeWriteLatency
      if (observe !== undefined && this.#batch.frames > 0) observe((performance.now() - this.#batch.firstAt) / 1000)
      this.#batch.reset()
    })
  }

  /** @internal The per-turn batch that sessions join hub frames with. */
  get joiner (): FrameJoiner {
    return this.#batch
  }

  /** @internal */
  async start (): Promise<void> {
    await this.#transport.start(message => this.#deliver(message), this.#log, () => this.#resync(), (id, lostBefore) => this.#reset(id, lostBefore))
  }

  /**
   * Renders `event.data` once, hands it to the transport, and resolves with
   * the id the transport assigned once it is accepted. Every subscriber of
   * the topic, on every instance, gets the same bytes. Fields are validated
   * and copied before the data is awaited, so nothing done to `event`
   * meanwhile reaches history. An event larger than `maxBufferedBytes`
   * encoded is refused (no subscriber could take it). A producer that awaits
   * publish in a loop is paced: it yields to I/O once a turn's fan-out is large,
   * so readers that keep up are never evicted by one turn's batch.
   */
  async publish (topic: string, event: HubEvent): Promise<string> {
    assertTopic(topic)
    if (event === null || typeof event !== 'object') throw new SseInvalidEventError('publish(topic, event): event must be an object { data, event?, retry? }')
    const fields = validateFields(event, { id: false, where: 'publish(topic, event)' })
    const pending = event.data
    if (this.#closed) throw new SseHubClosedError()
    const data: unknown = await pending
    if (typeof data !== 'string') throw new SseInvalidEventError(`publish: data must render to a string, got ${data === null ? 'null' : typeof data}`)
    const size = oversize(fields.event, fields.retry, data, this.#maxBuffered)
    if (size !== undefined) throw new SseEventTooLargeError(size, this.#maxBuffered)
    if (this.#closed) throw new SseHubClosedError()
    return await this.#pacing.publish(async () => {
      const id = await this.#transport.publish(topic, { event: fields.event, data, retry: fields.retry })
      this.#counters.published++
      return id
    })
  }

  /** The newest events of a topic (oldest first), for pre-rendering a page. Put the last id into the page's connect URL. */
  async history (topic: string, options: { limit?: number } = {}): Promise<HubMessage[]> {
    assertTopic(topic)
    const limit = options.limit ?? 100
    if (!Number.isSafeInteger(limit) || limit < 0) throw new SseInvalidEventError('history: limit must be a non-negative integer')
    const kept = await this.#transport.history(topic, limit)
    // Plain copies: callers may spread or serialize them.
    return kept.map(m => ({ id: m.id, topic: m.topic, event: m.event, data: m.data, retry: m.retry }))
  }

  /**
   * A page whose state is the topic's own history (notifications, chat):
   * its newest `limit` events (oldest first) and the cursor to go live from.
   * The head is read before the history, so every event is in `items` or
   * replayed after `cursor` (some in both: render them with idempotent
   * fragments, which apply once however often they arrive).
   */
  async snapshot (topic: string, options: { limit?: number } = {}): Promise<{ cursor: string | undefined, items: HubMessage[] }> {
    assertTopic(topic)
    const head = await this.#transport.head()
    const items = await this.history(topic, options)
    return { cursor: head, items }
  }

  /** The newest id assigned on any topic (what a page renders into `lastEventId` when it has no history). */
  async head (): Promise<string | undefined> {
    return await this.#transport.head()
  }

  /**
   * Drops a topic's history (e.g. of a run the store dropped), where the
   * transport can; connected subscribers stay subscribed.
   */
  async forget (topic: string): Promise<void> {
    assertTopic(topic)
    await this.#transport.forget?.(topic)
  }

  stats (): HubStats {
    // No prototype: a topic named "__proto__" is a key like any other.
    const topics = Object.create(null) as Record<string, number>
    for (const [name, subs] of this.#topics) topics[name] = subs.size
    return {
      connections: this.#connections,
      topics,
      published: this.#counters.published,
      delivered: this.#counters.delivered,
      replayed: this.#counters.replayed,
      writes: this.#counters.writes,
      evicted: this.#counters.evicted,
      resets: this.#counters.resets
    }
  }

  /**
   * Readiness, for a load balancer's or Kubernetes' probe: not ready once the
   * app is closing, nor while the transport cannot deliver (Redis: the
   * connection is down, or live delivery has not started yet). Streams that
   * are open stay open meanwhile; this only says whether to send new ones here.
   * Wire it into a health route: `reply.code(ready ? 200 : 503).send({ ready, reason })`.
   */
  ready (): { ready: boolean, reason?: string } {
    if (this.#closing || this.#closed) return { ready: false, reason: 'shutting down' }
    const transport = this.#transport.ready?.()
    if (transport !== undefined && !transport.ready) return { ready: false, reason: transport.reason ?? 'transport not ready' }
    return { ready: true }
  }

  /** @internal The app is closing: ready() says so from now on. */
  closing (): void {
    this.#closing = true
  }

  /**
   * @internal Subscribes a session to topics; with a Last-Event-ID, first
   * replays what it missed. Live events that arrive during the replay are
   * held and released after it, skipping any the replay already sent.
   */
  async subscribe (session: Session, topics: readonly string[], lastEventId: string | undefined): Promise<void> {
    if (session.closed) return
    const sub = new Subscriber(session, topics)
    if (lastEventId !== undefined) sub.held = []
    for (const topic of topics) {
      let subs = this.#topics.get(topic)
      if (subs === undefined) this.#topics.set(topic, subs = new Set())
      subs.add(sub)
      if (subs.size === 1) this.#notifyWatchers(topic, 'start')
    }
    this.#connections++
    session.onClose(() => this.#unsubscribe(sub))
    if (lastEventId === undefined) return
    try {
      await this.#replay(sub, lastEventId)
    } catch (err) {
      // The transport could not say what was missed. Ending the stream makes
      // the client reconnect with the same id and try again: nothing is skipped.
      this.#log.error({ err }, 'sse: replay failed; closing the stream so the client retries')
      session.end('server')
    }
  }

  /**
   * Calls `start` when this instance gets its first subscriber to `topic`
   * (any stream: a live page, `reply.sse({ topics })`) and `stop` when its
   * last one leaves: a sampler that works only while somebody watches.
   * Returns a function that unregisters (and stops, if started).
   */
  watch (topic: string, handlers: { start: () => void, stop: () => void }): () => void {
    assertTopic(topic)
    const watcher = { ...handlers, running: false }
    let set = this.#watchers.get(topic)
    if (set === undefined) this.#watchers.set(topic, set = new Set())
    set.add(watcher)
    if ((this.#topics.get(topic)?.size ?? 0) > 0) this.#run(watcher, 'start')
    return () => {
      set.delete(watcher)
      if (set.size === 0) this.#watchers.delete(topic)
      if (watcher.running) this.#run(watcher, 'stop')
    }
  }

  #notifyWatchers (topic: string, what: 'start' | 'stop'): void {
    const set = this.#watchers.get(topic)
    if (set !== undefined) for (const watcher of set) this.#run(watcher, what)
  }

  #run (watcher: { start: () => void, stop: () => void, running: boolean }, what: 'start' | 'stop'): void {
    if (watcher.running === (what === 'start')) return
    watcher.running = what === 'start'
    try {
      watcher[what]()
    } catch (err) {
      this.#log.error({ err }, `sse: a topic watcher's ${what} threw`)
    }
  }

  /** @internal */
  async close (): Promise<void> {
    this.#closed = true
    await this.#transport.close()
  }

  #resync (): void {
    const sessions = new Set<Session>()
    for (const subs of this.#topics.values()) for (const sub of subs) sessions.add(sub.session)
    if (sessions.size === 0) return
    this.#log.warn({ connections: sessions.size }, 'sse: transport reported a gap; closing subscribers so they resume from history')
    for (const session of sessions) session.end('server')
  }

  /**
   * The transport lost events for good (those before `id`): every subscriber
   * that was already subscribed when they were lost (before `lostBefore`,
   * when the transport knows it) gets `reset` in order with its live events,
   * unless it already resumed at or past `id` (e.g. from a reset on
   * reconnect). One mid-replay is closed instead (its reconnect is replayed
   * or reset), since its replay may end past `id`.
   */
  #reset (id: string, lostBefore?: number): void {
    const n = Number(id)
    const subs = new Set<Subscriber>()
    for (const set of this.#topics.values()) {
      for (const sub of set) if (sub.after < n && (lostBefore === undefined || sub.since < lostBefore)) subs.add(sub)
    }
    if (subs.size === 0) return
    this.#log.warn({ connections: subs.size, id }, 'sse: transport lost events; sending reset to every subscriber')
    const frame = encodeEvent({ event: 'reset', id, data: RESET_DATA })
    const seq = this.#batch.next(performance.now())
    this.#pacing.fannedOut(frame.bytes.length)
    for (const sub of subs) {
      this.#counters.resets++
      if (sub.held === null) sub.session.enqueue(frame, seq, false)
      else sub.session.end('server')
    }
  }

  #unsubscribe (sub: Subscriber): void {
    for (const topic of sub.topics) {
      const subs = this.#topics.get(topic)
      if (subs === undefined) continue
      subs.delete(sub)
      if (subs.size === 0) {
        this.#topics.delete(topic)
        this.#notifyWatchers(topic, 'stop')
      }
    }
    sub.held = null
    this.#connections--
  }

  #frameOf (message: HubMessage): Frame {
    let frame = this.#frames.get(message)
    if (frame === undefined) {
      frame = encodeEvent({ id: message.id, event: message.event, retry: message.retry, data: message.data })
      this.#frames.set(message, frame)
    }
    return frame
  }

  #deliver (message: HubMessage): void {
    const subs = this.#topics.get(message.topic)
    const frame = this.#frameOf(message)
    if (subs === undefined) return
    const seq = this.#batch.next(performance.now())
    this.#pacing.fannedOut(frame.bytes.length)
    const id = Number(message.id)
    for (const sub of subs) {
      if (sub.held === null) {
        if (id > sub.after) sub.session.enqueue(frame, seq)
      } else {
        sub.held.push({ id, frame })
        sub.heldBytes += frame.bytes.length
        if (sub.heldBytes > this.#maxBuffered) this.#evictWhileReplaying(sub)
      }
    }
  }

  #evictWhileReplaying (sub: Subscriber): void {
    sub.held = null
    sub.session.evict()
  }

  async #replay (sub: Subscriber, lastEventId: string): Promise<void> {
    const { session } = sub
    let lastSent = parseId(lastEventId) ?? -1
    let page: SinceResult | undefined
    if (lastSent >= 0) page = await this.#transport.since(sub.topics, lastEventId, { limit: REPLAY_PAGE })
    if (page === undefined || !page.complete) {
      // Lost history: tell the page to reload its state, then go live from the head.
      const head = await this.#transport.head()
      const headId = parseId(head) ?? -1
      if (session.closed) return
      this.#counters.resets++
      session.writeNow(encodeEvent({ event: 'reset', id: head, data: RESET_DATA }), 0)
      page = undefined
      lastSent = headId
    } else {
      this.#counters.replays++
    }
    let depth = 0
    // Paced by the socket: written as it drains, and the next page read only
    // then, so a herd of reconnects holds neither the store nor memory, and a
    // client evicted for slowness is not evicted again on every reconnect.
    while (page !== undefined) {
      for (const message of page.events) {
        if (session.closed) return
        const id = Number(message.id)
        if (id <= lastSent) continue
        session.writeNow(this.#frameOf(message), 1)
        this.#counters.replayed++
        depth++
        lastSent = id
        if (session.backlog > this.#maxBuffered / 2) await session.writable(this.#maxBuffered / 4)
      }
      const last = page.events.at(-1)
      if (!page.more || last === undefined || session.closed) break
      page = await this.#transport.since(sub.topics, last.id, { limit: REPLAY_PAGE, upTo: page.upTo })
      if (!page.complete) {
        // History moved past this client while it was replayed: its reconnect
        // (with the last id it got) is replayed again or reset, never skipped.
        this.#log.warn({ topics: sub.topics, lastSent }, 'sse: history no longer reaches a replaying client; closing it so it resumes')
        session.end('server')
        return
      }
    }
    if (page !== undefined) this.#counters.observeReplayDepth?.(depth)
    if (session.closed || sub.held === null) return
    const held = sub.held
    sub.held = null
    sub.after = lastSent
    for (const { id, frame } of held) {
      if (id > lastSent) session.enqueue(frame, -1)
    }
  }
}
