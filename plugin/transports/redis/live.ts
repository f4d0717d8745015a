/**
 * The live loop of the Redis transport: one `XREAD BLOCK` on the firehose,
 * on its own connection, for what publish replies did not deliver.
 *
 * An instance delivers its own publish when the script replies, and first
 * what other instances published since its previous publish (or its last
 * delivery, if newer): the script reads those from the firehose (at most
 * MISSED_MAX). Never its own in-flight events: they come with their own
 * replies, in order on the one connection, so a reply costs what others
 * published meanwhile, however many publishes this instance has in flight.
 * The XREAD loop skips what was delivered that way; while the instance keeps
 * publishing it does not read at all (every read would only bring its own
 * events back): it reads again once publishing has paused for QUIET_MS, or at
 * once when a reply could not deliver up to its own id (a gap, more than one
 * reply carries, or another epoch).
 *
 * Live delivery resumes from the last id this instance delivered whenever its
 * blocking connection (a `duplicate()` of your client, owned and closed here)
 * comes back, so nothing Redis accepted is lost while the firehose still holds
 * it. If the firehose was trimmed past that id (more than `firehose` events
 * published while this instance was cut off), its subscribers are closed
 * (resync): their reconnects are replayed from the topics' history, or reset.
 */
import type { Redis, RedisOptions } from 'ioredis'
import { describe, noop, type RedisCalls } from '../../redis/call.js'
import type { HubMessage } from '../../transport.js'
import { Delivery, type DeliveryHooks, type XreadReply } from './delivery.js'
import { type Keys, scripts } from './scripts.js'
import type { StreamEntry } from './support.js'

/** How long this instance's publishing must pause before the live loop reads again (see #whilePublishing). */
const QUIET_MS = 2

export class LiveLoop {
  readonly delivery: Delivery
  readonly #calls: RedisCalls
  readonly #keys: Keys
  readonly #blockMs: number
  readonly #timeoutMs: number
  #sub: Redis | undefined
  #loop: Promise<void> = Promise.resolve()
  #closed = false
  #down = false
  /** Times live delivery came back after an outage. */
  #reconnects = 0
  /** Publishes of this instance awaiting Redis, and when the last one's reply came (performance.now()). */
  #publishing = 0
  #publishedAt = -Infinity
  /** A publish reply could not deliver everything up to its id: the loop must read now. */
  #behind = false
  /** Ends the loop's pause (see #whilePublishing). */
  #resume: (() => void) | undefined
  /** Cancels pending timers and waits on close. */
  readonly #pending = new Set<() => void>()

  /** `timeoutMs`: the bound of since/head waiting for live delivery, and of close() waiting for the loop. */
  constructor (calls: RedisCalls, keys: Keys, blockMs: number, timeoutMs: number) {
    this.#calls = calls
    this.#keys = keys
    this.#blockMs = blockMs
    this.#timeoutMs = timeoutMs
    this.delivery = new Delivery(calls.clock, timeoutMs, keys.seq)
  }

