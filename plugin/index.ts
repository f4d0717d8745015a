/**
 * fastify-htmx-sse: wires options, decorators and hooks. No logic of its own:
 * encode → connection → session → stream → hub → transport hold that, with
 * admission deciding who gets a stream.
 */
import { randomBytes } from 'node:crypto'
import type { Server as HttpServer } from 'node:http'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply } from 'fastify'
import fp from 'fastify-plugin'
import { Admission, type Authorize } from './admission.js'
import { SseHub } from './hub.js'
import { PreRequestSockets } from './pre-request-sockets.js'
import { serveAssets } from './assets.js'
import { SseInvalidOptionError } from './errors.js'
import { liveStreamRoute, livePage, type LiveOptions, type LivePage, type LiveSettings } from './live.js'
import { normalizeSecrets, type LiveSecret } from './live-token.js'
import { openStream, type ReplyContext, type SseSource, type SseTopicsOptions } from './reply.js'
import { RESUME_SCRIPT } from './resume.js'
import { FlushScheduler, Heartbeat } from './scheduler.js'
import type { AwaitableSseStream } from './stream.js'
import type { HubTransport } from './transport.js'
import { MemoryTransport } from './transports/memory.js'

export interface HtmxSseOptions {
  /**
   * The htmx major of the app's pages: 2 (htmx 2.0.x + htmx-ext-sse) or 4
   * (htmx 4.0.x + hx-sse). `reply.live` writes that version's markup and the
   * plugin serves its files. Default 2.
   */
  htmx?: 2 | 4
  /**
   * Signs the topics of live pages (HMAC-SHA256): a string or Buffer of at
   * least 16 bytes, or an array of them to rotate (the first signs, all
   * verify). Required with a shared transport (all instances must agree).
   * Without it, a random one per process: pages rendered before a restart
   * then reload once when they reconnect.
   */
  secret?: LiveSecret
  /** How long a live page's signed topics stay valid; an older tab reloads on its next reconnect. Default 12 h. */
  liveTtlMs?: number
  /** Where the plugin serves htmx and its SSE extension. Default `/_sse/assets`. */
  assetsPath?: string
  /** The stream route of live pages. Default `/_sse/stream`. */
  streamPath?: string
  /** Interval of `: ping` comments on idle streams; `false` disables. Default 15 000. */
  heartbeatMs?: number | false
  /** `retry:` hint sent at stream start and before shutdown (jittered ±20%). Default 3 000. */
  retryMs?: number
  /** Unsent bytes per connection before it is closed as a slow consumer. Default 1 MiB. */
  maxBufferedBytes?: number
  /** Events kept per topic for Last-Event-ID replay (default in-process transport). Default 1 000. */
  history?: number
  /**
   * The largest share of the event loop's time that writing to SSE sockets
   * may take once one pass over them takes longer than 32 ms (thousands of
   * sockets with frequent events): the writes then rest in between, so each
   * carries more events. CPU per event falls to about this share of what it
   * would be, and latency rises in proportion; smaller fan-outs are never
   * delayed. 1 writes as soon as possible. Default 0.6.
   */
  maxWriteShare?: number
  /** Where hub events live; default in-process. `redisTransport()` from `fastify-htmx-sse/redis` for many instances. */
  transport?: HubTransport
  /** Decides whether a request may subscribe to hub topics; refusal is a 403 before any byte. */
  authorize?: Authorize
  /** How long an async `authorize` may take before the request is refused (503, Retry-After). Default 10 000. */
  authorizeTimeoutMs?: number
  /** Open SSE streams per instance before new ones get 503. Default unlimited. */
  maxConnections?: number
  /** Open SSE streams per client IP before new ones get 503. Default unlimited. */
  maxConnectionsPerIp?: number
  /**
   * URL path that serves the resume script (sets `htmx.createEventSource` so
   * htmx's own reconnects carry `lastEventId`); `false` to not serve it.
   * Default `/_sse/resume.js`.
   */
  resumeScriptPath?: string | false
  /**
   * URL path that answers `204` with `HX-Refresh: true`: an htmx 4 page fetches
   * it when a `reset` event arrives, and reloads (`<SseConnect htmx={4} resetUrl>`);
   * `false` to not serve it. Default `/_sse/refresh`.
   */
  refreshPath?: string | false
  /**
   * On close, destroy connections that never began a request (Chromium's
   * speculative spare connection), which would otherwise hold `app.close()`
   * until Node's `headersTimeout`. Default true; ignored for http2.
   */
  closePreRequestSockets?: boolean
}

