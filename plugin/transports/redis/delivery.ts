/**
 * What this instance of the Redis transport delivered: the id it reached,
 * in which epoch, and the order rule (every event once, in id order, or a
 * `reset`/resync before any gap). Both ways events arrive, publish replies
 * and the XREAD loop (./live.ts), go through here.
 *
 * Data loss: a Redis that restarts without persistence, fails over or is
 * restored from a snapshot forgets (part of) the counter. Every script
 * receives the highest id this instance has seen as a floor; when the counter
 * is missing or behind the floor or the streams, it starts a new epoch from
 * Redis's clock in microseconds (like the memory transport), never below the
 * floor. Ids therefore never go backwards and are never reissued (as long as
 * fewer than a million events per second were published, and Redis's clock did
 * not go back). Events of the old epoch that this instance had not delivered
 * may be gone (another instance's, published just before the loss), and no one
 * can tell which: when live delivery reaches the new epoch, every subscriber
 * here that was connected before the loss gets `reset`. Nobody records when
 * the loss happened; the epoch's start (its id, converted with the clock
 * offset and its error) is the latest it can have been, so subscribers that
 * arrived later keep their stream, and those that arrived between the loss
 * and the epoch's start get `reset` too. After an outage the live loop runs
 * one script at once, so the epoch starts soon after Redis comes back.
 * Clients holding an id from before the epoch get `reset` when they reconnect.
 *
 * Late start: when Redis does not answer start(), live delivery gets its
 * position once it does; subscribers that connected meanwhile are closed
 * (they resume with replay or reset), unless the epoch began after start()
 * (Redis came back empty): then live delivery starts from the epoch's start.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { RedisClock } from '../../redis/clock.js'
import type { HubMessage } from '../../transport.js'
import { messageOf, seqOf, silentLog, type StreamEntry } from './support.js'

/** What the hub gave the transport's start(). */
export interface DeliveryHooks {
  deliver: (message: HubMessage) => void
  log?: FastifyBaseLogger
  resync?: () => void
  reset?: (id: string, lostBefore?: number) => void
}

/** A HEAD reply after Redis's time: { seq, firehoseTop, newEpoch, epoch }. */
export type HeadReply = unknown[]

export type XreadReply = Array<[string, StreamEntry[]]>

export class Delivery {
  readonly #clock: RedisClock
  readonly #timeoutMs: number
  /** Names the counter key in logs. */
  readonly #seqKey: string
  #deliver: ((message: HubMessage) => void) | undefined
  #resync: (() => void) | undefined
  #reset: ((id: string, lostBefore?: number) => void) | undefined
  log: FastifyBaseLogger = silentLog
  #closed = false
  /** Stream id the live loop reads after, and its number: every event up to it was delivered (or predates start). */
  #position: string | undefined
  #delivered = -1
  /** The epoch of the ids delivered here (see "Data loss"). */
  #epoch = -1
  /** A reply showed another epoch: the live loop checks the epoch key before delivering more. */
  #epochSuspect = false
  /** Before live delivery has a position (Redis was down at start): just below the first id published here, so the loop still delivers it. */
  #earliest = Infinity
  /** When start() was called (Date.now()): no subscriber of this instance arrived before. */
  #startedAt = 0
  /** Highest id this instance has seen anywhere: the floor ids never go below. */
  #floor = 0
  /** since/head calls waiting for live delivery to pass an id. */
  readonly #waiters = new Set<{ target: number, done: (ok: boolean) => void }>()

  /** `timeoutMs`: how long since/head wait for live delivery to catch up. */
  constructor (clock: RedisClock, timeoutMs: number, seqKey: string) {
    this.#clock = clock
    this.#timeoutMs = timeoutMs
    this.#seqKey = seqKey
  }

