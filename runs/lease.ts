/**
 * The lease loop of one runner: while this process executes runs it renews
 * their leases in the store, picks up cancel requests made on other
 * instances, and marks runs of its kind whose owner stopped renewing as
 * `interrupted` (whichever instance's sweep comes first; the store's
 * `interrupt` lets exactly one win, and the winner announces it).
 *
 * A dead owner is noticed between `leaseMs` and `leaseMs + sweepMs` after its
 * last renewal (defaults 6 s and 2 s: under the 10 s the pages promise).
 *
 * Nothing here reads this machine's clock: renewals ask the store for
 * `leaseMs` from ITS now, and the store judges expiry by its own clock, so
 * instances whose clocks disagree never interrupt each other's healthy runs.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { RunStore, StoredRun } from './store.js'
import { SseInvalidOptionError } from '../plugin/errors.js'

export interface RunLeaseOptions {
  /** How long a renewal keeps a run alive. Default 6 000 ms. */
  leaseMs?: number
  /** Renew and sweep every … Default 2 000 ms (must be well under `leaseMs`). */
  sweepMs?: number
}

export interface RunLeaseHandlers {
  /** Another instance asked to cancel a run this process executes. */
  onCancel: (id: string) => void
  /** This call marked a run (of any owner) interrupted; announce it. */
  onInterrupted: (run: StoredRun) => Promise<void>
}

export class RunLeases {
  readonly leaseMs: number
  readonly sweepMs: number
  readonly #held = new Set<string>()
  #timer: NodeJS.Timeout | undefined
  #sweeping: Promise<void> | undefined
  #failing = false

  constructor (
    readonly store: RunStore,
    readonly owner: string,
    readonly kind: string,
    readonly handlers: RunLeaseHandlers,
    readonly log: FastifyBaseLogger | undefined,
    options: RunLeaseOptions = {}
  ) {
    this.leaseMs = options.leaseMs ?? 6_000
    this.sweepMs = options.sweepMs ?? 2_000
    if (!(this.sweepMs > 0 && this.leaseMs > this.sweepMs)) throw new SseInvalidOptionError('leaseMs/sweepMs (runs)', 'need 0 < sweepMs < leaseMs')
  }

  hold (id: string): void { this.#held.add(id) }
  release (id: string): void { this.#held.delete(id) }
  get held (): readonly string[] { return [...this.#held] }

  start (): void {
    if (this.#timer !== undefined) return
    // Unref'd: a lease loop alone never keeps a process alive.
    this.#timer = setInterval(() => { void this.sweep() }, this.sweepMs)
    this.#timer.unref()
    void this.sweep()
  }

  async stop (): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
    await this.#sweeping
  }

  /** One round: renew, deliver cancel requests, interrupt expired runs. Rounds never overlap. */
  async sweep (): Promise<void> {
    if (this.#sweeping !== undefined) return await this.#sweeping
    this.#sweeping = this.#round().finally(() => { this.#sweeping = undefined })
    return await this.#sweeping
  }

  /**
   * Marks one running run interrupted if its lease ran out (a page asking
   * about a run need not wait for the next sweep); the store decides, by its
   * clock. Resolves with the run as it now stands. (Undefined from the store
   * while the run still shows running: its lease is live, or another caller
   * interrupted it a moment ago and announces it, after the cursor a page
   * read before this run.)
   */
  async settle (run: StoredRun): Promise<StoredRun> {
    if (run.status !== 'running' || this.#held.has(run.id)) return run
    const interrupted = await this.store.interrupt(this.kind, run.id)
    if (interrupted === undefined) return run
    await this.handlers.onInterrupted(interrupted)
    return interrupted
  }

  async #round (): Promise<void> {
    try {
      const held = this.held
      if (held.length > 0) {
        for (const id of await this.store.renew(this.kind, this.owner, held, this.leaseMs)) this.handlers.onCancel(id)
      }
      for (const id of await this.store.expired(this.kind)) {
        const run = await this.store.interrupt(this.kind, id)
        if (run !== undefined) await this.handlers.onInterrupted(run)
      }
      if (this.#failing) this.log?.info({ kind: this.kind }, 'runs: store reachable again')
      this.#failing = false
    } catch (err) {
      // One line per outage; the next round retries.
      if (!this.#failing) this.log?.warn({ err, kind: this.kind }, 'runs: lease renewal failed')
      this.#failing = true
    }
  }
}

export interface RetryOptions {
  /** What is being written, for the log line. */
  what: string
  log: FastifyBaseLogger | undefined
  /** Stops retrying (the runner is closing); the last error is thrown. */
  signal: AbortSignal
  /** First pause after a failure; doubles up to `maxDelayMs`. Default 100 ms. */
  delayMs?: number
  /** Default 2 000 ms. */
  maxDelayMs?: number
  /** Called once, when the first attempt failed. */
  onFail?: () => void
}

/**
 * Runs a store write until the store answers: a write that must land (a run
 * finishing, a transcript entry that is about to be published) is retried
 * with backoff through a stall or an outage instead of being lost or
 * rejected into a timer callback. One warning per outage, one line when it
 * lands. Safe only for writes that are idempotent on retry (a timed-out
 * attempt may have been applied).
 */
export async function retryStore<T> (write: () => Promise<T>, options: RetryOptions): Promise<T> {
  let delay = options.delayMs ?? 100
  const maxDelay = options.maxDelayMs ?? 2_000
  let failed = false
  for (;;) {
    try {
      const result = await write()
      if (failed) options.log?.info({ what: options.what }, 'runs: store write landed after retrying')
      return result
    } catch (err) {
      if (options.signal.aborted) throw err
      if (!failed) {
        options.log?.warn({ err, what: options.what }, 'runs: store write failed; retrying until the store answers')
        options.onFail?.()
      }
      failed = true
      await pause(delay, options.signal)
      delay = Math.min(maxDelay, delay * 2)
    }
  }
}

/** Resolves after `ms` or when `signal` aborts; unref'd, so it never keeps a process alive. */
function pause (ms: number, signal: AbortSignal): Promise<void> {
  return new Promise(resolve => {
    const done = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    timer.unref()
    signal.addEventListener('abort', done, { once: true })
  })
}
