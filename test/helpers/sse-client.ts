/**
 * A real SSE client over node:http (one connection per request, no agent
 * pooling, so an aborted read never leaves a spare keep-alive socket behind).
 * Keeps the raw bytes and the parsed events (eventsource-parser).
 */
import http, { type IncomingHttpHeaders } from 'node:http'
import { createParser, type EventSourceMessage } from 'eventsource-parser'

export interface SseClient {
  status: number
  headers: IncomingHttpHeaders
  events: EventSourceMessage[]
  comments: string[]
  retries: number[]
  raw: () => string
  rawBytes: () => number
  ended: Promise<void>
  isEnded: () => boolean
  /** Resolves once `n` events arrived (rejects after timeoutMs). */
  waitFor: (n: number, timeoutMs?: number) => Promise<EventSourceMessage[]>
  waitUntil: (predicate: () => boolean, timeoutMs?: number) => Promise<void>
  pause: () => void
  resume: () => void
  close: () => void
  socket: import('node:net').Socket
  body: () => string
}

export interface ConnectOptions {
  headers?: Record<string, string>
  /** Don't read at all (a client that stops reading). */
  paused?: boolean
}

export async function waitUntil (predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

/** Polls an async condition (a store read, an HTTP request) until it holds. */
export async function until (what: string, check: () => Promise<boolean>, timeoutMs = 5000, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, everyMs))
  }
}

/** Retries `attempt` until it resolves (e.g. a publish while Redis comes back); throws its last error after `tries`. */
export async function eventually<T> (what: string, attempt: () => Promise<T>, tries = 100, everyMs = 100): Promise<T> {
  let last: unknown
  for (let i = 0; i < tries; i++) {
    try {
      return await attempt()
    } catch (err) {
      last = err
      await new Promise(resolve => setTimeout(resolve, everyMs))
    }
  }
  throw new Error(`${what}: still failing: ${String(last)}`)
}

export function connect (url: string, options: ConnectOptions = {}): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers: { accept: 'text/event-stream', ...options.headers } }, res => {
      const chunks: Buffer[] = []
      let bytes = 0
      let ended = false
      const events: EventSourceMessage[] = []
      const comments: string[] = []
      const retries: number[] = []
      const parser = createParser({
        onEvent: e => events.push(e),
        onComment: c => comments.push(c),
        onRetry: r => retries.push(r)
      })
      const decoder = new TextDecoder()
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk)
        bytes += chunk.length
        parser.feed(decoder.decode(chunk, { stream: true }))
      })
      const endedPromise = new Promise<void>(resolve => {
        const done = (): void => { ended = true; resolve() }
        res.on('end', done)
        res.on('close', done)
        res.on('error', done)
      })
      if (options.paused === true) res.pause()
      const client: SseClient = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        events,
        comments,
        retries,
        raw: () => Buffer.concat(chunks).toString('utf8'),
        body: () => Buffer.concat(chunks).toString('utf8'),
        rawBytes: () => bytes,
        ended: endedPromise,
        isEnded: () => ended,
        waitFor: async (n, timeoutMs = 5000) => {
          await waitUntil(() => events.length >= n || (ended && events.length < n), timeoutMs, `${n} events (have ${events.length})`)
          if (events.length < n) throw new Error(`stream ended with ${events.length} of ${n} events`)
          return events
        },
        waitUntil: (predicate, timeoutMs) => waitUntil(predicate, timeoutMs),
        pause: () => { res.pause() },
        resume: () => { res.resume() },
        close: () => { req.destroy(); res.destroy() },
        socket: res.socket
      }
      resolve(client)
    })
    req.on('error', reject)
  })
}

/** Plain request (not SSE), fully read. */
export function request (url: string, init: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<{ status: number, headers: IncomingHttpHeaders, body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: init.method ?? 'GET', agent: false, headers: init.headers }, res => {
      const chunks: Buffer[] = []
      res.on('data', c => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(init.body)
  })
}
