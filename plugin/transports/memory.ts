/**
 * In-process transport (the default): ids from one counter, history in a
 * ring buffer per topic.
 */
import { decodeData, type Frame } from '../encode.js'
import type { HubMessage, HubTransport, PublishInput, SinceResult } from '../transport.js'
import { parseId } from '../transport.js'

export interface MemoryTransportOptions {
  /** Events kept per topic for replay. */
  history?: number
}

/**
 * A kept event. Once the hub has encoded it (on delivery), the data string is
 * dropped and read back from the frame on demand: replay needs the frame,
 * only history() needs the string, and keeping both doubles the memory.
 */
class StoredMessage implements HubMessage {
  #data: string | undefined
  #frame: Frame | undefined

  constructor (
    readonly id: string,
    readonly topic: string,
    readonly event: string | undefined,
    data: string,
    readonly retry: number | undefined
  ) {
    this.#data = data
  }

  get data (): string {
    return this.#data ?? decodeData(this.#frame!)
  }

  get frame (): Frame | undefined {
    return this.#frame
  }

  set frame (frame: Frame | undefined) {
    this.#frame = frame
    if (frame !== undefined) this.#data = undefined
  }
}

class Ring {
  readonly #items: Array<HubMessage | undefined>
  #start = 0
  #size = 0
  /** Id of the newest event pushed out of the ring, or -1. */
  dropped = -1

  constructor (readonly capacity: number) {
    this.#items = new Array(capacity)
  }

  push (message: HubMessage, id: number): void {
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

  newest (limit: number): HubMessage[] {
    const out: HubMessage[] = []
    for (let i = Math.max(0, this.#size - limit); i < this.#size; i++) out.push(this.#at(i))
    return out
  }

  #at (i: number): HubMessage {
    return this.#items[(this.#start + i) % this.capacity]!
  }
}

export class MemoryTransport implements HubTransport {
  readonly #history: number
  readonly #rings = new Map<string, Ring>()
  #deliver: ((message: HubMessage) => void) | undefined
  // Ids start from the clock (in µs) so a restarted process never reissues an
  // id a client already holds: such a client gets a clean `reset`, not wrong events.
  readonly #floor = Date.now() * 1000
  #next = this.#floor + 1

  constructor (options: MemoryTransportOptions = {}) {
    this.#history = options.history ?? 1000
  }

  async start (deliver: (message: HubMessage) => void): Promise<void> {
    this.#deliver = deliver
  }

  async publish (topic: string, event: PublishInput): Promise<string> {
    const n = this.#next++
    const message = new StoredMessage(String(n), topic, event.event, event.data, event.retry)
    let ring = this.#rings.get(topic)
    if (ring === undefined) this.#rings.set(topic, ring = new Ring(this.#history))
    ring.push(message, n)
    this.#deliver?.(message)
    return message.id
  }

  async since (topic: string, afterId: string): Promise<SinceResult> {
    const after = parseId(afterId)
    if (after === undefined || after < this.#floor || after >= this.#next) return { events: [], complete: false }
    const ring = this.#rings.get(topic)
    if (ring === undefined) return { events: [], complete: true }
    return { events: ring.after(after), complete: after >= ring.dropped }
  }

  async history (topic: string, limit: number): Promise<HubMessage[]> {
    return this.#rings.get(topic)?.newest(limit) ?? []
  }

  async head (): Promise<string | undefined> {
    return String(this.#next - 1)
  }

  async close (): Promise<void> {
    this.#deliver = undefined
  }
}

export function memoryTransport (options?: MemoryTransportOptions): MemoryTransport {
  return new MemoryTransport(options)
}