  /** Times live delivery came back after an outage (metrics). */
  get reconnects (): number { return this.#reconnects }

  /** Why live delivery cannot take new streams now, or undefined when it can (readiness). */
  notReady (): string | undefined {
    if (this.delivery.position === undefined) return 'redis live delivery has not started'
    if (this.#down || this.#sub?.status !== 'ready') return 'redis live delivery is reconnecting'
    return undefined
  }

  async start (hooks: DeliveryHooks): Promise<void> {
    this.delivery.start(hooks)
    const sub = this.#calls.client.duplicate({
      lazyConnect: false,
      enableOfflineQueue: true,
      // Fail the blocked XREAD as soon as the connection drops; the loop
      // retries by itself, from its last id.
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      enableAutoPipelining: false,
      retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
      connectionName: `${this.#keys.all}:xread`
    } satisfies Partial<RedisOptions>)
    // Connection errors surface through the loop's failing XREAD, logged once per outage.
    sub.on('error', noop)
    this.#sub = sub
    try {
      // Where live delivery starts: the counter now (the `$` of the firehose, in ids).
      this.delivery.setStart(await this.#calls.timed('start', scripts.head, this.#headKeys(), () => [this.delivery.floor]), false)
    } catch (err) {
      this.#markDown(err)
    }
    this.#loop = this.#run()
  }

  /** Counts a publish in flight (the loop does not read meanwhile) until the returned function is called. */
  publishing (): () => void {
    this.#publishing++
    return () => {
      this.#publishing--
      this.#publishedAt = performance.now()
    }
  }

  /** A publish's reply (see Delivery.published); the loop reads at once when delivery here is behind it. */
  published (message: HubMessage, fresh: number, missed: StreamEntry[], epoch: string): void {
    if (this.delivery.published(message, fresh, missed, epoch)) return
    this.#behind = true
    this.#resume?.()
  }

  async close (): Promise<void> {
    this.#closed = true
    this.delivery.close()
    for (const cancel of [...this.#pending]) cancel()
    // disconnect, not quit: QUIT would wait for the blocked XREAD.
    this.#sub?.disconnect()
    // Bounded: a command the loop queued while its connection was between
    // reconnects may never settle once that connection is disconnected (no
    // 'close' event comes to flush ioredis's offline queue), and app.close()
    // must not wait on it forever.
    let timer: NodeJS.Timeout | undefined
    await Promise.race([this.#loop, new Promise<void>(resolve => { timer = setTimeout(resolve, this.#timeoutMs) })])
    clearTimeout(timer)
  }

  #headKeys (): string[] {
    return [this.#keys.seq, this.#keys.epoch, this.#keys.all]
  }

  #markDown (err: unknown): void {
    if (this.#down || this.#closed) return
    this.#down = true
    this.delivery.log.warn({ err: describe(err), delivered: this.delivery.position }, 'sse redis: Redis unavailable; publishes fail with "redis unavailable", connected clients stay open, retrying in the background')
  }

  #markUp (): void {
    if (!this.#down) return
    this.#down = false
    this.#reconnects++
    this.delivery.log.info({ resumeAfter: this.delivery.position }, 'sse redis: Redis reachable again; live delivery resumes after the last delivered id')
  }

  #sleep (ms: number): Promise<void> {
    return new Promise(resolve => {
      const cancel = (): void => {
        clearTimeout(timer)
        this.#pending.delete(cancel)
        resolve()
      }
      const timer = setTimeout(cancel, ms)
      this.#pending.add(cancel)
    })
  }

  /** XREAD BLOCK on the firehose after the last delivered id, forever. */
  async #run (): Promise<void> {
    const sub = this.#sub!
    const delivery = this.delivery
    let backoff = 100
    while (!this.#closed) {
      try {
        if (delivery.position === undefined) {
          delivery.setStart(await this.#calls.clock.run(sub, scripts.head, this.#headKeys(), [delivery.floor]), true)
        } else if (this.#down) {
          // Back after an outage: if Redis lost its data meanwhile, the new
          // epoch starts now rather than at the next publish, so fewer
          // subscribers arrive between the loss and the epoch (they get reset).
          delivery.sawHead(await this.#calls.clock.run(sub, scripts.head, this.#headKeys(), [delivery.floor]), 'reconnect')
        }
        this.#markUp()
        await this.#whilePublishing()
        this.#behind = false
        const reply = await this.#xread(sub, delivery.position!)
        backoff = 100
        if (reply !== null) {
          const epoch = delivery.needsEpoch(reply) ? Number(await sub.get(this.#keys.epoch)) : undefined
          delivery.handle(reply, epoch)
        }
      } catch (err) {
        if (this.#closed) break
        this.#markDown(err)
        await this.#sleep(backoff)
        backoff = Math.min(backoff * 2, 2000)
      }
    }
  }

  async #xread (sub: Redis, after: string): Promise<XreadReply | null> {
    // A half-open connection never answers: force a reconnect if the BLOCK
    // does not come back well after its own timeout.
    const watchdog = setTimeout(() => {
      this.delivery.log.warn('sse redis: XREAD did not return in time; reconnecting')
      sub.disconnect(true)
    }, this.#blockMs + 10_000)
    try {
      return await sub.xread('COUNT', 1000, 'BLOCK', this.#blockMs, 'STREAMS', this.#keys.all, after) as XreadReply | null
    } finally {
      clearTimeout(watchdog)
    }
  }

  /**
   * While this instance keeps publishing, its own events and what other
   * instances published meanwhile come with each publish's reply, so the
   * loop, whose every XREAD would only bring our own events back, waits
   * until publishing pauses for QUIET_MS (or a reply shows a gap).
   */
  async #whilePublishing (): Promise<void> {
    while (!this.#closed && !this.#behind && (this.#publishing > 0 || performance.now() - this.#publishedAt < QUIET_MS)) {
      await new Promise<void>(resolve => {
        const done = (): void => {
          clearTimeout(timer)
          this.#pending.delete(done)
          if (this.#resume === done) this.#resume = undefined
          resolve()
        }
        const timer = setTimeout(done, QUIET_MS)
        this.#pending.add(done)
        this.#resume = done
      })
    }
  }
}
