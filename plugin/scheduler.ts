/**
 * Plugin-wide timing shared by every stream: the per-turn flush that
 * coalesces writes, and the one heartbeat interval.
 */
import { encodeComment, type Frame } from './encode.js'

/** What the scheduler flushes: a stream's batch for this event-loop turn. */
export interface Flushable {
  flush (): void
}

/** A flush slice yields to I/O after about this long (checked every SLICE_CHECK streams). */
const SLICE_MS = 4
const SLICE_CHECK = 128
/** The longest a flush waits for publishes still in flight (see `hold`). */
export const HOLD_MS = 2

/**
 * Coalesces everything written to a socket within one event-loop turn into a
 * single write: a stream marks itself dirty on its first frame of the turn,
 * and one `setImmediate` flushes every dirty stream. A large fan-out is
 * flushed in slices of about SLICE_MS, yielding to I/O in between: a publish
 * whose reply (Redis) or next tick arrives meanwhile is not held behind
 * ten thousand writes, and its frames join the batches of the streams not
 * yet written, so an overloaded loop writes fewer, larger chunks instead of
 * falling further behind. Hooks run after each slice (the hub clears its
 * per-slice join cache there).
 */
export class FlushScheduler {
  #dirty: Flushable[] = []
  /** Where the current drain of #dirty has got to. */
  #next = 0
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
    this.#dirty.push(stream)
    this.#schedule()
  }

  /**
   * A publish is in flight (a Redis round trip): until it is released, or
   * for at most HOLD_MS, frames wait for it instead of going out alone, like
   * Nagle's algorithm. A producer that awaits each publish then costs one
   * write per socket per few events, as it does in-process, where a turn
   * carries several; a lone publish (nothing else in flight) is not delayed.
   * Returns the release function (call it once).
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

  /** Flushes dirty streams, oldest mark first, for about SLICE_MS; schedules the rest. */
  flush (): void {
    this.#scheduled = false
    if (this.#holds > 0 && this.#next === 0 && this.#dirty.length > 0) {
      // Wait for the publishes in flight, at most HOLD_MS from the first held frame.
      const now = performance.now()
      if (this.#deadline < 0) this.#deadline = now + HOLD_MS
      if (now < this.#deadline) {
        this.#holdTimer = setTimeout(this.#flushHeld, this.#deadline - now)
        return
      }
    }
    this.#deadline = -1
    const dirty = this.#dirty
    let i = this.#next
    const start = performance.now()
    while (i < dirty.length) {
      dirty[i++]!.flush()
      if (i % SLICE_CHECK === 0 && performance.now() - start >= SLICE_MS) break
    }
    if (i < dirty.length) {
      // Under sustained load the drain may never reach the end: drop the done prefix.
      if (i >= 1024 && i * 2 >= dirty.length) {
        this.#dirty = dirty.slice(i)
        i = 0
      }
      this.#next = i
      this.#scheduled = true
      setImmediate(this.#flush)
    } else {
      this.#dirty = []
      this.#next = 0
    }
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
