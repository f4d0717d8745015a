/**
 * Redis's clock as seen from this process. Deadlines and leases are judged
 * in Redis time only, so instances whose clocks disagree never judge each
 * other; this is how an instance turns its own instants into Redis's.
 */
import type { Redis } from 'ioredis'
import type { Script } from './script.js'

/** A sample is replaced by a less precise one once it is this old (clocks drift). */
const KEEP_MS = 60_000

export class RedisClock {
  /** Redis's clock minus ours (Date.now()), in ms, once a reply told us. */
  offset: number | undefined
  /** How far `offset` may be off, in ms. */
  error = Infinity
  #at = -Infinity

  /**
   * Learns the offset from Redis's time in a reply (`sent`: Date.now() when
   * the command left). Redis read its clock between sending and now, so the
   * midpoint is off by at most half the round trip (and TIME's truncation
   * to ms). The sample with the smallest error wins, unless the kept one is old.
   */
  learn (redisMs: unknown, sent: number): void {
    if (typeof redisMs !== 'number') return
    const now = Date.now()
    const error = (now - sent) / 2 + 1
    if (error > this.error && now - this.#at < KEEP_MS) return
    this.offset = redisMs - (sent + now) / 2
    this.error = error
    this.#at = now
  }

  /** `ms` from now, in Redis's clock: a write's deadline. 0 (none) until the offset is known. */
  deadline (ms: number): number {
    return this.offset === undefined ? 0 : Math.round(Date.now() + this.offset + ms)
  }

  /** The earliest and latest instant (Date.now() scale) that Redis instant `redisMs` can be here; undefined until the offset is known. */
  local (redisMs: number): { earliest: number, latest: number } | undefined {
    if (this.offset === undefined) return undefined
    const at = redisMs - this.offset
    return { earliest: at - this.error, latest: at + this.error }
  }

  /**
   * Runs a script whose reply starts with Redis's time in ms (`nowMs()` of
   * CLOCK_LUA), learns the offset from it, and returns the rest of the reply.
   */
  async run (client: Redis, script: Script, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown[]> {
    const sent = Date.now()
    const reply = await script.run(client, keys, args) as unknown[]
    this.learn(reply[0], sent)
    return reply.slice(1)
  }
}