/** What `app.htmxSse` exposes of the resolved options. */
export interface HtmxSseSettings {
  /** The app's htmx major. */
  readonly htmx: 2 | 4
  /** Where htmx and its SSE extension are served. */
  readonly assetsPath: string
  /** The stream route of live pages. */
  readonly streamPath: string
  /** Where the resume script (htmx 2) is served, or false when it is not. */
  readonly resumeScriptPath: string | false
  /** Where the reset refresh (htmx 4) is served, or false when it is not. */
  readonly refreshPath: string | false
}

declare module 'fastify' {
  interface FastifyReply {
    /**
     * Starts a Server-Sent Events response and returns its stream:
     * - `reply.sse()`: send events yourself with `stream.send()`;
     * - `reply.sse(iterable)` / `reply.sse(signal => iterable)`: drained with backpressure;
     * - `reply.sse({ topics })`: hub topics, with Last-Event-ID replay.
     * Awaiting (or returning) it resolves with the stream once admitted; `stream.done` resolves when it ends.
     */
    sse (source?: SseSource | SseTopicsOptions): AwaitableSseStream
    /**
     * Makes the page being rendered live: signs `topics` into the URL of the
     * plugin's stream route and returns the page's connect `element` (in the
     * body) and `scripts` (in the head). Call it before reading the page's
     * data: its cursor is read first, so nothing published meanwhile is lost.
     */
    live (topics: readonly string[], options?: LiveOptions): Promise<LivePage>
  }
  interface FastifyInstance {
    /** The broadcast hub shared by every route of this app. */
    sseHub: SseHub
    /** The plugin's resolved settings that pages and route modules need. */
    htmxSse: HtmxSseSettings
  }
}

function positive (name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !(value > 0)) throw new TypeError(`fastify-htmx-sse: option ${name} must be a positive number, got ${String(value)}`)
  return value
}

function pathOption (name: string, value: unknown, fallback: string): string {
  if (value === undefined) return fallback
  if (typeof value !== 'string' || !/^\/[\w\-./]*[\w-]$/.test(value) || value.includes('//')) {
    throw new SseInvalidOptionError(name, `must be an absolute URL path like ${fallback}, got ${JSON.stringify(value)}`)
  }
  return value
}

