/**
 * Event → bytes. The only place that knows the text/event-stream grammar
 * (WHATWG HTML § server-sent events). Everything downstream handles opaque
 * pre-encoded frames, so one event is validated and encoded exactly once.
 */

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
 * bytes, is written to every subscriber. `chunked` caches the HTTP/1.1
 * chunked-transfer framing of `bytes`, built once by the first socket that needs it.
 */
export class Frame {
  chunked: Buffer | undefined = undefined
  constructor (readonly bytes: Buffer) {}
}

const LINE_BREAK = /\r\n|\r|\n/
const HAS_BREAK = /[\r\n]/
const HAS_BREAK_OR_NUL = /[\r\n\0]/

/** Throws a TypeError naming the field when `event` could break the framing. */
export function assertEventName (event: string): void {
  if (typeof event !== 'string') throw new TypeError(`SSE field "event" must be a string, got ${typeof event}`)
  if (HAS_BREAK.test(event)) throw new TypeError('SSE field "event" must not contain CR or LF')
}

/** Throws a TypeError naming the field when `id` could break the framing or be ignored by browsers. */
export function assertEventId (id: string): void {
  if (typeof id !== 'string') throw new TypeError(`SSE field "id" must be a string, got ${typeof id}`)
  if (HAS_BREAK_OR_NUL.test(id)) throw new TypeError('SSE field "id" must not contain CR, LF or NUL')
}

export function assertRetry (retry: number): void {
  if (!Number.isSafeInteger(retry) || retry < 0) {
    throw new TypeError(`SSE field "retry" must be a non-negative integer, got ${String(retry)}`)
  }
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
  if (typeof ev.data !== 'string') throw new TypeError(`SSE data must be a string, got ${typeof ev.data}`)
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

/**
 * The `data` of an encoded single event, read back from its bytes (line ends
 * come back as LF, as a browser would see them). Lets a history store keep
 * only the encoded frame instead of the frame and the string.
 */
export function decodeData (frame: Frame): string {
  const text = frame.bytes.toString('utf8')
  let data: string | undefined
  let start = 0
  while (start < text.length) {
    const end = text.indexOf('\n', start)
    if (end <= start) break // the blank line that ends the event
    if (text.startsWith('data: ', start)) {
      const line = text.slice(start + 6, end)
      data = data === undefined ? line : data + '\n' + line
    }
    start = end + 1
  }
  return data ?? ''
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
