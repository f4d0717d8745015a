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
 * and replies in several times per cycle. Much shorter while a publish is in
 * flight, whose reply would otherwise wait behind the slice.
 */
const SLICE_MS = 16
const HELD_SLICE_MS = 0.25
const SLICE_CHECK = 16
/** The longest a flush waits for publishes still in flight (see `hold`). */
export const HOLD_MS = 2

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
 */
export class FlushScheduler {
  /** The drain cycle under way, and how far it has got. */
  #cycle: Flushable[] = []
  #next = 0
  /** Streams marked since the cycle began: the next cycle. */
  #marked: Flushable[] = []
  #scheduled = false
  /** Publishes in flight (awaiting their transport); see `hold`. */
  #holds = 0
  /** While holding: when the held frames go out regardless (performance.now()). */
  #deadline = -1
  #holdTimer: NodeJS.Timeout | undefined
  readonly #afterFlush: Array<() => void> = []
  readonly #flush = (): void => this.flush()
  readonly #flushHeld = (): void => {
    clearTimeout(this.#holdTimer)
    this.#holdTimer = undefined
    this.#schedule()
  }

  mark (stream: Flushable): void {
    this.#marked.push(stream)
    this.#schedule()
  }

  /**
   * A publish is in flight (a Redis round trip): until it is released, or
   * for at most HOLD_MS, the next drain cycle waits for it instead of
   * writing the frames before it alone, like Nagle's algorithm. A producer
   * that awaits each publish then costs one write per socket per several
   * events, as in-process, where a turn carries several; a publish with
   * nothing in flight behind it is not delayed. Returns the release function.
   */
  hold (): () => void {
    this.#holds++
    let released = false
    return () => {
      if (released) return
      released = true
      if (--this.#holds === 0 && this.#holdTimer !== undefined) this.#flushHeld()
    }
  }

  #schedule (): void {
    if (!this.#scheduled && this.#holdTimer === undefined) {
      this.#scheduled = true
      setImmediate(this.#flush)
    }
  }

  /** Runs `fn` after every flush slice. */
  afterFlush (fn: () => void): void {
    this.#afterFlush.push(fn)
  }

  /** Resolves after the next flush slice has run (a producer yielding to I/O). */
  nextTurn (): Promise<void> {
    return new Promise(resolve => setImmediate(resolve))
  }

  /** Flushes one slice of the drain cycle (starting the next cycle when one is done); schedules the rest. */
  flush (): void {
    this.#scheduled = false
    if (this.#next >= this.#cycle.length) {
      if (this.#marked.length === 0) return
      if (this.#holds > 0) {
        // Wait for the publishes in flight, at most HOLD_MS from the first held frame.
        const now = performance.now()
        if (this.#deadline < 0) this.#deadline = now + HOLD_MS
        if (now < this.#deadline) {
          this.#holdTimer = setTimeout(this.#flushHeld, this.#deadline - now)
          return
        }
      }
      this.#deadline = -1
      this.#cycle = this.#marked
      this.#marked = []
      this.#next = 0
    }
    const cycle = this.#cycle
    let i = this.#next
    const start = performance.now()
    while (i < cycle.length) {
      cycle[i++]!.flush()
      if (i % SLICE_CHECK === 0 && performance.now() - start >= (this.#holds > 0 ? HELD_SLICE_MS : SLICE_MS)) break
    }
    this.#next = i
    if (i >= cycle.length) {
      this.#cycle = []
      this.#next = 0
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