const htmxSse: FastifyPluginAsync<HtmxSseOptions> = async (app: FastifyInstance, options: HtmxSseOptions) => {
  const heartbeatMs = options.heartbeatMs === false ? false : positive('heartbeatMs', options.heartbeatMs, 15_000)
  const retryMs = positive('retryMs', options.retryMs, 3_000)
  const history = options.history ?? 1_000
  if (!Number.isSafeInteger(history) || history < 0) throw new TypeError('fastify-htmx-sse: option history must be a non-negative integer')
  if (options.authorize !== undefined && typeof options.authorize !== 'function') throw new TypeError('fastify-htmx-sse: option authorize must be a function')

  const counters = { delivered: 0, writes: 0, evicted: 0 }
  const maxWriteShare = options.maxWriteShare ?? 0.6
  if (typeof maxWriteShare !== 'number' || !(maxWriteShare > 0 && maxWriteShare <= 1)) throw new TypeError(`fastify-htmx-sse: option maxWriteShare must be a number in (0, 1], got ${String(maxWriteShare)}`)
  const scheduler = new FlushScheduler({ maxWriteShare })
  const maxBufferedBytes = positive('maxBufferedBytes', options.maxBufferedBytes, 1 << 20)
  const hub = new SseHub({
    transport: options.transport ?? new MemoryTransport({ history }),
    scheduler,
    log: app.log,
    maxBufferedBytes,
    counters
  })
  const admission = new Admission({
    maxConnections: positive('maxConnections', options.maxConnections, Infinity),
    maxConnectionsPerIp: positive('maxConnectionsPerIp', options.maxConnectionsPerIp, Infinity),
    authorize: options.authorize,
    authorizeTimeoutMs: positive('authorizeTimeoutMs', options.authorizeTimeoutMs, 10_000)
  })
  const ctx: ReplyContext = {
    log: app.log,
    maxBufferedBytes,
    scheduler,
    heartbeat: new Heartbeat(heartbeatMs),
    joiner: hub.joiner,
    counters,
    // Jitter spreads a thundering herd of reconnects after a restart.
    jitteredRetry: () => Math.round(retryMs * (0.8 + Math.random() * 0.4)),
    hub,
    admission,
    completion: { warned: false }
  }

  const htmx = options.htmx ?? 2
  if (htmx !== 2 && htmx !== 4) throw new SseInvalidOptionError('htmx', `must be 2 or 4, got ${JSON.stringify(htmx)}`)
  if (options.secret === undefined && options.transport !== undefined && !(options.transport instanceof MemoryTransport)) {
    throw new SseInvalidOptionError('secret', 'is required with a shared transport: every instance must verify the live pages the others signed (e.g. secret: process.env.SSE_SECRET)')
  }
  const ownSecret = options.secret === undefined
  const secrets = ownSecret ? [randomBytes(32)] : normalizeSecrets(options.secret)
  const liveTtlMs = positive('liveTtlMs', options.liveTtlMs, 12 * 3600_000)
  const assetsPath = pathOption('assetsPath', options.assetsPath, '/_sse/assets')
  const streamPath = pathOption('streamPath', options.streamPath, '/_sse/stream')

  await hub.start()
  app.decorate('sseHub', hub)
  app.decorateReply('sse', function (this: FastifyReply, source?: SseSource | SseTopicsOptions) {
    return openStream(this, ctx, source)
  })

  const resumePath = options.resumeScriptPath ?? '/_sse/resume.js'
  const refreshPath = options.refreshPath ?? '/_sse/refresh'
  app.decorate('htmxSse', Object.freeze({ htmx, assetsPath, streamPath, resumeScriptPath: resumePath, refreshPath }))
  const live: LiveSettings = {
    htmx,
    secrets,
    ownSecret,
    ttlMs: liveTtlMs,
    streamPath,
    assetsPath,
    // Live pages need both routes; with either turned off, they use the defaults' paths and the app serves them.
    resumeScriptPath: resumePath === false ? '/_sse/resume.js' : resumePath,
    refreshPath: refreshPath === false ? '/_sse/refresh' : refreshPath
  }
  app.decorateReply('live', function (this: FastifyReply, topics: readonly string[], liveOptions?: LiveOptions) {
    return livePage(hub, live, topics, liveOptions)
  })
  liveStreamRoute(app, live, (reply, topics) => openStream(reply, ctx, { topics }, true))
  await serveAssets(app, assetsPath)
  if (resumePath !== false) {
    app.get(resumePath, { logLevel: 'warn' }, (_request, reply) => {
      reply.header('content-type', 'text/javascript; charset=utf-8').header('cache-control', 'public, max-age=3600').send(RESUME_SCRIPT)
    })
  }
  if (refreshPath !== false) {
    app.get(refreshPath, { logLevel: 'warn' }, (_request, reply) => {
      reply.code(204).header('hx-refresh', 'true').header('cache-control', 'no-store').send()
    })
  }

  // http2 sessions are Fastify's to close; plain and TLS HTTP/1 sockets are ours to reap.
  const preRequest = app.initialConfig.http2 === true || options.closePreRequestSockets === false ? undefined : new PreRequestSockets(app.server as HttpServer)
  app.addHook('preClose', async () => {
    preRequest?.close()
    const sessions = admission.shutdown()
    for (const session of sessions) session.shutdown()
    // Clients get a moment to read the final retry hint; a client that does
    // not read must not hold app.close() hostage.
    await Promise.race([
      Promise.all(sessions.map(s => s.connectionClosed())),
      new Promise(resolve => setTimeout(resolve, 300).unref())
    ])
    for (const session of sessions) session.destroyConnection()
  })
  app.addHook('onClose', async () => {
    await hub.close()
  })
}

export default fp(htmxSse, { fastify: '5.x', name: 'fastify-htmx-sse' })
export { htmxSse }
export { SseHub, TOPIC_PATTERN, MAX_TOPICS_PER_CONNECTION, type HubEvent, type HubStats } from './hub.js'
export { SseStream, type AwaitableSseStream, type SseData, type SseEvent, type SseEventFields, type SseClosed } from './stream.js'
export type { SseCloseReason } from './session.js'
export type { SseSource, SseTopicsOptions } from './reply.js'
export type { Authorize } from './admission.js'
export { encodeEvent, encodeEventText, encodeComment, eventNameProblem, Frame, type EncodableEvent } from './encode.js'
export * from './errors.js'
export { MemoryTransport, memoryTransport, type MemoryTransportOptions } from './transports/memory.js'
export { parseId, type HubTransport, type HubMessage, type PublishInput, type SincePage, type SinceResult } from './transport.js'
export { RESUME_SCRIPT } from './resume.js'
export type { LiveOptions, LivePage } from './live.js'
export type { LiveSecret } from './live-token.js'
