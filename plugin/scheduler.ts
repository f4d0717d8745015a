/**
 * The pacing policy of SSE writes, all of it in this module: the per-turn
 * flush that coalesces writes, flush slices, rests when the loop is
 * saturated, pacing a producer, and the one heartbeat interval.
 *
 * The constants are trade-offs measured with bench/ on one machine kind (see
 * bench/RESULTS.md and the README's Performance section for the runs); they
 * are starting points, not laws: re-measure before changing them.
 */
import { performance } from 'node:perf_hooks'
import { encodeComment, type Frame } from './encode.js'

/**
 * A flush slice yields to I/O after about this long (checked every
 * SLICE_CHECK streams). Longer slices cost fewer turns per pass; shorter ones
 * let timers and replies in sooner during a pass over many sockets.
 */
const SLICE_MS = 16
const SLICE_CHECK = 16
/**
 * The slice while a producer's publish is in flight (a Redis round trip), and
 * for IN_FLIGHT_GAP_MS after one was: its reply is not held behind a long
 * slice, so a producer awaiting each publish adds its events to the streams
 * not yet written (more events per write, fewer round trips lost).
 */
const HELD_SLICE_MS = 0.25
const IN_FLIGHT_GAP_MS = 2
/** Only a pass whose writes took at least this long may be followed by a rest: shorter ones are not what saturates a loop. */
export const REST_AFTER_MS = 2 * SLICE_MS
/** The loop's utilization is read over the last one to two windows of this length. */
export const UTILIZATION_WINDOW_MS = 250
/**
 * Default `restAboveUtilization`: rest only once the loop is almost never
 * idle, so latency does not pay for CPU the machine has spare.
 */
export const DEFAULT_REST_ABOVE_UTILIZATION = 0.95
/** A rest shorter than this is not taken: a timer cannot wait much less than a millisecond. */
const MIN_REST_MS = 1
/**
 * A rest ends once this many frames wait, whatever their size: writes of
 * this many events each already cost little per event, and a producer this
 * fast would otherwise only add latency and memory.
 */
const REST_END_FRAMES = 16

/** What the scheduler flushes: a stream's batch for this event-loop turn. */
export interface Flushable {
  flush (): void
}

/**
 * All the hub knows of the pacing policy: it reports what it fans out, runs
 * each publish through `publish`, and clears its per-slice state on `onSlice`.
 */
export interface HubPacing {
  /** A frame of `bytes` was queued for its subscribers (once per frame, whatever their number). */
  fannedOut (bytes: number): void
  /**
   * Runs one publish's transport call. Slices stay short while it is in
   * flight, so its reply (Redis) is not held behind them. Resolves with its
   * result once the producer may go on: after yielding to I/O when this
   * turn's fan-out is large, so readers that keep up are never evicted by
   * one turn's batch of a producer publishing in a tight loop.
   */
  publish<T> (send: () => Promise<T>): Promise<T>
  /** Calls `fn` after every flush slice. */
  onSlice (fn: () => void): void
}

export interface FlushSchedulerOptions {
  /**
   * The event loop's utilization (0 < u ≤ 1) above which a long pass is
   * followed by a rest that brings it back to this; 1 never rests.
   * Default DEFAULT_REST_ABOVE_UTILIZATION.
   */
  restAboveUtilization?: number
  /** A connection's bound on unsent bytes: producer pacing is sized from it. Default 1 MiB. */
  maxBufferedBytes?: number
}

/**
 * The loop's utilization over the last one to two UTILIZATION_WINDOW_MS: two
 * snapshots, the older one measured from, rolled forward as windows pass.
 */
class LoopLoad {
  #from = performance.eventLoopUtilization()
  #mid = this.#from
  #midAt = performance.now()

