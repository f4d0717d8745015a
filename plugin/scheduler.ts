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
 * Coalesces everything written to a socket within one event-loop turn into a
 * single write: a stream marks itself dirty on its first frame of the turn,
 * and one `setImmediate` flushes every dirty stream. Hooks run after each
 * flush (the hub clears its per-turn batch there).
 */
export class FlushScheduler {
  #dirty: Flushable[] = []
  #scheduled = false
  readonly #afterFlush: Array<() => void> = []
  readonly #flush = (): void => this.flush()

  mark (stream: Flushable): void {
    this.#dirty.push(stream)
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(this.#flush)
    }
  }

  /** Runs `fn` after every flush. */
  afterFlush (fn: () => void): void {
    this.#afterFlush.push(fn)
  }

  /** Resolves after the next flush has run (a producer yielding to I/O). */
  nextTurn (): Promise<void> {
    return new Promise(resolve => setImmediate(resolve))
  }

  flush (): void {
    this.#scheduled = false
    const dirty = this.#dirty
    this.#dirty = []
    for (let i = 0; i < dirty.length; i++) dirty[i]!.flush()
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
