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
import { bindProbe, createCounters } from './counters.js'
import { SseHub } from './hub.js'
import { PreRequestSockets } from './pre-request-sockets.js'
import { serveAssets } from './assets.js'
import { liveStreamRoute, livePage, type LiveOptions, type LivePage, type LiveSettings } from './live.js'
import { normalizeSecrets, type LiveSecret } from './live-token.js'
import * as option from './options.js'
import { openStream, type ReplyContext, type SseSource, type SseTopicsOptions } from './reply.js'
import { RESUME_SCRIPT } from './resume.js'
import { DEFAULT_REST_ABOVE_UTILIZATION, FlushScheduler, Heartbeat } from './scheduler.js'
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
  /**
   * Ends hub streams (`reply.live` pages, `reply.sse({ topics })`) once they
   * are this old (each after a random 75–100% of it, so streams opened
   * together do not reconnect together), with a `retry:` hint and the end of
   * their connection: the client reconnects, through the load balancer, to
   * any instance, and resumes from its Last-Event-ID with nothing lost. So
   * streams spread over instances added since they connected. At least
   * 1 000; default off. A `reply.sse()` stream the route feeds itself is never
   * ended by age: nothing could resume it.
   */
  maxStreamAgeMs?: number
  /**
   * Events kept per topic for Last-Event-ID replay by the default in-process
   * transport. Default 1 000. With `transport`, which keeps its own history,
   * it is an error: set it there (`redisTransport({ redis, history })`).
   */
  history?: number
  /**
   * When the event loop is busier than this (its utilization over the last
   * quarter to half second, 0 < u ≤ 1) after a pass over the SSE sockets that
   * took more than 32 ms of writes, the next pass waits until the loop is
   * back at this utilization (never longer than the pass took). Each write
   * then carries more events: less CPU per event and CPU left for other
   * work, for latency. A loop with idle time never waits. Lower it to give
   * other work on a saturated loop more room; 1 never waits (latency at any
   * CPU cost). Default 0.95.
   */
  restAboveUtilization?: number
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

/** Every key of HtmxSseOptions: the compiler refuses this object when one is missing or extra. */
const OPTION_KEYS = Object.keys({
  htmx: 0,
  secret: 0,
  liveTtlMs: 0,
  assetsPath: 0,
  streamPath: 0,
  heartbeatMs: 0,
  retryMs: 0,
  maxBufferedBytes: 0,
  maxStreamAgeMs: 0,
  history: 0,
  restAboveUtilization: 0,
  transport: 0,
  authorize: 0,
  authorizeTimeoutMs: 0,
  maxConnections: 0,
  maxConnectionsPerIp: 0,
  resumeScriptPath: 0,
  refreshPath: 0,
  closePreRequestSockets: 0
} satisfies Record<keyof HtmxSseOptions, 0>)
/** What Fastify's register() passes along with the plugin's own options. */
const TRANSPORT_METHODS = ['start', 'publish', 'since', 'history', 'head', 'close']

