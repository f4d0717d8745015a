/**
 * `sseTest(app).openStream(path)`: a real SSE client on a real socket (node:http, one
 * connection of its own, so closing it leaves nothing behind), for a
 * `reply.sse()` route or a live page. For a page, it does what the browser
 * does: GET the page, read the stream URL from its connect element (htmx 2
 * `sse-connect` or htmx 4 `hx-sse:connect`), and open that (an htmx 2 page
 * with the resume script's mark, which the stream route asks for).
 */
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { SseInvalidOptionError, SseTestStreamError } from '../errors.js'
import { RESUME_MARK } from '../resume.js'
import { elements } from './html.js'
import { Queue, type Match } from './queue.js'

/** One server-sent event as a client parsed it. */
export interface TestEvent {
  /** Its `id:` field (the hub's id on hub streams), or undefined when it had none. */
  id: string | undefined
  /** Its event name; `message` when it had none (as EventSource names it). */
  event: string
  /** Its data, lines joined with LF: for a fragment, the HTML. */
  data: string
}

export interface OpenStreamOptions {
  /** Default GET. A POST that answers with a stream (htmx 4 forms) works too. */
  method?: string
  /** Request headers (cookies, auth); sent to the page and to its stream. */
  headers?: Record<string, string>
  body?: string
  /** Sent as `Last-Event-ID`, as a reconnecting client does. */
  lastEventId?: string
  /** How long `next()` and each step of `for await` wait for an event. Default 5 000. */
  timeoutMs?: number
}

export interface TestStream extends AsyncIterable<TestEvent> {
  /** The stream's path: the URL given, or the one the page's connect element carries. */
  readonly url: string
  /** The page's HTML when `url` was a live page, else undefined. */
  readonly page: string | undefined
  readonly status: number
  readonly headers: IncomingHttpHeaders
  /** Every event received so far. */
  readonly events: readonly TestEvent[]
  /** The last `retry:` hint received. */
  readonly retry: number | undefined
  /** True once the server ended the stream (or `close()` was called). */
  readonly ended: boolean
  /**
   * The first event matching `match` (`{ event, id, data }` or a predicate)
   * that neither `next()` nor `for await` returned yet, waiting up to
   * `timeoutMs` (default: the open option) for one; rejects with
   * `HTMX_SSE_TEST_TIMEOUT` when none comes, or the stream ended without one.
   */
  next (match?: Match<TestEvent>, timeoutMs?: number): Promise<TestEvent>
  /** Closes the connection (the server sees the client leave). */
  close (): void
}

/**
 * An incremental parser of the event stream format (WHATWG HTML): any line
 * ending, `data` lines joined with LF, comments skipped, an event without
 * data not dispatched.
 */
function sseParser (onEvent: (event: TestEvent) => void, onRetry: (ms: number) => void): (chunk: string) => void {
  let buffer = ''
  let first = true
  let data: string[] = []
  let event = ''
  let id: string | undefined
  const line = (text: string): void => {
    if (text === '') {
      if (data.length > 0) onEvent({ id, event: event === '' ? 'message' : event, data: data.join('\n') })
      data = []
      event = ''
      id = undefined
      return
    }
    if (text.startsWith(':')) return
    const colon = text.indexOf(':')
    const field = colon < 0 ? text : text.slice(0, colon)
    const value = colon < 0 ? '' : text.slice(colon + (text[colon + 1] === ' ' ? 2 : 1))
    if (field === 'data') data.push(value)
    else if (field === 'event') event = value
    else if (field === 'id' && !value.includes('\0')) id = value
    else if (field === 'retry' && /^\d+$/.test(value)) onRetry(Number(value))
  }
  // A CR ends a line at once; a LF right after it (maybe in the next chunk) is the rest of a CRLF.
  let afterCr = false
  return chunk => {
    buffer += chunk
    if (first && buffer.length > 0) {
      first = false
      if (buffer.charCodeAt(0) === 0xfeff) buffer = buffer.slice(1)
    }
    let start = 0
    if (afterCr && buffer[0] === '\n') start = 1
    afterCr = false
    for (let i = start; i < buffer.length; i++) {
      const c = buffer[i]
      if (c !== '\n' && c !== '\r') continue
      line(buffer.slice(start, i))
      if (c === '\r') {
        if (i + 1 === buffer.length) afterCr = true
        else if (buffer[i + 1] === '\n') i++
      }
      start = i + 1
    }
    buffer = buffer.slice(start)
  }
}

const listening = new WeakMap<FastifyInstance, Promise<unknown>>()

/** Where the app answers: its own address, or a loopback port 0 it is made to listen on. */
async function addressOf (app: FastifyInstance): Promise<{ host: string, port: number } | { socketPath: string }> {
  let address = app.server.address()
  if (address === null) {
    let started = listening.get(app)
    if (started === undefined) listening.set(app, started = app.listen({ host: '127.0.0.1', port: 0 }))
    await started
    address = app.server.address()
  }
  if (typeof address === 'string') return { socketPath: address }
  const { address: host, port } = address as AddressInfo
  const loopback = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host
  return { host: loopback, port }
}

