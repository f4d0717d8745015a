/**
 * Plugin-wide timing shared by every stream: the per-turn flush that
 * coalesces writes, and the one heartbeat interval.
 */
import { encodeComment, type Frame } from './encode.js'

/** What the scheduler flushes: a stream's batch for this event-loop turn. */
export interface Flushable {
  flush (): void
}

/**
 * A flush slice yields to I/O after about this long (checked every
 * SLICE_CHECK streams): long enough that a thousand sockets are one slice (an
 * in-process burst then paces its producer as an unsliced flush would: bench,
 * 4 ms slices tripled burst p99), short enough that a 10k fan-out lets timers
 * and replies in several times per cycle.
 */
const SLICE_MS = 16
/**
 * The slice while a producer's publish is in flight (a Redis round trip), and
 * for IN_FLIGHT_GAP_MS after one was: its reply is not held behind a long
 * slice, so a producer awaiting each publish adds its events to the streams
 * not yet written. Longer held slices cost such a producer round trips per
 * cycle, and so events per write (bench, burst over Redis: 0.25 ms 1.0 µs
 * per event, 0.5 ms 1.3, 1 ms 2.0).
 */
const HELD_SLICE_MS = 0.25
/** A producer awaiting each publish may yield to I/O between two of them. */
const IN_FLIGHT_GAP_MS = 2
const SLICE_CHECK = 16
/**
 * Only a cycle whose writes took longer than this rests afterwards (see
 * `maxWriteShare`): below it, latency is not dominated by the cycle, and a
 * rest would add more than it saves.
 */
export const REST_AFTER_MS = 2 * SLICE_MS
/** A rest shorter than this is not taken: a timer cannot wait much less than a millisecond. */
const MIN_REST_MS = 1

export interface FlushSchedulerOptions {
  /**
   * The largest share (0 < share ≤ 1) of the loop's time that writing may
   * take once one pass over the sockets takes longer than REST_AFTER_MS.
   * Default 1: write as soon as possible.
   */
  maxWriteShare?: number
}

/**
 * Coalesces everything written to a socket within one event-loop turn into a
 * single write: a stream marks itself dirty on its first frame, and a
 * `setImmediate` flushes the dirty streams. The streams marked so far form
 * one drain cycle, flushed in slices of about SLICE_MS that yield to I/O in
 * between: a publish whose reply (Redis) or timer comes meanwhile is not held
 * behind ten thousand writes. Its frames join the batches of the streams not
 * yet written; streams already written are marked for the next cycle. So an
 * overloaded loop writes fewer, larger chunks instead of falling further
 * behind. Hooks run after each slice (the hub clears its join cache there).
 *
 * A long cycle is followed by a rest (`maxWriteShare`): when writing to every
 * socket once takes longer than the events take to come, writing as soon as
 * possible keeps the loop saturated, and the CPU per event is whatever the
 * loop's time divided by the events comes to. Resting makes each write carry
 * more events: less CPU per event, for latency in proportion.
 */
export class FlushScheduler {
  /** The drain cycle under way, and how far it has got. */
  #cycle: Flushable[] = []
  #next = 0
  /** Streams marked since the cycle began: the next cycle. */
  #marked: Flushable[] = []
  #scheduled = false
  readonly #share: number
  /** When the current cycle began, and how long its slices took so far (performance.now() ms). */
  #cycleStart = 0
  #cycleBusy = 0
  /** Fan-out work done outside the flush since the last cycle ended (see `fanoutWork`). */
  #carried = 0
  /** After a long cycle, the next one starts no sooner than this. */
  #restUntil = 0
  #restTimer: NodeJS.Timeout | undefined
  /** Publishes in flight (awaiting their transport), and when a slice last saw one. */
  #inFlight = 0
  #inFlightSeen = -Infinity
  readonly #afterFlush: Array<() => void> = []
  readonly #flush = (): void => this.flush()
  readonly #endRest = (): void => {
    clearTimeout(this.#restTimer)
    this.#restTimer = undefined
    this.#restUntil = 0
    this.#schedule()
  }

  /** The rest's timer: fan-out work during the rest may have extended it. */
  readonly #restElapsed = (): void => {
    this.#restTimer = undefined
    if (this.#restUntil - performance.now() >= MIN_REST_MS) this.#rest()
    else this.#endRest()
  }