  /** Busy and total ms since the older snapshot. */
  sample (): { active: number, total: number } {
    const now = performance.now()
    if (now - this.#midAt >= UTILIZATION_WINDOW_MS) {
      this.#from = this.#mid
      this.#mid = performance.eventLoopUtilization()
      this.#midAt = now
    }
    const d = performance.eventLoopUtilization(this.#from)
    return { active: d.active, total: d.active + d.idle }
  }
}

/**
 * Coalesces everything written to a socket within one event-loop turn into a
 * single write: a stream marks itself dirty on its first frame, and a
 * `setImmediate` flushes the dirty streams. The streams marked so far form
 * one pass (drain cycle), flushed in slices that yield to I/O in between: a
 * publish whose reply (Redis) or timer comes meanwhile is not held behind ten
 * thousand writes. Its frames join the batches of the streams not yet
 * written; streams already written are marked for the next pass. So an
 * overloaded loop writes fewer, larger chunks instead of falling further
 * behind, at no cost in latency.
 *
 * Rests are the one deliberate delay, and only for a saturated loop: after a
 * long pass, when the loop's utilization over the last window is above
 * `restAboveUtilization`, the next pass waits until it is back there (never
 * longer than the pass took). Each write then carries more events: less CPU
 * per event, and CPU left for the rest of the process and the machine, for
 * latency in proportion. A loop with idle time never rests.
 */
export class FlushScheduler implements HubPacing {
  /** The pass under way, and how far it has got. */
  #cycle: Flushable[] = []
  #next = 0
  /** Streams marked since the pass began: the next pass. */
  #marked: Flushable[] = []
  #scheduled = false
  readonly #restAbove: number
  readonly #load = new LoopLoad()
  /** When the current pass began, and how long its slices took so far (performance.now() ms). */
  #cycleStart = 0
  #cycleBusy = 0
  /** After a long pass on a saturated loop, the next one starts no sooner than this. */
  #restUntil = 0
  #restTimer: NodeJS.Timeout | undefined
  #rests = 0
  /** Publishes in flight (awaiting their transport), and when a slice last saw one. */
  #inFlight = 0
  #inFlightSeen = -Infinity
  /** Frames and bytes fanned out since the last slice. */
  #frames = 0
  #bytes = 0
  /** A producer awaiting each publish yields to I/O once this much was fanned out in one turn. */
  readonly #paceBytes: number
  /** A rest ends once this much is waiting, whatever the number of frames. */
  readonly #restEndBytes: number
  readonly #onSlice: Array<() => void> = []
  readonly #flush = (): void => this.flush()
  readonly #endRest = (): void => {
    clearTimeout(this.#restTimer)
    this.#restTimer = undefined
    this.#restUntil = 0
    this.#schedule()
  }

  constructor (options: FlushSchedulerOptions = {}) {
    this.#restAbove = options.restAboveUtilization ?? DEFAULT_REST_ABOVE_UTILIZATION
    this.#paceBytes = Math.max(16 * 1024, (options.maxBufferedBytes ?? 1 << 20) / 4)
    this.#restEndBytes = this.#paceBytes / 4
  }

  mark (stream: Flushable): void {
    this.#marked.push(stream)
    this.#schedule()
  }

  fannedOut (bytes: number): void {
    this.#frames++
    this.#bytes += bytes
    if (this.#restUntil > 0 && (this.#frames >= REST_END_FRAMES || this.#bytes >= this.#restEndBytes)) this.#endRest()
  }

  async publish<T> (send: () => Promise<T>): Promise<T> {
    this.#inFlight++
    let result: T
    try {
      result = await send()
    } finally {
      this.#inFlight--
    }
    // So much fanned out already ended any rest (see fannedOut): this only yields.
    if (this.#bytes > this.#paceBytes) await new Promise(resolve => setImmediate(resolve))
    return result
  }

  onSlice (fn: () => void): void {
    this.#onSlice.push(fn)
  }

  /** Whether the loop is resting after a long pass: streams marked now wait for its end. */
  get resting (): boolean {
    return this.#restUntil - performance.now() >= MIN_REST_MS
  }

  /** Rests taken so far. */
  get rests (): number {
    return this.#rests
  }

  #schedule (): void {
    if (!this.#scheduled && this.#restTimer === undefined) {
      this.#scheduled = true
      setImmediate(this.#flush)
    }
  }

  /** After a long pass: a rest if the loop is saturated, long enough to bring its utilization back to `restAboveUtilization`. */
  #restAfter (passMs: number): void {
    if (this.#restAbove >= 1) return
    const { active, total } = this.#load.sample()
    const restMs = Math.min(active / this.#restAbove - total, passMs)
    if (restMs < MIN_REST_MS) return
    this.#rests++
    this.#restUntil = performance.now() + restMs
    this.#restTimer = setTimeout(this.#endRest, restMs)
    // Sockets keep the process alive; a rest alone must not.
    this.#restTimer.unref()
  }

  /** Flushes one slice of the pass (starting the next pass when one is done). */
  flush (): void {
    this.#scheduled = false
    if (this.#next >= this.#cycle.length) {
      if (this.#marked.length === 0) return
      this.#cycle = this.#marked
      this.#marked = []
      this.#next = 0
      this.#cycleStart = performance.now()
      this.#cycleBusy = 0
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
    const end = performance.now()
    this.#cycleBusy += end - start
    this.#frames = 0
    this.#bytes = 0
    if (i >= cycle.length) {
      this.#cycle = []
      this.#next = 0
      if (this.#cycleBusy >= REST_AFTER_MS) this.#restAfter(end - this.#cycleStart)
    }
    if (this.#next > 0 || this.#marked.length > 0) this.#schedule()
    for (const fn of this.#onSlice) fn()
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
