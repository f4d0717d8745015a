/**
 * Event → bytes. The only place that knows the text/event-stream grammar
 * (WHATWG HTML § server-sent events). Everything downstream handles opaque
 * pre-encoded frames, so one event is validated and encoded exactly once.
 */
import { SseInvalidEventError } from './errors.js'

/** One server-sent event, after rendering: `data` is already a string. */
export interface EncodableEvent {
  /** `event:` field; absent means the browser's default `message`. */
  event?: string | undefined
  /** `id:` field; becomes the client's Last-Event-ID. */
  id?: string | undefined
  /** Reconnection delay hint in milliseconds. */
  retry?: number | undefined
  data: string
}

/**
 * A pre-encoded event (or a batch of them). The same instance, and so the same
 * bytes, is written to every subscriber.
 */
export class Frame {
  #bytes: Buffer
  #chunked: Buffer | undefined = undefined

  constructor (bytes: Buffer) {
    this.#bytes = bytes
  }

  /** The event stream bytes. */
  get bytes (): Buffer {
    return this.#bytes
  }

  /**
   * The HTTP/1.1 chunked-transfer framing of `bytes`, built once by the
   * first socket that needs it. `bytes` then becomes a view into it, so a
   * frame kept in history holds one copy of its bytes, not two.
   */
  get chunked (): Buffer {
    if (this.#chunked === undefined) {
      const size = this.#bytes.length
      const head = size.toString(16) + '\r\n'
      const framed = Buffer.allocUnsafe(head.length + size + 2)
      framed.write(head, 0, 'latin1')
      this.#bytes.copy(framed, head.length)
      framed.write('\r\n', head.length + size, 'latin1')
      this.#chunked = framed
      this.#bytes = framed.subarray(head.length, head.length + size)
    }
    return this.#chunked
  }
}

const LINE_BREAK = /\r\n|\r|\n/
const HAS_BREAK = /[\r\n]/
const HAS_BREAK_OR_NUL = /[\r\n\0]/
// htmx splits `sse-swap`/`sse-close` on commas and trims whitespace, so a name
// with either can never be routed; CR/LF would break the framing.
const BAD_EVENT_NAME = /[\s,]/

/** Why `event` cannot be an event name, or undefined when it can. The one rule, shared with the views. */
export function eventNameProblem (event: unknown): string | undefined {
  if (typeof event !== 'string') return `must be a string, got ${typeof event}`
  if (event.length === 0) return 'must not be empty (omit it for the default "message")'
  if (HAS_BREAK.test(event)) return 'must not contain CR or LF'
  if (BAD_EVENT_NAME.test(event)) return `${JSON.stringify(event.slice(0, 64))} must not contain commas or whitespace (htmx could not route it)`
  return undefined
}

/** Throws a TypeError (code HTMX_SSE_INVALID_EVENT) naming the field when `event` cannot be sent. */
export function assertEventName (event: unknown): asserts event is string {
  const problem = eventNameProblem(event)
  if (problem !== undefined) throw new SseInvalidEventError(`SSE field "event" ${problem}`)
}

/** Throws a TypeError naming the field when `id` could break the framing or be ignored by browsers. */
export function assertEventId (id: unknown): asserts id is string {
  if (typeof id !== 'string') throw new SseInvalidEventError(`SSE field "id" must be a string, got ${typeof id}`)
  if (HAS_BREAK_OR_NUL.test(id)) throw new SseInvalidEventError('SSE field "id" must not contain CR, LF or NUL')
}

export function assertRetry (retry: unknown): asserts retry is number {
  if (!Number.isSafeInteger(retry) || (retry as number) < 0) {
    throw new SseInvalidEventError(`SSE field "retry" must be a non-negative integer, got ${typeof retry === 'number' ? String(retry) : typeof retry}`)
  }
}

/** An event's fields once validated: a copy, so later changes to the caller's object change nothing. */
export interface EventFields {
  readonly event: string | undefined
  readonly id: string | undefined
  readonly retry: number | undefined
}

const NO_FIELDS: EventFields = Object.freeze({ event: undefined, id: undefined, retry: undefined })

