/**
 * `SseStream`, what `reply.sse()` returns: validated, ordered sends (async
 * data included), comments, close, and the signals of its end. Frames go to
 * its Session, which owns the connection.
 */
import type { FastifyBaseLogger } from 'fastify'
import { encodeComment, encodeEvent, type EventFields, validateFields } from './encode.js'
import { SseClosedError, SseEventTooLargeError, SseInvalidEventError } from './errors.js'
import { PULL_HIGH_WATER, type Session, type SseCloseReason } from './session.js'

/** What a route can send: a string, a JSX element (a string or a Promise of one, for async components). */
export type SseData = string | Promise<string>

/** The fields of an event besides its data. */
export interface SseEventFields {
  /** Event name. No CR/LF, commas or whitespace (htmx could not route it). Absent: the default `message`. */
  event?: string | undefined
  /** Event id (the client's Last-Event-ID). No CR/LF/NUL. Refused on hub streams and in `publish`: the hub assigns ids. */
  id?: string | undefined
  /** Reconnection delay hint, a non-negative integer of milliseconds. */
  retry?: number | undefined
}

/** One event: what `send()`, iterable sources and `sseHub.publish()` all take. */
export interface SseEvent extends SseEventFields {
  data: SseData
}

/** The `reason` of an aborted `stream.signal`, with why the stream ended. */
export type SseClosed = InstanceType<typeof SseClosedError> & { readonly reason: SseCloseReason }

export function closedError (reason: SseCloseReason): SseClosed {
  const err = new SseClosedError(reason) as SseClosed
  Object.defineProperty(err, 'reason', { value: reason, enumerable: true })
  return err
}

/** How `reply.sse()` and the iterable pump drive a stream's life (not part of the public API). */
export interface StreamControl {
  /** The stream passed admission and its head is written: awaiters get the stream. */
  admitted (): void
  /** The stream was refused before its first byte. Returns true if an awaiter took the error (else the caller must answer). */
  refused (err: Error): boolean
  /** Ends the stream after pending async renders (reason 'end' for a finished iterable). */
  end (reason: SseCloseReason): void
  /** Ends the stream with one `event: error` (the message is logged, not sent). */
  fail (err: unknown, where: 'render' | 'iterable'): void
}

/**
 * What `reply.sse()` returns: the stream, awaitable. Awaiting it (or
 * returning it from a handler) resolves with the stream itself as soon as it
 * is admitted: at once, unless `authorize` is async. If it is refused (403,
 * 503), the await rejects with that error, which Fastify answers as usual
 * when the handler returned it. Wait for the end with `stream.done`.
 */
export type AwaitableSseStream = SseStream & PromiseLike<SseStream>

type ThenFn = <T = SseStream, E = never>(
  onfulfilled?: ((stream: SseStream) => T | PromiseLike<T>) | null,
  onrejected?: ((error: unknown) => E | PromiseLike<E>) | null
) => Promise<T | E>

const RESOLVED_TRUE: Promise<boolean> = Promise.resolve(true)
const RESOLVED_FALSE: Promise<boolean> = Promise.resolve(false)
const noop = (): void => {}

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function'
}

export class SseStream {
  /** The client's Last-Event-ID (header or `lastEventId` query), if it was plausible. */
  readonly lastEventId: string | undefined
  /** Resolves, with the reason, once the stream has ended (never rejects). */
  readonly done: Promise<SseCloseReason>
  readonly #session: Session
  readonly #log: FastifyBaseLogger
  readonly #hub: boolean
  #controller: AbortController | undefined
  #renderTail: Promise<unknown> | null = null
  #closing = false
  #admission: 'pending' | 'admitted' | 'refused' = 'pending'
  #refusal: Error | undefined
  #awaited = false
  #awaiters: Array<{ resolve: (s: SseStream) => void, reject: (err: unknown) => void }> | null = null

  /** @internal Created by `reply.sse()`. */
  constructor (session: Session, log: FastifyBaseLogger, lastEventId: string | undefined, hub: boolean, bind: (control: StreamControl) => void) {
    this.#session = session
    this.#log = log
    this.lastEventId = lastEventId
    this.#hub = hub
    this.done = new Promise(resolve => session.onClose(reason => {
      this.#closing = false
      this.#controller?.abort(closedError(reason))
      resolve(reason)
    }))
    bind({
      admitted: () => this.#admitted(),
      refused: err => this.#refused(err),
      end: reason => this.#end(reason),
      fail: (err, where) => this.#fail(err, where)
    })
  }

  /** True once the stream has ended or is ending (close() waits for pending renders). */
  get closed (): boolean {
    return this.#session.closed || this.#closing
  }

  /** Why the stream ended, or undefined while it is open. */
  get closeReason (): SseCloseReason | undefined {
    return this.#session.closeReason
  }

