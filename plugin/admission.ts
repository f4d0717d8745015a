/**
 * Admission: who may open a stream. Connection limits (per instance and per
 * client IP), `authorize` with its time limit, and the registry of open
 * sessions live here, in one place. A session holds its slot from the moment
 * it is admitted until it closes, however it closes; a request that is still
 * waiting for `authorize` holds one too, and gives it back when its client leaves.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { SseAuthorizeTimeoutError, SseForbiddenError, SseShuttingDownError, SseTooManyConnectionsError } from './errors.js'
import type { Session } from './session.js'

/** Decides whether a request may subscribe to hub topics; false (or a throw) is a 403 before any byte. */
export type Authorize = (request: FastifyRequest, topics: readonly string[], signal: AbortSignal) => boolean | Promise<boolean>

export interface AdmissionOptions {
  maxConnections: number
  maxConnectionsPerIp: number
  authorize: Authorize | undefined
  authorizeTimeoutMs: number
}

/** Seconds a refused client is asked to wait (Retry-After). */
const RETRY_AFTER_LIMIT = 5
const RETRY_AFTER_SHUTDOWN = 1

export class Admission {
  readonly #options: AdmissionOptions
  readonly #open = new Set<Session>()
  readonly #perIp = new Map<string, number>()
  readonly #countIp: boolean
  #shuttingDown = false

  constructor (options: AdmissionOptions) {
    this.#options = options
    this.#countIp = options.maxConnectionsPerIp !== Infinity
  }

  get hasAuthorize (): boolean {
    return this.#options.authorize !== undefined
  }

  /** Sessions holding a slot (open streams, and requests waiting for authorize). */
  get size (): number {
    return this.#open.size
  }

  /** Unsent bytes of every session holding a slot (read when metrics are scraped). */
  * backlogs (): Generator<number> {
    for (const session of this.#open) yield session.backlog
  }

  /**
   * Gives `session` a slot, or throws the refusal (503 with Retry-After set
   * on the reply). The slot is released when the session closes.
   */
  admit (reply: FastifyReply, session: Session): void {
    if (this.#shuttingDown) refuse(reply, new SseShuttingDownError(), RETRY_AFTER_SHUTDOWN)
    if (this.#open.size >= this.#options.maxConnections) refuse(reply, new SseTooManyConnectionsError('too many SSE connections'), RETRY_AFTER_LIMIT)
    const ip = reply.request.ip
    if (this.#countIp) {
      const n = this.#perIp.get(ip) ?? 0
      if (n >= this.#options.maxConnectionsPerIp) refuse(reply, new SseTooManyConnectionsError('too many SSE connections from this address'), RETRY_AFTER_LIMIT)
      this.#perIp.set(ip, n + 1)
    }
    this.#open.add(session)
    session.onClose(() => {
      this.#open.delete(session)
      if (this.#countIp) {
        const n = (this.#perIp.get(ip) ?? 1) - 1
        if (n === 0) this.#perIp.delete(ip)
        else this.#perIp.set(ip, n)
      }
    })
  }

  /**
   * Runs `authorize`: true/false at once when it answers synchronously, else a
   * promise that settles with its answer, or rejects with the timeout error
   * after `authorizeTimeoutMs` (Retry-After is set on the reply then). A throw
   * or rejection of `authorize` is logged and counts as a refusal.
   */
  authorize (reply: FastifyReply, topics: readonly string[], signal: AbortSignal): boolean | Promise<boolean> {
    const authorize = this.#options.authorize
    if (authorize === undefined) return true
    const request = reply.request
    let result: boolean | Promise<boolean>
    try {
      result = authorize(request, topics, signal)
    } catch (err) {
      request.log.error({ err }, 'sse: authorize threw; refusing')
      return false
    }
    if (typeof result === 'boolean') return result
    const timeoutMs = this.#options.authorizeTimeoutMs
    return new Promise<boolean>((resolve, reject) => {
      const timer = setTimeout(() => {
        reply.header('retry-after', String(RETRY_AFTER_LIMIT))
        reject(new SseAuthorizeTimeoutError(timeoutMs))
      }, timeoutMs)
      timer.unref()
      const stop = (): void => clearTimeout(timer)
      signal.addEventListener('abort', stop, { once: true })
      Promise.resolve(result).then(ok => {
        stop()
        resolve(ok === true)
      }, (err: unknown) => {
        stop()
        request.log.error({ err }, 'sse: authorize threw; refusing')
        resolve(false)
      })
    })
  }

  /** Stops admitting (app.close()) and returns every session that holds a slot. */
  shutdown (): Session[] {
    this.#shuttingDown = true
    return [...this.#open]
  }
}

/** The 403 for a refused `authorize`. */
export function forbidden (): Error {
  return new SseForbiddenError()
}

function refuse (reply: FastifyReply, err: Error, retryAfter: number): never {
  reply.header('retry-after', String(retryAfter))
  throw err
}
