/**
 * What `next()` of a capture and of a stream share: everything received is
 * kept; `next(match)` returns the first matching entry no `next()` returned
 * yet, waiting for one when there is none, so a test may ask before or after
 * the request that causes it.
 */
import { SseTestTimeoutError } from '../errors.js'

/** Which entry `next()` waits for: fields it must have, or a predicate. */
export type Match<T> = Partial<Record<'topic' | 'event' | 'id' | 'data', string>> | ((entry: T) => boolean)

interface Waiter<T> {
  readonly test: (entry: T) => boolean
  readonly resolve: (entry: T | undefined) => void
  readonly reject: (err: Error) => void
  /** Resolves undefined, instead of rejecting, at the end. */
  readonly orEnd: boolean
  readonly where: string
}

function tester<T> (match: Match<T> | undefined): (entry: T) => boolean {
  if (match === undefined) return () => true
  if (typeof match === 'function') return match
  const wanted = Object.entries(match).filter(([, value]) => value !== undefined)
  return entry => wanted.every(([key, value]) => (entry as Record<string, unknown>)[key] === value)
}

function describe<T> (match: Match<T> | undefined): string {
  if (match === undefined) return 'event'
  if (typeof match === 'function') return 'event matching the predicate'
  return `event with ${JSON.stringify(match)}`
}

export class Queue<T> {
  readonly entries: T[] = []
  readonly #taken = new Set<number>()
  readonly #waiters = new Set<Waiter<T>>()
  #ended: string | undefined

  push (entry: T): void {
    const index = this.entries.push(entry) - 1
    for (const waiter of this.#waiters) {
      if (!waiter.test(entry)) continue
      this.#waiters.delete(waiter)
      this.#taken.add(index)
      waiter.resolve(entry)
      return
    }
  }

  /** No more entries will come: waiters (and later calls) with nothing left reject with `why`. */
  end (why: string): void {
    if (this.#ended !== undefined) return
    this.#ended = why
    for (const waiter of this.#waiters) {
      if (waiter.orEnd) waiter.resolve(undefined)
      else waiter.reject(new SseTestTimeoutError(`${waiter.where}: ${why} before a matching event came (${this.entries.length} received)`))
    }
    this.#waiters.clear()
  }

  async next (match: Match<T> | undefined, timeoutMs: number, where: string): Promise<T> {
    return (await this.take(match, timeoutMs, where, false))!
  }

  /** Like `next`, resolving undefined instead of rejecting once the end came and nothing matching is left. */
  async take (match: Match<T> | undefined, timeoutMs: number, where: string, orEnd: boolean): Promise<T | undefined> {
    const test = tester(match)
    const index = this.entries.findIndex((entry, i) => !this.#taken.has(i) && test(entry))
    if (index >= 0) {
      this.#taken.add(index)
      return this.entries[index]!
    }
    if (this.#ended !== undefined) {
      if (orEnd) return undefined
      throw new SseTestTimeoutError(`${where}: ${this.#ended}, and no ${describe(match)} is left (${this.entries.length} received)`)
    }
    return await new Promise<T | undefined>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter)
        reject(new SseTestTimeoutError(`${where}: no ${describe(match)} within ${timeoutMs} ms (${this.entries.length} received)`))
      }, timeoutMs)
      const waiter: Waiter<T> = {
        test,
        orEnd,
        where,
        resolve: entry => { clearTimeout(timer); resolve(entry) },
        reject: err => { clearTimeout(timer); reject(err) }
      }
      this.#waiters.add(waiter)
    })
  }
}