/**
 * Validates and copies the fields of an event (`send`, iterable items and
 * `publish` all come through here). `id: false` refuses an id: hub streams
 * and `publish` assign their own, and a user id would corrupt Last-Event-ID.
 */
export function validateFields (fields: unknown, options: { id: boolean, where: string }): EventFields {
  if (fields === undefined) return NO_FIELDS
  if (fields === null || typeof fields !== 'object') throw new SseInvalidEventError(`${options.where}: event fields must be an object { event?, id?, retry? }`)
  const { event, id, retry } = fields as Record<string, unknown>
  if (event !== undefined) assertEventName(event)
  if (id !== undefined) {
    if (!options.id) throw new SseInvalidEventError(`${options.where}: the hub assigns ids; remove "id"`)
    assertEventId(id)
  }
  if (retry !== undefined) assertRetry(retry)
  if (event === undefined && id === undefined && retry === undefined) return NO_FIELDS
  return { event: event as string | undefined, id: id as string | undefined, retry: retry as number | undefined }
}

/** Validates every field of an event; throws before anything is encoded. */
export function assertEvent (ev: Omit<EncodableEvent, 'data'>): void {
  if (ev.event !== undefined) assertEventName(ev.event)
  if (ev.id !== undefined) assertEventId(ev.id)
  if (ev.retry !== undefined) assertRetry(ev.retry)
}

/**
 * Encodes the event as text: every line of `data` (split on CRLF, CR or LF)
 * becomes its own `data:` line; the browser joins them back with LF.
 * The space after each colon is always written, so a value that itself
 * starts with a space keeps it (parsers strip exactly one).
 */
export function encodeEventText (ev: EncodableEvent): string {
  assertEvent(ev)
  if (typeof ev.data !== 'string') throw new SseInvalidEventError(`SSE data must render to a string, got ${ev.data === null ? 'null' : typeof ev.data}`)
  let out = ''
  if (ev.event !== undefined) out += `event: ${ev.event}\n`
  if (ev.id !== undefined) out += `id: ${ev.id}\n`
  if (ev.retry !== undefined) out += `retry: ${ev.retry}\n`
  if (HAS_BREAK.test(ev.data)) {
    for (const line of ev.data.split(LINE_BREAK)) out += `data: ${line}\n`
  } else {
    out += `data: ${ev.data}\n`
  }
  return out + '\n'
}

export function encodeEvent (ev: EncodableEvent): Frame {
  return new Frame(Buffer.from(encodeEventText(ev), 'utf8'))
}

/** A comment frame (`: text`), ignored by clients; each line of `text` stays a comment. */
export function encodeComment (text: string): Frame {
  let out = ''
  for (const line of String(text).split(LINE_BREAK)) out += `: ${line}\n`
  return new Frame(Buffer.from(out + '\n', 'utf8'))
}

/** A bare `retry:` frame, sent at stream start and again before a server shutdown. */
export function encodeRetry (ms: number): Frame {
  assertRetry(ms)
  return new Frame(Buffer.from(`retry: ${ms}\n\n`, 'latin1'))
}

/** Concatenates frames written to one socket in one tick into a single frame. */
export function joinFrames (frames: readonly Frame[]): Frame {
  if (frames.length === 1) return frames[0]!
  return new Frame(Buffer.concat(frames.map(f => f.bytes)))
}

const LAST_EVENT_ID_MAX = 256
// Printable ASCII only: anything else in an id we echo back in logs or
// compare against is more likely an attack than a real id.
const SAFE_ID = /^[\x20-\x7e]*$/

/**
 * Returns the client's Last-Event-ID if it is plausible, else undefined.
 * A hostile value (too long, control characters) is dropped, never echoed.
 */
export function sanitizeLastEventId (value: unknown): string | undefined {
  if (Array.isArray(value)) value = value[0]
  if (typeof value !== 'string' || value.length === 0) return undefined
  if (value.length > LAST_EVENT_ID_MAX || !SAFE_ID.test(value)) return undefined
  return value
}
