/**
 * The one Redis call layer of the hub's transport and the run store. Every
 * command they send on the user's client goes through `call` (or the script
 * helpers around it), which
 *
 * - sends only on a ready connection: it waits at most `timeoutMs` for one
 *   (one 'ready' listener however many calls wait), so no command sits in
 *   ioredis's offline queue to be applied long after its caller gave up;
 * - bounds the wait for the reply, then rejects with the user's coded 503
 *   error (HTMX_SSE_REDIS_UNAVAILABLE, or a subclass of it);
 * - gives a write a deadline in Redis's clock, which its script checks
 *   (`arrived()` of CLOCK_LUA), and says truthfully whether a failed write
 *   was applied: "not accepted" (it was not) or "not confirmed" (no reply
 *   came: it was, if Redis ran it in time);
 * - turns an error reply of Redis itself (a key of another type, a script
 *   error) into HTMX_SSE_REDIS_ERROR (500): not an outage.
 */
import type { Redis } from 'ioredis'
import { SseRedisError, SseRedisUnavailableError } from '../errors.js'
import { RedisClock } from './clock.js'
import type { Script } from './script.js'

/** A coded 503 error class: SseRedisUnavailableError or one made with it as its base. */
export type UnavailableError = new (message: string, options?: { cause: unknown }) => Error

export interface RedisCallsOptions {
  /** Names the caller in HTMX_SSE_REDIS_ERROR messages (`redisTransport`, `RedisRunStore`). */
  owner: string
  /** Bound on a call: waiting for the connection, then for the reply. */
  timeoutMs: number
  /** The error of an outage. Default SseRedisUnavailableError. */
  unavailable?: UnavailableError
  /** What a call that close() cut short rejects with. */
  closed?: () => Error
}

export interface WriteOptions {
  /**
   * A write still unanswered after `timeoutMs` on a connection that is
   * still healthy waits as long again for the reply that says whether it
   * was applied, rather than answer "not confirmed".
   */
  grace?: boolean
}

/**
 * A script's arguments, or a function that gives them when the command is
 * sent: after any wait for the connection, so they say what the caller
 * knows then (the transport's floor, its last delivery).
 */
export type ScriptArgs = ReadonlyArray<string | number> | (() => ReadonlyArray<string | number>)

const argsOf = (args: ScriptArgs): ReadonlyArray<string | number> => typeof args === 'function' ? args() : args

interface Write {
  /** When Redis refuses it, in Redis's clock; 0: no deadline (the clock was not known yet). */
  deadline: number
  grace: boolean
}

export const noop = (): void => {}

