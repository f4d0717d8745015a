/**
 * One SSE connection: ordered sends, per-tick write coalescing, backpressure,
 * slow-consumer eviction, heartbeats (via a shared timer) and close.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { Connection } from './connection.js'
import { assertEvent, encodeComment, encodeEvent, encodeRetry, type Frame, joinFrames } from './encode.js'

/** What a route can send: a string, a JSX element, or a Promise of one (async components). */
export type SseData = string | Promise<string>

export interface SseEventFields {
  /** Event name, matched by `sse-swap="name"` in htmx. No CR/LF. */
  event?: string | undefined
  /** Event id (the client's Last-Event-ID). No CR/LF/NUL. Hub streams assign their own. */
  id?: string | undefined
  /** Reconnection delay hint, a non-negative integer of milliseconds. */
  retry?: number | undefined
}

export interface SseEvent extends SseEventFields {
  data: SseData
}

/** Why a stream ended; also the `reason` of its aborted `signal`. */
export type SseCloseReason =
  | 'client' // the client went away
  | 'server' // close() was called
  | 'end' // the iterable finished
  | 'error' // the iterable or an async render failed
  | 'slow' // unsent bytes passed maxBufferedBytes
  | 'shutdown' // app.close()
  | 'refused' // rejected before the first byte (validation, limits, authorize)

export class SseClosedError extends Error {
  constructor (readonly reason: SseCloseReason) {
    super(`SSE stream closed (${reason})`)
    this.name = 'SseClosedError'
  }
}

/** Shared by every stream of one plugin instance. */
export interface StreamContext {
  readonly log: FastifyBaseLogger
  readonly maxBufferedBytes: number
  readonly scheduler: FlushScheduler
  readonly heartbeat: Heartbeat
  readonly open: Set<SseStream>
  readonly counters: { delivered: number, evicted: number }
  jitteredRetry (): number
}

/**
 * Coalesces everything written to a socket within one event-loop turn into
 * a single write. Frames published by the hub carry a tick-local sequence
 * number; subscribers that received the same contiguous run share one
 * joined buffer, so a burst to N sockets costs one concat, not N.
 */
export class FlushScheduler {
  #dirty: SseStream[] = []
  #scheduled = false
  #seq = 0
  #joined = new Map<number, Map<number, Frame>>()
  readonly #flush = (): void => this.flush()

  /** Sequence number for a frame about to be fanned out (shared across subscribers). */
  nextSeq (): number {
    return this.#seq++
  }

  mark (stream: SseStream): void {
    this.#dirty.push(stream)
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(this.#flush)
    }
  }

  joined (first: number, last: number, frames: readonly Frame[]): Frame {
    let byLast = this.#joined.get(first)
    if (byLast === undefined) this.#joined.set(first, byLast = new Map())
    let frame = byLast.get(last)
    if (frame === undefined) byLast.set(last, frame = joinFrames(frames))
    return frame
  }

  flush (): void {
    this.#scheduled = false
    const dirty = this.#dirty
    this.#dirty = []
    for (let i = 0; i < dirty.length; i++) dirty[i]!.flush()
    this.#seq = 0
    this.#joined.clear()
  }
}

/**
 * One interval for all streams of a plugin instance, running only while a
 * stream is open. A stream that wrote anything since the last beat is skipped.
 */
export class Heartbeat {
  readonly #streams = new Set<SseStream>()
  #timer: NodeJS.Timeout | undefined
  readonly #ping = encodeComment('ping')

  constructor (readonly intervalMs: number | false) {}

  add (stream: SseStream): void {
    if (this.intervalMs === false) return
    this.#streams.add(stream)
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#beat(), this.intervalMs)
      this.#timer.unref()
    }
  }

  delete (stream: SseStream): void {
    this.#streams.delete(stream)
    if (this.#streams.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer)
      this.#timer = undefined
    }
  }

  #beat (): void {
    for (const stream of this.#streams) stream.beat(this.#ping)
  }
}

// A pull-based source stops being pulled once this much is unsent; well
// below maxBufferedBytes so a producer that waits is never evicted.
const PULL_HIGH_WATER = 64 * 1024
const RESOLVED_TRUE: Promise<boolean> = Promise.resolve(true)
const RESOLVED_FALSE: Promise<boolean> = Promise.resolve(false)
const noop = (): void => {}