  /** Aborted when the stream ends: client gone, close(), eviction, shutdown. `signal.reason.reason` says why. */
  get signal (): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController()
      const reason = this.#session.closeReason
      if (reason !== undefined) this.#controller.abort(closedError(reason))
    }
    return this.#controller.signal
  }

  /**
   * Sends one event: `send(data, fields?)` or `send({ data, event?, id?, retry? })`.
   * Invalid fields throw a TypeError at once (nothing is written). Async data
   * is awaited and events keep their order; data that does not render to a
   * string, or an event larger than `maxBufferedBytes`, rejects that send only.
   * Resolves true once handed to the connection and the connection has room
   * for more (so `await send()` in a loop is backpressured), false if the
   * stream closed first.
   */
  send (event: SseEvent): Promise<boolean>
  send (data: SseData, fields?: SseEventFields): Promise<boolean>
  send (dataOrEvent: SseData | SseEvent, fields?: SseEventFields): Promise<boolean> {
    let data: unknown = dataOrEvent
    let given: unknown = fields
    if (dataOrEvent !== null && typeof dataOrEvent === 'object' && !isThenable(dataOrEvent)) {
      if (fields !== undefined) throw new SseInvalidEventError('send(event): pass the fields inside the event, not as a second argument')
      data = (dataOrEvent as SseEvent).data
      given = dataOrEvent
    }
    const copy = validateFields(given, { id: !this.#hub, where: this.#hub ? 'send() on a hub stream' : 'send()' })
    if (typeof data !== 'string' && !isThenable(data)) {
      throw new SseInvalidEventError(`SSE data must be a string, a JSX element or a Promise of one, got ${data === null ? 'null' : typeof data}`)
    }
    if (this.closed) return RESOLVED_FALSE
    if (typeof data === 'string' && this.#renderTail === null) {
      const err = this.#enqueue(copy, data)
      if (err !== undefined) return Promise.reject(err)
      // Backpressure for producers that await: resolve once the socket has room.
      if (this.#session.backlog > PULL_HIGH_WATER) return this.#session.writable().then(() => !this.#session.closed)
      return RESOLVED_TRUE
    }
    const previous = this.#renderTail ?? RESOLVED_TRUE
    const sent = previous.then(() => data).then(async (html) => {
      if (this.#session.closed) return false
      const err = this.#enqueue(copy, html)
      if (err !== undefined) throw err
      if (this.#session.backlog > PULL_HIGH_WATER) await this.#session.writable()
      return !this.#session.closed
    })
    // A render that rejects fails the stream; an event refused for its data (not a string, too large) fails only its send.
    const tail = sent.then(noop, (err: unknown) => {
      if (!(err instanceof SseInvalidEventError) && !(err instanceof SseEventTooLargeError)) this.#fail(err, 'render')
    })
    this.#renderTail = tail
    void tail.then(() => { if (this.#renderTail === tail) this.#renderTail = null })
    sent.catch(noop) // the caller may not await; a render failure is handled by #fail
    return sent
  }

  /** Writes an SSE comment (ignored by clients). */
  comment (text: string): void {
    if (this.closed) return
    this.#session.enqueue(encodeComment(text), -1, false)
  }

  /** Ends the stream after everything already sent (including pending async renders). */
  close (): void {
    this.#end('server')
  }

  // `then` is defined on the prototype below, outside the class's type: the
  // type of a stream has no `then`, so `await stream` and an async handler
  // returning one type-check as the stream itself (see AwaitableSseStream).
  static {
    Object.defineProperty(SseStream.prototype, 'then', {
      configurable: true,
      get (this: SseStream): ThenFn | undefined {
        // Once admitted and awaited, the stream is a plain value: resolving a
        // promise with it must not call then() again.
        if (this.#admission === 'admitted' && this.#awaited) return undefined
        return this.#then
      }
    })
  }

  readonly #then: ThenFn = (onfulfilled, onrejected) => {
    this.#awaited = true
    const settled = new Promise<SseStream>((resolve, reject) => {
      if (this.#admission === 'admitted') resolve(this)
      else if (this.#admission === 'refused') reject(this.#refusal)
      else (this.#awaiters ??= []).push({ resolve, reject })
    })
    return settled.then(onfulfilled, onrejected) as Promise<never>
  }

  #admitted (): void {
    this.#admission = 'admitted'
    const awaiters = this.#awaiters
    this.#awaiters = null
    if (awaiters !== null) for (const a of awaiters) a.resolve(this)
  }

  #refused (err: Error): boolean {
    this.#admission = 'refused'
    this.#refusal = err
    this.#session.drop('refused')
    const awaiters = this.#awaiters
    this.#awaiters = null
    if (awaiters === null) return false
    for (const a of awaiters) a.reject(err)
    return true
  }

  /** Encodes and queues one event; returns the error instead when it cannot be sent. */
  #enqueue (fields: EventFields, data: unknown): Error | undefined {
    if (typeof data !== 'string') return new SseInvalidEventError(`SSE data must render to a string, got ${data === null ? 'null' : typeof data}`)
    const frame = encodeEvent({ event: fields.event, id: fields.id, retry: fields.retry, data })
    const max = this.#session.maxBufferedBytes
    if (frame.bytes.length > max) return new SseEventTooLargeError(frame.bytes.length, max)
    this.#session.enqueue(frame)
    return undefined
  }

  #end (reason: SseCloseReason): void {
    if (this.closed) return
    if (this.#renderTail !== null) {
      this.#closing = true
      void this.#renderTail.then(() => this.#session.end(reason))
      return
    }
    this.#session.end(reason)
  }

  #fail (err: unknown, where: 'render' | 'iterable'): void {
    if (this.#session.closed) return
    this.#log.error({ err }, `sse: ${where} failed, ending stream`)
    this.#renderTail = null
    this.#session.enqueue(encodeEvent({ event: 'error', data: 'stream failed' }))
    this.#session.end('error')
  }
}
