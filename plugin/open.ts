/**
 * `reply.sse()`: turns a Fastify reply into an SseStream. Checks run before
 * the first byte (so a refusal is an ordinary error reply), then the head is
 * written with the route's own headers kept.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { connectionFor, isHttp2Response } from './connection.js'
import { encodeRetry, sanitizeLastEventId } from './encode.js'
import { topicsProblem, type SseHub } from './hub.js'
import { SseStream, type SseEvent, type StreamContext } from './stream.js'

/** An iterable of events, or a function of the stream's abort signal returning one. */
export type SseSource =
  | AsyncIterable<SseEvent>
  | Iterable<SseEvent>
  | ((signal: AbortSignal) => AsyncIterable<SseEvent> | Iterable<SseEvent>)

export interface SseTopicsOptions {
  /** Hub topics this connection receives (at most 32; see TOPIC_PATTERN). */
  topics: readonly string[]
}

export type Authorize = (request: FastifyRequest, topics: readonly string[]) => boolean | Promise<boolean>

/** An error reply produced before the stream starts (400, 403, 503). */
export class SseRefusedError extends Error {
  constructor (readonly statusCode: number, message: string) {
    super(message)
    this.name = 'SseRefusedError'
  }
}

export interface OpenContext extends StreamContext {
  readonly hub: SseHub
  readonly authorize: Authorize | undefined
  readonly maxConnections: number
  readonly maxConnectionsPerIp: number
  readonly perIp: Map<string, number>
  readonly shuttingDown: () => boolean
}

// Hop-by-hop and framing headers: ours to decide, and illegal under HTTP/2.
const DROP = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'proxy-connection'])

function queryParam (url: string, name: string): string | undefined {
  const q = url.indexOf('?')
  if (q < 0) return undefined
  return new URLSearchParams(url.slice(q + 1)).get(name) ?? undefined
}

function lastEventIdOf (request: FastifyRequest): string | undefined {
  return sanitizeLastEventId(request.headers['last-event-id']) ??
    sanitizeLastEventId(queryParam(request.url, 'lastEventId'))
}

function refuse (reply: FastifyReply, statusCode: number, message: string, retryAfter?: number): never {
  if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter))
  throw new SseRefusedError(statusCode, message)
}

function writeHead (reply: FastifyReply): void {
  const raw = reply.raw
  const headers: Record<string, string | number | string[]> = {}
  for (const [name, value] of Object.entries(reply.getHeaders())) {
    if (value !== undefined && !DROP.has(name)) headers[name] = value as string | number | string[]
  }
  headers['content-type'] = 'text/event-stream; charset=utf-8'
  headers['cache-control'] = 'no-cache'
  headers['x-accel-buffering'] = 'no'
  reply.hijack()
  raw.writeHead(200, headers)
  if (!isHttp2Response(raw)) raw.flushHeaders()
}

/**
 * Runs Fastify's own end-of-response step (onResponse hooks, the "request
 * completed" log) for a response that closed without 'finish'. Fastify
 * listens for 'finish' with a function named `onResFinished`; calling it is
 * what 'finish' would have done. If a Fastify version names it otherwise,
 * nothing happens and the 'sse stream closed' log still records the end.
 */
function completeRequest (reply: FastifyReply): void {
  const raw = reply.raw as unknown as { listeners (event: 'finish'): Array<(err?: unknown) => void> }
  for (const listener of raw.listeners('finish')) {
    if (listener.name === 'onResFinished') listener()
  }
}

function isSource (value: unknown): value is SseSource {
  return typeof value === 'function' ||
    (value !== null && typeof value === 'object' && (Symbol.asyncIterator in value || Symbol.iterator in value))
}

export function openStream (reply: FastifyReply, ctx: OpenContext, arg?: SseSource | SseTopicsOptions): SseStream {
  if (reply.sent || reply.raw.headersSent) throw new Error('reply.sse(): the reply was already sent')
  let topics: readonly string[] | undefined
  if (arg !== undefined && !isSource(arg)) {
    if (arg === null || typeof arg !== 'object' || !('topics' in arg)) {
      throw new TypeError('reply.sse(arg): arg must be an iterable of events, a function returning one, or { topics }')
    }
    const problem = topicsProblem(arg.topics)
    if (problem !== undefined) refuse(reply, 400, problem)
    topics = [...new Set(arg.topics)]
  }
  if (ctx.shuttingDown()) refuse(reply, 503, 'server is shutting down', 1)
  if (ctx.open.size >= ctx.maxConnections) refuse(reply, 503, 'too many SSE connections', 5)
  const ip = reply.request.ip
  const fromIp = ctx.perIp.get(ip) ?? 0
  if (fromIp >= ctx.maxConnectionsPerIp) refuse(reply, 503, 'too many SSE connections from this address', 5)

  const stream = new SseStream(ctx, lastEventIdOf(reply.request))
  const countIp = ctx.maxConnectionsPerIp !== Infinity
  if (countIp) ctx.perIp.set(ip, fromIp + 1)
  stream.onClose(reason => {
    if (countIp) {
      const n = (ctx.perIp.get(ip) ?? 1) - 1
      if (n === 0) ctx.perIp.delete(ip)
      else ctx.perIp.set(ip, n)
    }
    // Fastify logs "request completed" and runs onResponse when the response
    // finishes; a stream the client dropped (or that was evicted) never
    // finishes, so say why here and let Fastify complete the request.
    if (reason === 'client' || reason === 'slow') {
      reply.log.info({ reason, responseTime: reply.elapsedTime }, 'sse stream closed')
      completeRequest(reply)
    }
  })

  const start = (): void => {
    writeHead(reply)
    reply.raw.once('close', () => stream.disconnected())
    stream.control(encodeRetry(ctx.jitteredRetry()))
    stream.attach(connectionFor(reply.raw))
    if (topics !== undefined) void ctx.hub.subscribe(stream, topics, stream.lastEventId)
    else if (arg !== undefined) void stream.pump(typeof arg === 'function' ? arg(stream.signal) : arg as Exclude<SseSource, Function>)
  }

  if (topics === undefined || ctx.authorize === undefined) {
    start()
    return stream
  }
  const verdict = authorizeSafely(ctx.authorize, reply.request, topics)
  if (verdict === true) {
    start()
  } else if (verdict === false) {
    stream.abandon()
    refuse(reply, 403, 'not authorized for these topics')
  } else {
    verdict.then(ok => {
      if (ok && !stream.closed && !reply.request.raw.destroyed) return start()
      stream.abandon(reply.raw)
      if (!reply.sent) reply.code(403).send(new SseRefusedError(403, ok ? 'stream closed before it started' : 'not authorized for these topics'))
    }).catch((err: unknown) => {
      // The client may have gone while authorize ran: nothing to answer, nothing to crash.
      reply.log.warn({ err }, 'sse: could not start the stream after authorize')
      stream.abandon()
      if (!reply.raw.destroyed) reply.raw.destroy()
    })
  }
  return stream
}

function authorizeSafely (authorize: Authorize, request: FastifyRequest, topics: readonly string[]): boolean | Promise<boolean> {
  try {
    const result = authorize(request, topics)
    if (typeof result === 'boolean') return result
    return Promise.resolve(result).then(ok => ok === true, (err: unknown) => {
      request.log.error({ err }, 'sse: authorize threw; refusing')
      return false
    })
  } catch (err) {
    request.log.error({ err }, 'sse: authorize threw; refusing')
    return false
  }
}