export function describe (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

export class RedisCalls {
  readonly client: Redis
  readonly clock = new RedisClock()
  readonly timeoutMs: number
  readonly #owner: string
  readonly #unavailable: UnavailableError
  readonly #closedError: () => Error
  #closed = false
  /** The one wait for the client's 'ready' that every call in an outage shares. */
  #ready: Promise<void> | undefined
  /** What close() cuts short. */
  readonly #pending = new Set<() => void>()

  constructor (client: Redis, options: RedisCallsOptions) {
    this.client = client
    this.timeoutMs = options.timeoutMs
    this.#owner = options.owner
    this.#unavailable = options.unavailable ?? SseRedisUnavailableError
    this.#closedError = options.closed ?? (() => this.unavailable(`${this.#owner} is closed`))
  }

  /** The caller's coded 503 error. */
  unavailable (message: string, cause?: unknown): Error {
    return cause === undefined ? new this.#unavailable(message) : new this.#unavailable(message, { cause })
  }

  /** A script that only reads, bounded. */
  async script (what: string, script: Script, keys: readonly string[], args: ScriptArgs): Promise<unknown> {
    return await this.call(what, async () => await script.run(this.client, keys, argsOf(args)))
  }

  /** A read script whose reply starts with Redis's time: the clock learns from it; the rest of the reply. */
  async timed (what: string, script: Script, keys: readonly string[], args: ScriptArgs): Promise<unknown[]> {
    return await this.call(what, async () => await this.clock.run(this.client, script, keys, argsOf(args)))
  }

  /**
   * A write script: ARGV[1] is its deadline, `timeoutMs` from now in Redis's
   * clock (the moment its caller is told it failed), and its reply starts
   * with Redis's time. So a write ioredis resends after a reconnect, or one
   * stuck behind a slow Redis, is not applied after its caller heard it failed.
   */
  async write (what: string, script: Script, keys: readonly string[], args: ScriptArgs, options: WriteOptions = {}): Promise<unknown[]> {
    const deadline = this.clock.deadline(this.timeoutMs)
    return await this.call(what, async () => await this.clock.run(this.client, script, keys, [deadline, ...argsOf(args)]),
      { deadline, grace: options.grace === true })
  }

  /**
   * One command (`send`) on the user's client, bounded. close() ends the
   * wait for the connection (the command is never sent) and for a read's
   * reply, never for a write's: the client is the user's and stays open,
   * so the write's reply (or the client's own failure, "not confirmed")
   * still tells whether Redis applied it.
   */
  async call<T> (what: string, send: () => Promise<T>, write?: Write): Promise<T> {
    if (this.#closed) throw this.#closedError()
    const client = this.client
    const started = Date.now()
    const refused = write === undefined ? 'failed' : 'not accepted'
    if (client.status !== 'ready') {
      if (client.status === 'end') throw this.unavailable(`${what} ${refused}: the ioredis client was closed (quit or disconnect)`)
      if (client.status === 'wait') client.connect().catch(noop)
      await this.#within(this.#connected(), this.timeoutMs, () => this.unavailable(
        `${what} ${refused}: connection is ${client.status} (waited ${this.timeoutMs} ms)`), undefined, true)
    }
    if (this.#closed) throw this.#closedError()
    const left = Math.max(1, this.timeoutMs - (Date.now() - started))
    let reply: Promise<T>
    try {
      reply = send()
    } catch (err) {
      reply = Promise.reject(err)
    }
    let grace = write?.grace === true ? this.timeoutMs : 0
    let waited = this.timeoutMs
    const extend = (): number => {
      if (client.status !== 'ready') return 0
      const more = grace
      grace = 0
      waited += more
      return more
    }
    return await this.#within(reply.catch((err: unknown) => { throw this.#failure(what, err, write) }), left, () => write === undefined
      ? this.unavailable(`${what}: no reply within ${this.timeoutMs} ms`)
      : this.unavailable(`${what} not confirmed within ${waited} ms (no reply); it was applied only if Redis ran it ${write.deadline > 0
        ? 'before its deadline'
        : 'at all (Redis\'s clock was not known yet, so it carried no deadline)'}`), extend, write === undefined)
  }

  /** Ends every wait that close() cuts short; calls from now on reject with the closed error. */
  close (): void {
    this.#closed = true
    for (const cancel of [...this.#pending]) cancel()
  }

  /** What a command's own failure means for its caller. */
  #failure (what: string, err: unknown, write: Write | undefined): Error {
    if (err instanceof Error && err.message.startsWith('EXPIRED ')) return this.unavailable(`${what} not accepted: ${err.message.slice(8)}`, err)
    // An error reply from Redis itself (script error, wrong key type): not an outage.
    if (err instanceof Error && err.name === 'ReplyError') return new SseRedisError(`${this.#owner}: ${what} failed: ${err.message}`, { cause: err })
    if (write !== undefined) return this.unavailable(`${what} not confirmed: ${describe(err)}; it was applied only if Redis ran it before the connection failed`, err)
    return this.unavailable(`${what}: ${describe(err)}`, err)
  }

  /** Resolves when the client is ready: one 'ready' listener however many calls wait. */
  #connected (): Promise<void> {
    this.#ready ??= new Promise<void>(resolve => {
      const done = (): void => {
        this.client.off('ready', done)
        this.#pending.delete(done)
        this.#ready = undefined
        resolve()
      }
      this.client.once('ready', done)
      this.#pending.add(done)
    })
    return this.#ready
  }

  /**
   * `promise`, or `error()` after `ms` (unless `extend()` grants more time),
   * or (`onClose`) the closed error when close() comes first.
   */
  #within<T> (promise: Promise<T>, ms: number, error: () => Error, extend?: () => number, onClose = false): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const settle = (): boolean => {
        if (timer === undefined) return false
        clearTimeout(timer)
        timer = undefined
        this.#pending.delete(closed)
        return true
      }
      const closed = (): void => { if (settle()) reject(this.#closedError()) }
      const expire = (): void => {
        const more = extend?.() ?? 0
        if (more > 0 && timer !== undefined) timer = setTimeout(expire, more)
        else if (settle()) reject(error())
      }
      let timer: NodeJS.Timeout | undefined = setTimeout(expire, ms)
      if (onClose) this.#pending.add(closed)
      promise.then(value => { if (settle()) resolve(value) }, (err: unknown) => { if (settle()) reject(err) })
    })
  }
}