export class SseStream implements PromiseLike<void> {
  /** The client's Last-Event-ID (header or `lastEventId` query), if it was plausible. */
  readonly lastEventId: string | undefined
  #conn: Connection | null = null
  readonly #ctx: StreamContext
  #closeReason: SseCloseReason | undefined
  #closing = false
  #controller: AbortController | undefined
  // This tick's batch: almost always one frame, so no array until a second arrives.
  #pending: Frame | null = null
  #more: Frame[] | null = null
  #pendingBytes = 0
  #pendingEvents = 0
  #firstSeq = -1
  #lastSeq = -1
  #wrote = false
  #renderTail: Promise<unknown> | null = null
  #closeListeners: Array<(reason: SseCloseReason) => void> | null = null
  #done: Promise<void> | undefined
  #resolveDone: (() => void) | undefined
  #flushWaiters: Array<() => void> | null = null
  #holdDone = false

  /** @internal Created by `reply.sse()`. */
  constructor (ctx: StreamContext, lastEventId: string | undefined) {
    this.#ctx = ctx
    this.lastEventId = lastEventId
    ctx.open.add(this)
  }

  /**
   * @internal Binds the stream to its response once the head is flushed;
   * until then (async authorization) sends wait in the batch.
   */
  attach (conn: Connection): void {
    if (this.#closeReason !== undefined) return
    this.#conn = conn
    this.#ctx.heartbeat.add(this)
    if (this.#pending !== null) this.#ctx.scheduler.mark(this)
  }

  /**
   * @internal Ends a stream that never started (refused before any byte).
   * Awaiting the stream then waits for the error reply to finish, so Fastify
   * never sees a settled handler with an unsent reply.
   */
  abandon (reply?: { writableFinished: boolean, once (event: 'close', fn: () => void): unknown }): void {
    if (reply !== undefined && !reply.writableFinished) {
      this.#holdDone = true
      reply.once('close', () => {
        this.#holdDone = false
        this.#resolveDone?.()
      })
    }
    this.#teardown('refused')
  }

  /** @internal The response closed underneath us (client gone, socket error). */
  disconnected (): void {
    this.#teardown('client')
  }

  /** @internal Queues a control frame (retry hint) that is not an event. */
  control (frame: Frame): void {
    if (this.#closeReason !== undefined) return
    this.#enqueue(frame, -1, false)
  }

  /** True once the stream has ended, for whatever reason. */
  get closed (): boolean {
    return this.#closeReason !== undefined || this.#closing
  }

  /** Aborted when the stream ends: client gone, close(), eviction, shutdown. `signal.reason` says why. */
  get signal (): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController()
      if (this.#closeReason !== undefined) this.#controller.abort(new SseClosedError(this.#closeReason))
    }
    return this.#controller.signal
  }

  /**
   * Sends one event. Throws a TypeError at once if a field is invalid
   * (nothing is written). Async data is awaited; events keep their order.
   * Resolves true once handed to the connection and the connection has room
   * for more (so `await send()` in a loop is backpressured), false if the
   * stream closed first.
   */
  send (data: SseData, fields?: SseEventFields): Promise<boolean> {
    if (fields !== undefined) assertEvent(fields)
    if (typeof data !== 'string' && !isThenable(data)) {
      throw new TypeError(`SSE data must be a string, a JSX element or a Promise of one, got ${data === null ? 'null' : typeof data}`)
    }
    if (this.closed) return RESOLVED_FALSE
    if (typeof data === 'string' && this.#renderTail === null) {
      this.#enqueue(encodeEvent({ ...fields, data }), -1, true)
      // Backpressure for producers that await: resolve once the socket has room.
      if (this.backlog > PULL_HIGH_WATER) return this.writable().then(() => this.#closeReason === undefined)
      return RESOLVED_TRUE
    }
    const previous = this.#renderTail ?? RESOLVED_TRUE
    const sent = previous.then(() => data).then(async (html) => {
      if (this.#closeReason !== undefined) return false
      this.#enqueue(encodeEvent({ ...fields, data: html }), -1, true)
      if (this.backlog > PULL_HIGH_WATER) await this.writable()
      return this.#closeReason === undefined
    })
    const tail = sent.then(noop, (err: unknown) => this.#fail(err, 'render'))
    this.#renderTail = tail
    void tail.then(() => { if (this.#renderTail === tail) this.#renderTail = null })
    sent.catch(noop) // the caller may not await; the failure is handled by #fail
    return sent
  }

  /** Writes an SSE comment (ignored by clients), e.g. for a keep-alive. */
  comment (text: string): void {
    if (this.closed) return
    this.#enqueue(encodeComment(text), -1, false)
  }

  /** Ends the stream after everything already sent (including pending async renders). */
  close (): void {
    this.#end('server')
  }

  /** Why the stream ended, or undefined while it is open. */
  get closeReason (): SseCloseReason | undefined {
    return this.#closeReason
  }

  /**
   * Awaiting a stream waits until it has ended (see `closeReason`). This is
   * also what lets a handler simply `return reply.sse(...)`.
   */
  then<T = void, E = never> (
    onfulfilled?: ((value: void) => T | PromiseLike<T>) | null,
    onrejected?: ((error: unknown) => E | PromiseLike<E>) | null
  ): Promise<T | E> {
    if (this.#done === undefined) {
      this.#done = this.#closeReason !== undefined && !this.#holdDone
        ? Promise.resolve()
        : new Promise(resolve => { this.#resolveDone = resolve })
    }
    return this.#done.then(onfulfilled, onrejected)
  }

  /** @internal Hub hook: runs once when the stream ends. */
  onClose (fn: (reason: SseCloseReason) => void): void {
    if (this.#closeReason !== undefined) fn(this.#closeReason)
    else (this.#closeListeners ??= []).push(fn)
  }

  /** @internal Queues a pre-encoded frame for this tick's write. `seq` ≥ 0 marks a hub frame shared with other sockets. */
  enqueue (frame: Frame, seq: number): void {
    if (this.#closeReason !== undefined) return
    this.#enqueue(frame, seq, true)
  }

  /** @internal Writes a frame now, bypassing the tick batch (replay pacing). */
  writeNow (frame: Frame, events: number): void {
    if (this.#closeReason !== undefined || this.#conn === null) return
    this.flush()
    this.#conn.write(frame)
    this.#wrote = true
    this.#ctx.counters.delivered += events
    this.#checkBacklog()
  }

  /** @internal Unsent bytes, including this tick's batch. */
  get backlog (): number {
    return this.#pendingBytes + (this.#conn?.buffered ?? 0)
  }

  /** @internal Resolves when the backlog is below `limit` (or the stream closed). */
  async writable (limit = PULL_HIGH_WATER): Promise<void> {
    if (this.#pending !== null) await new Promise<void>(resolve => { (this.#flushWaiters ??= []).push(resolve) })
    let conn: Connection | null
    while (this.#closeReason === undefined && (conn = this.#conn) !== null && conn.buffered > limit) {
      await new Promise<void>(resolve => conn!.onDrain(resolve))
    }
  }

  /** @internal Shared heartbeat tick. */
  beat (ping: Frame): void {
    if (this.#wrote || this.#pending !== null) {
      this.#wrote = false
      return
    }
    this.#enqueue(ping, -1, false)
  }

  /** @internal Writes this tick's batch as one frame. */
  flush (): void {
    const first = this.#pending
    const conn = this.#conn
    if (first === null || conn === null) return
    const more = this.#more
    this.#pending = null
    this.#more = null
    const events = this.#pendingEvents
    let frame = first
    if (more !== null) {
      const frames = [first, ...more]
      const contiguous = this.#firstSeq >= 0 && this.#lastSeq - this.#firstSeq === frames.length - 1
      frame = contiguous ? this.#ctx.scheduler.joined(this.#firstSeq, this.#lastSeq, frames) : joinFrames(frames)
    }
    this.#pendingBytes = 0
    this.#pendingEvents = 0
    this.#firstSeq = this.#lastSeq = -1
    if (this.#closeReason === undefined) {
      conn.write(frame)
      this.#wrote = true
      this.#ctx.counters.delivered += events
      this.#checkBacklog()
    }
    const waiters = this.#flushWaiters
    if (waiters !== null) {
      this.#flushWaiters = null
      for (const resolve of waiters) resolve()
    }
  }

  /** @internal Ends the stream after a final `retry:` hint (server shutdown). */
  shutdown (): void {
    if (this.#closeReason !== undefined) return
    this.#enqueue(encodeRetry(this.#ctx.jitteredRetry()), -1, false)
    this.flush()
    if (this.#closeReason !== undefined) return
    this.#teardown('shutdown')
    this.#conn?.endAndClose()
  }

  /** @internal Resolves once the underlying response has closed. */
  connectionClosed (): Promise<void> {
    return this.#conn?.closed() ?? Promise.resolve()
  }

  /** @internal Shutdown's last resort for a client that would not read. */
  destroyConnection (): void {
    this.#conn?.destroy()
  }

  /** @internal Drains an iterable of events with backpressure (reply.sse(iterable)). */
  async pump (source: AsyncIterable<SseEvent> | Iterable<SseEvent>): Promise<void> {
    const iterator = Symbol.asyncIterator in source
      ? source[Symbol.asyncIterator]()
      : (source as Iterable<SseEvent>)[Symbol.iterator]() as Iterator<SseEvent> | AsyncIterator<SseEvent>
    // Calling return() as soon as the client leaves lets a generator parked at
    // `yield` run its finally at once, instead of after its next value.
    const stop = (): void => { void Promise.resolve(iterator.return?.()).catch(noop) }
    this.onClose(stop)
    try {
      while (!this.closed) {
        const step = await iterator.next()
        if (step.done === true || this.closed) break
        const ev = step.value
        if (ev === null || typeof ev !== 'object') throw new TypeError('reply.sse(iterable): each item must be an SseEvent object { data, event?, id?, retry? }')
        await this.send(ev.data, ev)
        if (this.backlog > PULL_HIGH_WATER) await this.writable()
      }
      this.#end('end')
    } catch (err) {
      this.#fail(err, 'iterable')
    }
  }

  #enqueue (frame: Frame, seq: number, isEvent: boolean): void {
    if (this.#pending === null) {
      this.#pending = frame
      this.#firstSeq = seq
      this.#ctx.scheduler.mark(this)
    } else {
      (this.#more ??= []).push(frame)
      if (this.#firstSeq >= 0 && seq === this.#lastSeq + 1) {
        // still one contiguous run of shared hub frames
      } else {
        this.#firstSeq = -1
      }
    }
    this.#lastSeq = seq
    this.#pendingBytes += frame.bytes.length
    if (isEvent) this.#pendingEvents++
  }

  #checkBacklog (): void {
    if (this.#conn !== null && this.#conn.buffered > this.#ctx.maxBufferedBytes) this.evict()
  }

  /**
   * @internal Closes a slow consumer. Closed, never silently thinned: the
   * client reconnects and replay fills the gap.
   */
  evict (): void {
    if (this.#closeReason !== undefined) return
    this.#ctx.counters.evicted++
    this.#ctx.log.warn({ buffered: this.backlog, limit: this.#ctx.maxBufferedBytes }, 'sse: slow consumer evicted')
    this.#conn?.destroy()
    this.#teardown('slow')
  }

  #end (reason: SseCloseReason): void {
    if (this.closed) return
    if (this.#renderTail !== null) {
      this.#closing = true
      void this.#renderTail.then(() => this.#finish(reason))
      return
    }
    this.#finish(reason)
  }

  #finish (reason: SseCloseReason): void {
    if (this.#closeReason !== undefined) return
    this.flush()
    if (this.#closeReason !== undefined) return // flush evicted it
    this.#teardown(reason)
    this.#conn?.end()
  }

  #fail (err: unknown, where: 'render' | 'iterable'): void {
    if (this.#closeReason !== undefined) return
    this.#ctx.log.error({ err }, `sse: ${where} failed, ending stream`)
    this.#closing = false
    this.#renderTail = null
    this.#enqueue(encodeEvent({ event: 'error', data: 'stream failed' }), -1, true)
    this.#finish('error')
  }

  #teardown (reason: SseCloseReason): void {
    if (this.#closeReason !== undefined) return
    this.#closeReason = reason
    this.#closing = false
    this.#pending = null
    this.#more = null
    this.#pendingBytes = 0
    this.#ctx.open.delete(this)
    this.#ctx.heartbeat.delete(this)
    this.#controller?.abort(new SseClosedError(reason))
    const listeners = this.#closeListeners
    this.#closeListeners = null
    if (listeners !== null) {
      for (const fn of listeners) {
        try { fn(reason) } catch (err) { this.#ctx.log.error({ err }, 'sse: close listener failed') }
      }
    }
    const waiters = this.#flushWaiters
    this.#flushWaiters = null
    if (waiters !== null) for (const resolve of waiters) resolve()
    if (!this.#holdDone) this.#resolveDone?.()
  }
}

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function'
}
