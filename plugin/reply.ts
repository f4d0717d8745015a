/**
 * `reply.sse()`: turns a Fastify reply into an SseStream. Admission runs
 * before the first byte (so a refusal is an ordinary error reply), then the
 * head is written with the route's own headers kept, and the stream is fed
 * by the caller, an iterable, or the hub.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { type Admission, forbidden } from './admission.js'
import { connectionFor, isHttp2Response, onClientGone } from './connection.js'
import { encodeRetry, sanitizeLastEventId } from './encode.js'
import { SseAlreadySentError, SseInvalidSourceError, SseInvalidTopicsError, SseShuttingDownError } from './errors.js'
import { topicsProblem, type SseHub } from './hub.js'
import { pump } from './pump.js'
import { Session, type SessionContext } from './session.js'
import { SseStream, type AwaitableSseStream, type SseEvent, type StreamControl } from './stream.js'

/** An iterable of events, or a function of the stream's abort signal returning one. */
export type SseSource =
  | AsyncIterable<SseEvent>
  | Iterable<SseEvent>
  | ((signal: AbortSignal) => AsyncIterable<SseEvent> | Iterable<SseEvent>)

export interface SseTopicsOptions {
  /** Hub topics this connection receives (at most 32; see TOPIC_PATTERN). */
  topics: readonly string[]
  /**
   * Where to resume when the request carries no Last-Event-ID (header or
   * `?lastEventId=`): e.g. the hub's head read before a run started, so a
   * POST that answers with the run's stream (htmx 4) misses none of its events.
   * The request's own value wins: it is the client's newer position.
   */
  lastEventId?: string
}

export interface ReplyContext extends SessionContext {
  readonly hub: SseHub
  readonly admission: Admission
  /** Warns once if Fastify's end-of-response listener cannot be found. */
  readonly completion: { warned: boolean }
  /** With `maxStreamAgeMs`: a jittered age for a new hub stream. */
  readonly streamAge: (() => number) | undefined
}

// Hop-by-hop and framing headers: ours to decide, and illegal under HTTP/2.
const DROP = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'proxy-connection'])

function queryParam (url: string, name: string): string | undefined {
  const q = url.indexOf('?')
  if (q < 0) return undefined
  return new URLSearchParams(url.slice(q + 1)).get(name) ?? undefined
}