  /** The highest id seen here: every script gets it as the floor of the counter. */
  get floor (): number { return this.#floor }
  /** The newest id delivered here (everything up to it was). */
  get delivered (): number { return this.#delivered }
  /** The stream id the live loop reads after; undefined until Redis first answered. */
  get position (): string | undefined { return this.#position }
  /** The epoch of the ids delivered here. */
  get epoch (): number { return this.#epoch }
  /** Where a publish reply's `missed` may start: the last delivery, -1 before live delivery has a position. */
  get after (): number { return this.#position === undefined ? -1 : this.#delivered }

  start (hooks: DeliveryHooks): void {
    this.#deliver = hooks.deliver
    this.#resync = hooks.resync
    this.#reset = hooks.reset
    this.log = hooks.log ?? silentLog
    this.#startedAt = Date.now()
  }

  /**
   * A publish's reply. Delivers now, in id order, what other instances
   * published since this one's previous publish (the script read it), then
   * our own event, instead of when the XREAD loop brings them: a second round
   * trip through Redis that waits for a turn of an event loop busy with
   * fan-out. A gap (ids trimmed, more than the reply carries, an earlier
   * reply not delivered yet) or another epoch is left to the loop, which
   * delivers in id order and skips what is delivered here. False when
   * delivery here is behind the event: the loop must read now.
   */
  published (message: HubMessage, fresh: number, missed: StreamEntry[], epoch: string): boolean {
    const { id } = message
    if (fresh !== 0) this.#newEpoch(id, 'publish', fresh)
    const n = Number(id)
    if (this.#position === undefined) this.#earliest = Math.min(this.#earliest, n - 1)
    this.#see(n)
    if (Number(epoch) !== this.#epoch) this.#epochSuspect = true
    else if (fresh === 0 && this.#position !== undefined && !this.#closed) {
      this.#deliverInOrder(missed)
      if (n === this.#delivered + 1) {
        this.#position = `${id}-0`
        this.#deliverOne(n, message)
      }
      this.#wake()
    }
    return this.#delivered >= n
  }

  /** A reply that read the counter (`fresh`: it started a new epoch). */
  counted (seq: string, fresh: number, where: string): void {
    if (fresh !== 0) this.#newEpoch(seq, where, fresh)
    this.#see(Number(seq))
  }

  /** A HEAD reply outside start: learns a new epoch and the counter; [seq, firehoseTop]. */
  sawHead (head: HeadReply, where: string): [string, number] {
    const [seq, firehoseTop, fresh, epoch] = head as [string, string, number, string]
    this.counted(seq, fresh, where)
    if (Number(epoch) !== this.#epoch) this.#epochSuspect = true
    return [seq, Number(firehoseTop)]
  }

  /**
   * Fixes where live delivery starts. `late`: start() could not reach Redis,
   * so subscribers may have connected before this position was read, and
   * an event published between their arrival and the read would never reach
   * them. When the epoch began after start() (Redis came back empty, as
   * after a restart without persistence), every event of it may be owed to
   * them: live delivery starts from the epoch's start. Otherwise their
   * arrival cannot be placed among the ids, and they are closed (resync),
   * so clients resume with replay or reset.
   */
  setStart (head: HeadReply, late: boolean): void {
    const [seq, , fresh, epoch] = head as [string, string, number, string]
    this.counted(seq, fresh, 'start')
    const e = Number(epoch)
    // The epoch's id is Redis's clock (µs) when it began (see "Data loss").
    const whole = late && (this.#clock.local(e / 1000)?.earliest ?? -Infinity) > this.#startedAt
    const n = Math.min(Number(seq), this.#earliest, whole ? e : Infinity)
    this.#position = `${n}-0`
    this.#delivered = n
    this.#epoch = e
    if (late && !whole) {
      this.log.info({ after: n }, 'sse redis: live delivery starts now that Redis answers; subscribers that connected before are closed so they resume')
      this.#resync?.()
    }
    this.#wake()
  }

  /**
   * Whether an XREAD reply needs the epoch key read before it is handled. A
   * jump in ids is either a new epoch (Redis lost data) or a trimmed
   * firehose (events this instance can no longer deliver live): only the
   * epoch key tells them apart. A reply elsewhere may also have shown a new
   * epoch whose ids follow ours without a jump.
   */
  needsEpoch (reply: XreadReply): boolean {
    const first = seqOf(reply[0]?.[1][0]?.[0] ?? '')
    return this.#epochSuspect || (first !== undefined && first > this.#delivered + 1 && this.#delivered > 0)
  }

  /** Delivers an XREAD reply; `epoch` (the epoch key, when read) tells a new epoch from a trimmed firehose. */
  handle (reply: XreadReply, epoch?: number): void {
    if (epoch !== undefined) this.#epochSuspect = false
    for (const [, entries] of reply) {
      for (const [sid, fields] of entries) {
        const n = seqOf(sid)
        // Never back: an event delivered on publish may already be past this one.
        if (n === undefined || n > this.#delivered) this.#position = sid
        if (n === undefined || n <= this.#delivered) continue
        if (epoch !== undefined && epoch !== this.#epoch && n > epoch) {
          // Redis lost data: events of the old epoch this instance had not
          // delivered yet may be gone, and nothing tells which.
          this.log.warn({ from: this.#delivered, epoch },
            'sse redis: live delivery reached a new epoch (Redis lost data); sending reset to subscribers here')
          this.#epoch = epoch
          this.#reset?.(String(epoch), this.#lostBefore(epoch))
        } else if (n > this.#delivered + 1 && this.#delivered > 0) {
          this.log.warn({ from: this.#delivered, to: n },
            'sse redis: ids jumped (firehose trimmed while this instance was cut off); closing subscribers here so they resume with replay or reset')
          this.#resync?.()
        }
        this.#deliverEntry(n, fields)
      }
    }
    this.#wake()
  }

  /** Resolves true once live delivery has passed `target`, false after timeoutMs or on close. */
  caughtUp (target: number): Promise<boolean> {
    if (this.#delivered >= target) return Promise.resolve(true)
    if (this.#closed) return Promise.resolve(false)
    return new Promise(resolve => {
      const waiter = {
        target,
        done: (ok: boolean) => {
          clearTimeout(timer)
          this.#waiters.delete(waiter)
          resolve(ok)
        }
      }
      const timer = setTimeout(() => waiter.done(false), this.#timeoutMs)
      this.#waiters.add(waiter)
    })
  }

  close (): void {
    this.#closed = true
    this.#deliver = undefined
    for (const waiter of [...this.#waiters]) waiter.done(false)
  }

  /**
   * An instant (performance.now()) after which Redis had surely lost the
   * data that epoch `epoch` replaced. The first script that ran after the
   * loss created the epoch from Redis's clock in µs (or from a floor above
   * it), so the loss came before epoch / 1000 in Redis's clock; in ours, at
   * most the offset's error later. Without a known offset: now, the moment
   * we learn of the epoch, which is also after the loss.
   */
  #lostBefore (epoch: number): number {
    const now = performance.now()
    const at = this.#clock.local(epoch / 1000)
    return at === undefined ? now : Math.min(now, now + at.latest - Date.now())
  }

  #see (id: number): void {
    if (Number.isSafeInteger(id) && id > this.#floor) this.#floor = id
  }

  #newEpoch (id: string, where: string, code: number): void {
    this.#epochSuspect = true
    if (code === 2) {
      this.log.info({ id, prefix: this.#seqKey }, 'sse redis: started the id counter')
      return
    }
    this.log.warn({ id, where }, 'sse redis: the id counter was missing or behind (Redis lost data: restart without persistence, failover or restore); ids continue from a new epoch, clients here get reset')
  }

  #wake (): void {
    for (const waiter of [...this.#waiters]) {
      if (this.#delivered >= waiter.target) waiter.done(true)
    }
  }

  /** Delivers firehose entries that are next in id order; stops at the first gap. */
  #deliverInOrder (entries: StreamEntry[]): void {
    for (const [sid, fields] of entries) {
      const m = seqOf(sid)
      if (m === undefined || m <= this.#delivered) continue
      if (m !== this.#delivered + 1) return
      this.#position = sid
      this.#deliverEntry(m, fields)
    }
  }

  /** Delivers firehose entry `n` (the next in id order); an entry that is not an event only moves the cursor. */
  #deliverEntry (n: number, fields: string[]): void {
    this.#see(n)
    const message = messageOf(String(n), undefined, fields)
    if (message === undefined) this.#delivered = n
    else this.#deliverOne(n, message)
  }

  #deliverOne (n: number, message: HubMessage): void {
    this.#delivered = n
    try {
      this.#deliver?.(message)
    } catch (err) {
      this.log.error({ err }, 'sse redis: delivering an event failed')
    }
  }
}