/** All options, validated before the plugin does anything: a bad one fails registration with HTMX_SSE_INVALID_OPTION. */
function resolveOptions (options: HtmxSseOptions) {
  option.onlyKnown(options, [...OPTION_KEYS, ...option.REGISTER_KEYS], 'options')
  const transport = options.transport === undefined ? undefined : option.withMethods<HubTransport>('transport', options.transport, TRANSPORT_METHODS)
  if (transport !== undefined && options.history !== undefined) {
    throw option.invalidOption('history', 'cannot be used with transport: the transport keeps the history (memoryTransport({ history }), redisTransport({ redis, history }))')
  }
  const shared = transport !== undefined && !(transport instanceof MemoryTransport)
  if (shared && options.secret === undefined) {
    throw option.invalidOption('secret', 'is required with a shared transport: every instance must verify the live pages the others signed (e.g. secret: process.env.SSE_SECRET)')
  }
  return {
    htmx: option.oneOf('htmx', options.htmx, [2, 4] as const, 2),
    secrets: options.secret === undefined ? undefined : normalizeSecrets(options.secret),
    liveTtlMs: option.duration('liveTtlMs', options.liveTtlMs, 12 * 3600_000, 1000),
    assetsPath: option.urlPath('assetsPath', options.assetsPath, '/_sse/assets'),
    streamPath: option.urlPath('streamPath', options.streamPath, '/_sse/stream'),
    heartbeatMs: options.heartbeatMs === false ? false as const : option.positiveNumber('heartbeatMs', options.heartbeatMs, 15_000),
    retryMs: option.positiveNumber('retryMs', options.retryMs, 3_000),
    maxBufferedBytes: option.positiveNumber('maxBufferedBytes', options.maxBufferedBytes, 1 << 20),
    maxStreamAgeMs: option.optionalDuration('maxStreamAgeMs', options.maxStreamAgeMs, 1000),
    transport: transport ?? new MemoryTransport({ history: option.integer('history', options.history, 1_000, 0) }),
    restAboveUtilization: option.share('restAboveUtilization', options.restAboveUtilization, DEFAULT_REST_ABOVE_UTILIZATION),
    authorize: option.optionalFunction<Authorize>('authorize', options.authorize),
    authorizeTimeoutMs: option.positiveNumber('authorizeTimeoutMs', options.authorizeTimeoutMs, 10_000),
    maxConnections: option.positiveNumber('maxConnections', options.maxConnections, Infinity),
    maxConnectionsPerIp: option.positiveNumber('maxConnectionsPerIp', options.maxConnectionsPerIp, Infinity),
    resumeScriptPath: option.urlPathOrFalse('resumeScriptPath', options.resumeScriptPath, '/_sse/resume.js'),
    refreshPath: option.urlPathOrFalse('refreshPath', options.refreshPath, '/_sse/refresh'),
    closePreRequestSockets: option.boolean('closePreRequestSockets', options.closePreRequestSockets, true)
  }
}

const htmxSse: FastifyPluginAsync<HtmxSseOptions> = async (app: FastifyInstance, options: HtmxSseOptions) => {
  const settings = resolveOptions(options)
  const { heartbeatMs, retryMs, maxBufferedBytes, maxStreamAgeMs, htmx, liveTtlMs, assetsPath, streamPath } = settings
  const counters = createCounters()
  const scheduler = new FlushScheduler({ restAboveUtilization: settings.restAboveUtilization, maxBufferedBytes })
  const hub = new SseHub({
    transport: settings.transport,
    scheduler,
    log: app.log,
    maxBufferedBytes,
    counters
  })
  const admission = new Admission({
    maxConnections: settings.maxConnections,
    maxConnectionsPerIp: settings.maxConnectionsPerIp,
    authorize: settings.authorize,
    authorizeTimeoutMs: settings.authorizeTimeoutMs
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
    // Uniform over the last quarter: streams opened in one burst (after a deploy) end spread out, not in a new burst.
    streamAge: maxStreamAgeMs === undefined ? undefined : () => Math.round(maxStreamAgeMs * (0.75 + Math.random() * 0.25)),
    hub,
    admission,
    completion: { warned: false }
  }

  const ownSecret = settings.secrets === undefined
  const secrets = settings.secrets ?? [randomBytes(32)]

  await hub.start()
  bindProbe(hub, {
    counters,
    transport: settings.transport,
    backlogs: () => admission.backlogs(),
    streams: () => admission.size
  })
  app.decorate('sseHub', hub)
  app.decorateReply('sse', function (this: FastifyReply, source?: SseSource | SseTopicsOptions) {
    return openStream(this, ctx, source)
  })

  const resumePath = settings.resumeScriptPath
  const refreshPath = settings.refreshPath
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
    refreshPath: refreshPath === false ? '/_sse/refresh' : refreshPath,
    counters
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
  const preRequest = app.initialConfig.http2 === true || !settings.closePreRequestSockets ? undefined : new PreRequestSockets(app.server as HttpServer)
  app.addHook('preClose', async () => {
    hub.closing()
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
// Every name below is a promise kept under semver: what a user calls or types,
// nothing the plugin only uses itself. The hub and streams are made by the
// plugin, so their classes are types here: `new SseHub()` must not compile.
export type { SseHub, HubEvent, HubStats } from './hub.js'
export type { SseStream, AwaitableSseStream, SseData, SseEvent, SseClosed } from './stream.js'
export type { SseCloseReason } from './session.js'
export type { SseSource, SseTopicsOptions } from './reply.js'
export type { Authorize } from './admission.js'
export type { LiveOptions, LivePage } from './live.js'
export type { LiveSecret } from './live-token.js'
export type { HubTransport, HubMessage, PublishInput, SincePage, SinceResult } from './transport.js'
export { memoryTransport, type MemoryTransportOptions } from './transports/memory.js'
export { errors } from './errors.js'