/** Last-Event-ID: the header wins (EventSource and htmx 4 reconnects), else `?lastEventId=` (first connects, htmx 2 reconnects). */
function lastEventIdOf (request: FastifyRequest): string | undefined {
  return sanitizeLastEventId(request.headers['last-event-id']) ??
    sanitizeLastEventId(queryParam(request.url, 'lastEventId'))
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

/** Fastify's own listener for the response's 'finish': it runs onResponse hooks and logs "request completed". */
export const FASTIFY_FINISH_LISTENER = 'onResFinished'

/**
 * Runs Fastify's end-of-response step for a response that closed without
 * 'finish' (the client left, or it was evicted). Fastify offers no public
 * way to do this for a hijacked reply; its 'finish' listener is found by its
 * function name. test/plugin-lifecycle.test.ts fails if a Fastify version
 * renames it, and the plugin warns once at run time.
 */
function completeRequest (reply: FastifyReply, ctx: ReplyContext): void {
  const raw = reply.raw as unknown as { listeners (event: 'finish'): Array<(err?: unknown) => void> }
  const listener = raw.listeners('finish').find(fn => fn.name === FASTIFY_FINISH_LISTENER)
  if (listener !== undefined) {
    listener()
    return
  }
  if (!ctx.completion.warned) {
    ctx.completion.warned = true
    reply.log.warn('sse: Fastify\'s finish listener was not found; onResponse hooks will not run for streams the client dropped')
  }
}

/**
 * Ends a hub stream once it is `ageMs` old. Its client resumes from its
 * Last-Event-ID wherever it reconnects, so this loses nothing; closing the
 * connection too lets a load balancer place the reconnect on any instance.
 */
function endWhenOld (session: Session, ageMs: number): void {
  const timer = setTimeout(() => session.shutdown('rebalance'), ageMs)
  timer.unref()
  session.onClose(() => clearTimeout(timer))
}

function isSource (value: unknown): value is SseSource {
  return typeof value === 'function' ||
    (value !== null && typeof value === 'object' && (Symbol.asyncIterator in value || Symbol.iterator in value))
}

function isTopics (arg: unknown): arg is SseTopicsOptions {
  return arg !== null && typeof arg === 'object' && 'topics' in arg
}

export function topicsOf (arg: unknown): readonly string[] {
  if (arg === null || typeof arg !== 'object' || !('topics' in arg)) {
    throw new SseInvalidSourceError('arg must be an iterable of events, a function returning one, or { topics }')
  }
  const topics = (arg as SseTopicsOptions).topics
  const problem = topicsProblem(topics)
  if (problem !== undefined) throw new SseInvalidTopicsError(problem)
  return [...new Set(topics)]
}

/**
 * @param signed the topics come from a live page's verified token: the
 *   signature already authorized them, `authorize` is not asked.
 */
export function openStream (reply: FastifyReply, ctx: ReplyContext, arg?: SseSource | SseTopicsOptions, signed = false): AwaitableSseStream {
  if (reply.sent || reply.raw.headersSent) throw new SseAlreadySentError()
  const topics = arg === undefined || isSource(arg) ? undefined : topicsOf(arg)
  const session = new Session(ctx)
  ctx.admission.admit(reply, session) // throws the 503s
  const request = reply.request
  let control!: StreamControl
  const fallbackId = topics !== undefined && isTopics(arg) ? sanitizeLastEventId(arg.lastEventId) : undefined
  const stream = new SseStream(session, reply.log, lastEventIdOf(request) ?? fallbackId, topics !== undefined, c => { control = c })

  let started = false
  const stopWatching = onClientGone(reply.raw, request.raw.socket, () => session.drop('client'))
  session.onClose(reason => {
    stopWatching()
    // Fastify logs "request completed" and runs onResponse when the response
    // finishes; a stream the client dropped (or that was evicted) never
    // finishes, so say why here and let Fastify complete the request.
    if (started && (reason === 'client' || reason === 'slow')) {
      reply.log.info({ reason, responseTime: reply.elapsedTime }, 'sse stream closed')
      completeRequest(reply, ctx)
    }
  })

  const start = (): void => {
    started = true
    writeHead(reply)
    session.enqueue(encodeRetry(ctx.jitteredRetry()), -1, false)
    session.attach(connectionFor(reply.raw))
    control.admitted()
    if (topics !== undefined) {
      void ctx.hub.subscribe(session, topics, stream.lastEventId)
      if (ctx.streamAge !== undefined) endWhenOld(session, ctx.streamAge())
    } else if (arg !== undefined) void pump(stream, session, control, typeof arg === 'function' ? arg(stream.signal) : arg as Exclude<SseSource, Function>)
  }

  const awaitable = stream as AwaitableSseStream
  if (topics === undefined || signed || !ctx.admission.hasAuthorize) {
    start()
    return awaitable
  }
  const verdict = ctx.admission.authorize(reply, topics, stream.signal)
  if (verdict === true) {
    start()
    return awaitable
  }
  if (verdict === false) {
    const err = forbidden()
    control.refused(err)
    throw err
  }
  // Refusals after an async authorize: the handler that returned (or awaited)
  // the stream gets the error and Fastify answers it; else we answer it here.
  const refuse = (err: Error): void => {
    if (!control.refused(err) && !reply.sent) reply.send(err)
  }
  // Shutdown while authorize runs: answer 503 instead of leaving the request open.
  session.onClose(reason => { if (reason === 'shutdown' && !started) refuse(new SseShuttingDownError()) })
  verdict.then(ok => {
    if (session.closed) return // the client left meanwhile
    if (ok) start()
    else refuse(forbidden())
  }, (err: Error) => {
    if (!session.closed) refuse(err)
  }).catch((err: unknown) => {
    // The client may have gone while authorize ran: nothing to answer, nothing to crash.
    reply.log.warn({ err }, 'sse: could not start the stream after authorize')
    session.drop('client')
    if (!reply.raw.destroyed) reply.raw.destroy()
  })
  return awaitable
}