  #rest (): void {
    this.#restTimer = setTimeout(this.#restElapsed, this.#restUntil - performance.now())
    // Sockets keep the process alive; a rest alone must not.
    this.#restTimer.unref()
  }

  constructor (options: FlushSchedulerOptions = {}) {
    this.#share = options.maxWriteShare ?? 1
  }

  mark (stream: Flushable): void {
    this.#marked.push(stream)
    this.#schedule()
  }

  /**
   * A publish is in flight (a Redis round trip) until the returned function
   * is called: slices stay short meanwhile (HELD_SLICE_MS).
   */
  publishing (): () => void {
    this.#inFlight++
    let done = false
    return () => {
      if (done) return
      done = true
      this.#inFlight--
    }
  }

  #schedule (): void {
    if (!this.#scheduled && this.#restTimer === undefined) {
      this.#scheduled = true
      setImmediate(this.#flush)
    }
  }

  /**
   * Fan-out work done outside the flush (the hub queueing a frame for every
   * subscriber, `ms` long) counts against the share too: during a cycle it
   * lengthens the rest that follows, during a rest it extends it.
   */
  fanoutWork (ms: number): void {
    if (this.#share === 1) return
    if (this.#next < this.#cycle.length) this.#cycleBusy += ms
    else if (this.#restUntil > 0) this.#restUntil += ms / this.#share
    else this.#carried += ms
  }

  /** Runs `fn` after every flush slice. */
  afterFlush (fn: () => void): void {
    this.#afterFlush.push(fn)
  }

  /** Whether the loop is resting after a long cycle: streams marked now wait for its end. */
  get resting (): boolean {
    return this.#restUntil - performance.now() >= MIN_REST_MS
  }

  /**
   * Ends a rest now: so much is waiting (a producer faster than the writes)
   * that a longer rest would only add latency and memory.
   */
  endRest (): void {
    if (this.#restUntil > 0) this.#endRest()
  }

  /**
   * Resolves after the next flush slice has run (a producer yielding to I/O).
   * Ends a rest: a producer that paces itself wants its frames written, not
   * piling up while the loop rests.
   */
  nextTurn (): Promise<void> {
    this.endRest()
    return new Promise(resolve => setImmediate(resolve))
  }

  /** Flushes one slice of the drain cycle (starting the next cycle when one is done); schedules the rest. */
  flush (): void {
    this.#scheduled = false
    if (this.#next >= this.#cycle.length) {
      if (this.#marked.length === 0) return
      if (this.#restUntil - performance.now() >= MIN_REST_MS) {
        this.#rest()
        return
      }
      this.#cycle = this.#marked
      this.#marked = []
      this.#next = 0
      this.#cycleStart = performance.now()
      this.#cycleBusy = this.#carried
      this.#carried = 0
    }
    const cycle = this.#cycle
    let i = this.#next
    const start = performance.now()
    if (this.#inFlight > 0) this.#inFlightSeen = start
    const slice = start - this.#inFlightSeen < IN_FLIGHT_GAP_MS ? HELD_SLICE_MS : SLICE_MS
    while (i < cycle.length) {
      cycle[i++]!.flush()
      if (i % SLICE_CHECK === 0 && performance.now() - start >= slice) break
    }
    this.#next = i
    this.#cycleBusy += performance.now() - start
    if (i >= cycle.length) {
      this.#cycle = []
      this.#next = 0
      if (this.#share < 1 && this.#cycleBusy >= REST_AFTER_MS) this.#restUntil = this.#cycleStart + this.#cycleBusy / this.#share
    }
    if (this.#next > 0 || this.#marked.length > 0) this.#schedule()
    for (const fn of this.#afterFlush) fn()
  }
}

/** What the heartbeat pings. */
export interface Beating {
  beat (ping: Frame): void
}

/**
 * One interval for all streams of a plugin instance, running only while a
 * stream is open. A stream that wrote anything since the last beat is skipped.
 */
export class Heartbeat {
  readonly #streams = new Set<Beating>()
  #timer: NodeJS.Timeout | undefined
  readonly #ping = encodeComment('ping')

  constructor (readonly intervalMs: number | false) {}

  add (stream: Beating): void {
    if (this.intervalMs === false) return
    this.#streams.add(stream)
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#beat(), this.intervalMs)
      this.#timer.unref()
    }
  }

  delete (stream: Beating): void {
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