function send (target: Awaited<ReturnType<typeof addressOf>>, path: string, method: string, headers: Record<string, string>, body: string | undefined): Promise<{ req: http.ClientRequest, res: IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ ...target, path, method, headers, agent: false }, res => resolve({ req, res }))
    req.on('error', reject)
    req.end(body)
  })
}

async function readBody (res: IncomingMessage, limit: number): Promise<string> {
  let text = ''
  res.setEncoding('utf8')
  for await (const chunk of res) {
    text += chunk as string
    if (text.length > limit) break
  }
  res.destroy()
  return text
}

/** The stream path a page's first connect element carries, with what its browser adds; undefined without one. */
function connectUrl (html: string): string | undefined {
  for (const element of elements(html)) {
    const htmx2 = element.attrs.get('sse-connect')
    const url = htmx2 ?? element.attrs.get('hx-sse:connect')
    if (url === undefined) continue
    if (htmx2 === undefined) return url
    // What the resume script (in live.scripts) adds to every URL it opens.
    const parsed = new URL(url, 'http://page.invalid')
    parsed.searchParams.set(RESUME_MARK, '1')
    return parsed.pathname + parsed.search
  }
  return undefined
}

/** Cookies the page set, for its stream request (a session the stream route checks). */
function cookiesOf (headers: IncomingHttpHeaders, given: string | undefined): string | undefined {
  const set = (headers['set-cookie'] ?? []).map(c => c.split(';')[0]!)
  const all = [...(given === undefined ? [] : [given]), ...set]
  return all.length === 0 ? undefined : all.join('; ')
}

/**
 * Opens `url` (a path, e.g. `/orders` or `/clock`) on `app` over a real
 * socket, listening on a loopback port first if the app is not listening
 * (`app.close()` closes it as usual). A `text/event-stream` answer is the
 * stream; a `text/html` answer is a live page, whose connect element's
 * stream is opened. Anything else rejects with `HTMX_SSE_TEST_STREAM`.
 */
export async function openStream (app: FastifyInstance, url: string, options: OpenStreamOptions = {}): Promise<TestStream> {
  if (typeof url !== 'string' || !url.startsWith('/')) throw new SseInvalidOptionError('path (openStream)', `must be a path starting with /, got ${JSON.stringify(url)}`)
  const timeoutMs = options.timeoutMs ?? 5000
  const target = await addressOf(app)
  const headers: Record<string, string> = { accept: 'text/event-stream, text/html;q=0.9', ...options.headers }
  if (options.lastEventId !== undefined) headers['last-event-id'] = options.lastEventId
  let { req, res } = await send(target, url, options.method ?? 'GET', headers, options.body)
  let path = url
  let page: string | undefined
  const type = (): string => String(res.headers['content-type'] ?? '')
  if (res.statusCode === 200 && type().startsWith('text/html')) {
    page = await readBody(res, 8 << 20)
    const stream = connectUrl(page)
    if (stream === undefined) throw new SseTestStreamError(`openStream(${url}): the page has no connect element (sse-connect or hx-sse:connect); did it render live.element?`)
    path = stream
    const cookie = cookiesOf(res.headers, headers.cookie)
    ;({ req, res } = await send(target, path, 'GET', { ...headers, accept: 'text/event-stream', ...(cookie === undefined ? {} : { cookie }) }, undefined))
  }
  if (res.statusCode !== 200 || !type().startsWith('text/event-stream')) {
    const body = await readBody(res, 500)
    throw new SseTestStreamError(`openStream(${path}): expected a 200 text/event-stream, got ${String(res.statusCode)} ${type() || 'without content-type'}: ${body.slice(0, 300)}`)
  }

  const queue = new Queue<TestEvent>()
  let retry: number | undefined
  let ended = false
  const feed = sseParser(event => queue.push(event), ms => { retry = ms })
  res.setEncoding('utf8')
  res.on('data', (chunk: string) => feed(chunk))
  const finish = (why: string) => (): void => {
    ended = true
    queue.end(why)
  }
  res.once('end', finish('the stream ended'))
  res.once('close', finish('the stream closed'))
  res.once('error', finish('the stream failed'))
  const where = `openStream(${url})`
  const next = async (match?: Match<TestEvent>, ms = timeoutMs): Promise<TestEvent> => await queue.next(match, ms, where)
  return {
    url: path,
    page,
    status: res.statusCode,
    headers: res.headers,
    events: queue.entries,
    get retry () { return retry },
    get ended () { return ended },
    next,
    close: () => {
      req.destroy()
      res.destroy()
    },
    [Symbol.asyncIterator]: () => ({
      // The stream's end ends the loop; a wait longer than timeoutMs throws.
      next: async () => {
        const value = await queue.take(undefined, timeoutMs, where, true)
        return value === undefined ? { done: true, value: undefined } : { done: false, value }
      }
    })
  }
}
