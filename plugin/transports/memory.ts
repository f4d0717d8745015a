/**
 * In-process transport (the default): ids from one counter, history in a
 * ring buffer per topic, and a bound on the number of topics kept.
 */
import type { HubMessage, HubTransport, PublishInput, SincePage, SinceResult } from '../transport.js'
import { parseId } from '../transport.js'
import * as option from '../options.js'

export interface MemoryTransportOptions {
  /** Events kept per topic for replay. Default 1 000. */
  history?: number
  /**
   * Topics whose history is kept. Past it, the topic published to least
   * recently is forgotten (its history dropped); a client that still holds
   * an id older than its newest event gets `reset`. Default 10 000.
   */
  maxTopics?: number
}

class Ring {
  readonly #items: Array<HubMessage | undefined>
  #start = 0
  #size = 0
  /** Id of the newest event pushed out of the ring, or -1. */
  dropped = -1
  /** Id of the newest event in the ring, or -1. */
  newest = -1

  constructor (readonly capacity: number) {
    this.#items = new Array(capacity)
  }

  push (message: HubMessage, id: number): void {
    this.newest = id
    if (this.capacity === 0) {
      this.dropped = id
      return
    }
    if (this.#size < this.capacity) {
      this.#items[(this.#start + this.#size++) % this.capacity] = message
      return
    }
    this.dropped = Number(this.#items[this.#start]!.id)
    this.#items[this.#start] = message
    this.#start = (this.#start + 1) % this.capacity
  }

  /** Entries with id > after, oldest first (binary search: ids are increasing). */
  after (after: number): HubMessage[] {
    let lo = 0
    let hi = this.#size
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (Number(this.#at(mid).id) <= after) lo = mid + 1
      else hi = mid
    }
    const out: HubMessage[] = []
    for (let i = lo; i < this.#size; i++) out.push(this.#at(i))
    return out
  }

  newestItems (limit: number): HubMessage[] {
    const out: HubMessage[] = []
    for (let i = Math.max(0, this.#size - limit); i < this.#size; i++) out.push(this.#at(i))
    return out
  }

  #at (i: number): HubMessage {
    return this.#items[(this.#start + i) % this.capacity]!
  }
}

/** Every key of MemoryTransportOptions: the compiler refuses this object when one is missing or extra. */
const OPTION_KEYS = Object.keys({ history: 0, maxTopics: 0 } satisfies Record<keyof MemoryTransportOptions, 0>)

export class MemoryTransport implements HubTransport {
  readonly #history: number
  readonly #maxTopics: number
  /** Rings in least-recently-published order (a Map keeps insertion order; a publish moves its topic to the end). */
  readonly #rings = new Map<string, Ring>()
  /**
   * Forgotten topics and the newest id they had, so a client of one still
   * learns whether it missed something. Bounded like the rings; past it the
   * oldest tombstone is folded into `#forgottenFloor`.
   */
  readonly #tombstones = new Map<string, number>()
  #forgottenFloor = -1
  #deliver: ((message: HubMessage) => void) | undefined
  // Ids start from the clock (in µs) so a restarted process never reissues an
  // id a client already holds: such a client gets a clean `reset`, not wrong events.
  readonly #floor = Date.now() * 1000
  #next = this.#floor + 1

  constructor (options: MemoryTransportOptions = {}) {
    option.onlyKnown(options, OPTION_KEYS, 'memoryTransport')
    this.#history = option.integer('history (memoryTransport)', options.history, 1000, 0)
    this.#maxTopics = option.integer('maxTopics (memoryTransport)', options.maxTopics, 10_000, 1)
  }

  /** Topics whose history is kept now (at most `maxTopics`). */
  get topicCount (): number {
    return this.#rings.size
  }

  async start (deliver: (message: HubMessage) => void): Promise<void> {
    this.#deliver = deliver
  }

  async publish (topic: string, event: PublishInput): Promise<string> {
    const n = this.#next++
    const message: HubMessage = Object.freeze({ id: String(n), topic, event: event.event, data: event.data, retry: event.retry })
    let ring = this.#rings.get(topic)
    if (ring === undefined) {
      ring = new Ring(this.#history)
      const gone = this.#tombstones.get(topic)
      if (gone !== undefined) {
        // What a client of the forgotten topic may have missed is gone for good.
        ring.dropped = gone
        this.#tombstones.delete(topic)
      }
      if (this.#rings.size >= this.#maxTopics) this.#forgetOldest()
    } else {
      this.#rings.delete(topic)
    }
    this.#rings.set(topic, ring)
    ring.push(message, n)
    this.#deliver?.(message)
    return message.id
  }

  /**
   * Returns every missed event in one page, whatever `page.limit`: the
   * history is in process, so the page costs references only, and a snapshot
   * cannot be overtaken by the ring moving on while the hub writes it out.
   */
  async since (topics: readonly string[], afterId: string, page: SincePage): Promise<SinceResult> {
    const head = this.#next - 1
    const upTo = page.upTo === undefined ? head : (parseId(page.upTo) ?? head)
    const after = parseId(afterId)
    const none: SinceResult = { events: [], complete: false, upTo: String(upTo), more: false }
    if (after === undefined || after < this.#floor || after > head) return none
    let events: HubMessage[] = []
    for (const topic of topics) {
      const ring = this.#rings.get(topic)
      if (ring === undefined) {
        if (after < (this.#tombstones.get(topic) ?? this.#forgottenFloor)) return none
        continue
      }
      if (after < ring.dropped) return none
      const missed = ring.after(after)
      events = events.concat(upTo >= head ? missed : missed.filter(m => Number(m.id) <= upTo))
    }
    if (topics.length > 1) events.sort((a, b) => Number(a.id) - Number(b.id))
    return { events, complete: true, upTo: String(upTo), more: false }
  }

  async history (topic: string, limit: number): Promise<HubMessage[]> {
    return this.#rings.get(topic)?.newestItems(limit) ?? []
  }

  async head (): Promise<string | undefined> {
    return String(this.#next - 1)
  }

  /** Forgets a topic's history now (e.g. a finished job's); clients still holding older ids get `reset`. */
  async forget (topic: string): Promise<void> {
    const ring = this.#rings.get(topic)
    if (ring === undefined) return
    this.#rings.delete(topic)
    this.#bury(topic, ring.newest)
  }

  async close (): Promise<void> {
    this.#deliver = undefined
  }

  #forgetOldest (): void {
    const oldest = this.#rings.keys().next()
    if (oldest.done === true) return
    const ring = this.#rings.get(oldest.value)!
    this.#rings.delete(oldest.value)
    this.#bury(oldest.value, ring.newest)
  }

  #bury (topic: string, newest: number): void {
    this.#tombstones.set(topic, newest)
    if (this.#tombstones.size > this.#maxTopics) {
      const first = this.#tombstones.entries().next().value!
      this.#tombstones.delete(first[0])
      if (first[1] > this.#forgottenFloor) this.#forgottenFloor = first[1]
    }
  }
}

export function memoryTransport (options?: MemoryTransportOptions): MemoryTransport {
  return new MemoryTransport(options)
}
