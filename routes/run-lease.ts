/**
 * The lease loop of one runner: while this process executes runs it renews
 * their leases in the store, picks up cancel requests made on other
 * instances, and marks runs of its kind whose owner stopped renewing as
 * `interrupted` (whichever instance's sweep comes first; the store's
 * `interrupt` lets exactly one win, and the winner announces it).
 *
 * A dead owner is noticed between `leaseMs` and `leaseMs + sweepMs` after its
 * last renewal (defaults 6 s and 2 s: under the 10 s the pages promise).
 */
import type { FastifyBaseLogger } from 'fastify'
import type { RunStore, StoredRun } from './run-store.js'

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
    if (!(this.sweepMs > 0 && this.leaseMs > this.sweepMs)) throw new TypeError('run leases: need 0 < sweepMs < leaseMs')
  }

  /** The lease end a run started or renewed now gets. */
  until (now = Date.now()): number {
    return now + this.leaseMs
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
   * Marks one run interrupted if its lease ran out (a page asking about a run
   * need not wait for the next sweep). Resolves with the run as it now stands.
   */
  async settle (run: StoredRun, now = Date.now()): Promise<StoredRun> {
    if (run.status !== 'running' || run.leaseUntil >= now) return run
    const interrupted = await this.store.interrupt(run.id, now)
    if (interrupted === undefined) return await this.store.get(run.id) ?? run
    await this.handlers.onInterrupted(interrupted)
    return interrupted
  }

  async #round (): Promise<void> {
    try {
      const held = this.held
      if (held.length > 0) {
        for (const id of await this.store.renew(this.owner, held, this.until())) this.handlers.onCancel(id)
      }
      const now = Date.now()
      for (const id of await this.store.expired(this.kind, now)) {
        const run = await this.store.interrupt(id, now)
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
