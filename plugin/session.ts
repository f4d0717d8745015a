/**
 * One connection's writer: the frames of this event-loop turn joined into one
 * write, backpressure, slow-consumer eviction, heartbeats, and how it ends.
 * It handles pre-encoded frames only; the public `SseStream` (validation,
 * async data, order) and the hub (fan-out, replay) sit on top of it.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { Connection } from './connection.js'
import type { SseCounters } from './counters.js'
import { encodeRetry, type Frame, joinFrames } from './encode.js'
import type { Beating, Flushable, FlushScheduler, Heartbeat } from './scheduler.js'

/** Why a stream ended; also the `reason` of its aborted `signal`. */
export type SseCloseReason =
  | 'client' // the client went away
  | 'server' // close() was called
  | 'end' // the iterable finished
  | 'error' // the iterable or an async render failed
  | 'slow' // unsent bytes passed maxBufferedBytes
  | 'shutdown' // app.close()
  | 'rebalance' // a hub stream older than maxStreamAgeMs: its client reconnects, perhaps to another instance
  | 'refused' // rejected before the first byte (validation, limits, authorize)

/**
 * Joins a contiguous run of hub frames (numbered in this turn by the hub)
 * once for every socket that received the same run.
 */
export interface FrameJoiner {
  joined (first: number, last: number, frames: readonly Frame[]): Frame
}

/** Shared by every session of one plugin instance. */
export interface SessionContext {
  readonly log: FastifyBaseLogger
  readonly maxBufferedBytes: number
  readonly scheduler: FlushScheduler
  readonly heartbeat: Heartbeat
  readonly joiner: FrameJoiner
  readonly counters: SseCounters
  jitteredRetry (): number
}

/** A producer waits (`writable()`) once this much is unsent: well below maxBufferedBytes, so one that waits is never evicted. */
export const PULL_HIGH_WATER = 64 * 1024

export class Session implements Flushable, Beating {
  #conn: Connection | null = null
  readonly #ctx: SessionContext
  #closeReason: SseCloseReason | undefined
  // This turn's batch: almost always one frame, so no array until a second arrives.
  #pending: Frame | null = null
  #more: Frame[] | null = null
  #pendingBytes = 0
  #pendingEvents = 0
  #firstSeq = -1
  #lastSeq = -1
  #wrote = false
  #closeListeners: Array<(reason: SseCloseReason) => void> | null = null
  #flushWaiters: Array<() => void> | null = null

  constructor (ctx: SessionContext) {
    this.#ctx = ctx
  }

  get maxBufferedBytes (): number {
    return this.#ctx.maxBufferedBytes
  }

  get closeReason (): SseCloseReason | undefined {
    return this.#closeReason
  }

  get closed (): boolean {
    return this.#closeReason !== undefined
  }

  /** Unsent bytes, including this turn's batch. */
  get backlog (): number {
    return this.#pendingBytes + (this.#conn?.buffered ?? 0)
  }

  /** Binds the session to its response once the head is written; frames queued before go out with the next flush. */
  attach (conn: Connection): void {
    if (this.#closeReason !== undefined) return
    this.#conn = conn
    this.#ctx.heartbeat.add(this)
    if (this.#pending !== null) this.#ctx.scheduler.mark(this)
  }

  /** Runs `fn` once when the session ends (at once if it has). */
  onClose (fn: (reason: SseCloseReason) => void): void {
    if (this.#closeReason !== undefined) fn(this.#closeReason)
    else (this.#closeListeners ??= []).push(fn)
  }

  /** Queues a frame for this turn's write. `seq` ≥ 0 marks a hub frame shared with other sockets; `isEvent` counts it as delivered. */
  enqueue (frame: Frame, seq = -1, isEvent = true): void {
    if (this.#closeReason !== undefined) return
    if (this.#pending === null) {
      this.#pending = frame
      this.#firstSeq = seq
      this.#ctx.scheduler.mark(this)
    } else {
      (this.#more ??= []).push(frame)
      if (this.#firstSeq < 0 || seq !== this.#lastSeq + 1) this.#firstSeq = -1
    }
    this.#lastSeq = seq
    this.#pendingBytes += frame.bytes.length
    if (isEvent) this.#pendingEvents++
  }

  /** Writes a frame now, after this turn's batch (replay pacing). */
  writeNow (frame: Frame, events: number): void {
    if (this.#closeReason !== undefined || this.#conn === null) return
    this.flush()
    if (this.#closeReason !== undefined) return
    this.#conn.write(frame)
    this.#wrote = true
    const counters = this.#ctx.counters
    counters.writes++
    counters.delivered += events
    counters.bytes += frame.bytes.length
    this.#checkBacklog()
  }

  /** Resolves when the backlog is at most `limit` (or the session closed). */
  async writable (limit = PULL_HIGH_WATER): Promise<void> {
    if (this.#pending !== null) await new Promise<void>(resolve => { (this.#flushWaiters ??= []).push(resolve) })
    let conn: Connection | null
    while (this.#closeReason === undefined && (conn = this.#conn) !== null && conn.buffered > limit) {
      await new Promise<void>(resolve => conn!.onDrain(resolve))
    }
  }

  beat (ping: Frame): void {
    if (this.#wrote || this.#pending !== null) {
      this.#wrote = false
      return
    }
    this.enqueue(ping, -1, false)
  }

  /** Writes this turn's batch as one frame. */
  flush (): void {
    const first = this.#pending
    const conn = this.#conn
    if (first === null || conn === null) return
    const more = this.#more
    const events = this.#pendingEvents
    let frame = first
    if (more !== null) {
      const frames = [first, ...more]
      const contiguous = this.#firstSeq >= 0 && this.#lastSeq - this.#firstSeq === frames.length - 1
      frame = contiguous ? this.#ctx.joiner.joined(this.#firstSeq, this.#lastSeq, frames) : joinFrames(frames)
    }
    this.#pending = null
    this.#more = null
    this.#pendingBytes = 0
    this.#pendingEvents = 0
    this.#firstSeq = this.#lastSeq = -1
    if (this.#closeReason === undefined) {
      conn.write(frame)
      this.#wrote = true
      const counters = this.#ctx.counters
      counters.writes++
      counters.delivered += events
      counters.bytes += frame.bytes.length
      this.#checkBacklog()
    }
    const waiters = this.#flushWaiters
    if (waiters !== null) {
      this.#flushWaiters = null
      for (const resolve of waiters) resolve()
    }
  }

  /**
   * Closes a slow consumer. Closed, never silently thinned: the client
   * reconnects and replay fills the gap.
   */
  evict (): void {
    if (this.#closeReason !== undefined) return
    this.#ctx.counters.evicted++
    this.#ctx.log.warn({ buffered: this.backlog, limit: this.#ctx.maxBufferedBytes }, 'sse: slow consumer evicted')
    this.#conn?.destroy()
    this.#teardown('slow')
  }

  /** Ends cleanly after everything queued (HTTP/1.1 last chunk, HTTP/2 END_STREAM). */
  end (reason: SseCloseReason): void {
    if (this.#closeReason !== undefined) return
    this.flush()
    if (this.#closeReason !== undefined) return // the flush evicted it
    this.#teardown(reason)
    this.#conn?.end()
  }

  /** Ends without writing anything more: the client is gone, or the stream never started. */
  drop (reason: 'client' | 'refused'): void {
    this.#teardown(reason)
  }

  /**
   * A final jittered `retry:` hint, then the end of the response and of its
   * keep-alive connection: app shutdown, or (`'rebalance'`) a hub stream past
   * its age, whose reconnect must open a new connection for a load balancer
   * to place it anew.
   */
  shutdown (reason: 'shutdown' | 'rebalance' = 'shutdown'): void {
    if (this.#closeReason !== undefined) return
    this.enqueue(encodeRetry(this.#ctx.jitteredRetry()), -1, false)
    this.flush()
    if (this.#closeReason !== undefined) return
    this.#teardown(reason)
    this.#conn?.endAndClose()
  }

  /** Resolves once the underlying response has closed. */
  connectionClosed (): Promise<void> {
    return this.#conn?.closed() ?? Promise.resolve()
  }

  /** Shutdown's last resort for a client that would not read. */
  destroyConnection (): void {
    this.#conn?.destroy()
  }

  #checkBacklog (): void {
    if (this.#conn !== null && this.#conn.buffered > this.#ctx.maxBufferedBytes) this.evict()
  }

  #teardown (reason: SseCloseReason): void {
    if (this.#closeReason !== undefined) return
    this.#closeReason = reason
    this.#pending = null
    this.#more = null
    this.#pendingBytes = 0
    this.#ctx.heartbeat.delete(this)
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
  }
}
