/**
 * What the plugin counts, for `sseHub.stats()` and the metrics entry
 * (`fastify-htmx-sse/metrics`). The hot path only bumps plain numbers here;
 * prom-client reads them when it is scraped, so an app without metrics pays
 * nothing for them and one with metrics pays per scrape, not per event.
 * The two histograms that must be observed as things happen (write latency,
 * replay depth) are callbacks, unset until a metrics plugin sets them, and
 * called at most once per flush slice or per resume, never per subscriber.
 */
import type { HubTransport } from './transport.js'

export interface SseCounters {
  /** Events handed to sockets, replay included. */
  delivered: number
  /** Socket writes (one carries every frame a stream had queued). */
  writes: number
  /** Bytes handed to sockets (the SSE frames; not HTTP chunk framing). */
  bytes: number
  /** Slow consumers closed. */
  evicted: number
  /** Events published through this instance. */
  published: number
  /** Resumes (a Last-Event-ID) answered from history. */
  replays: number
  /** Events handed to sockets by replay. */
  replayed: number
  /** `reset` events sent. */
  resets: number
  /** Live-page stream requests refused for a token that is missing, malformed or not ours (403). */
  tokensInvalid: number
  /** Live-page stream requests whose token expired, or (no `secret` option) was signed before a restart: answered with `reset`, so the tab reloads. */
  tokensExpired: number
  /** Seconds from fan-out to write of the oldest event a flush slice wrote. */
  observeWriteLatency: ((seconds: number) => void) | undefined
  /** Events written by one resume's replay. */
  observeReplayDepth: ((events: number) => void) | undefined
}

export function createCounters (): SseCounters {
  return {
    delivered: 0,
    writes: 0,
    bytes: 0,
    evicted: 0,
    published: 0,
    replays: 0,
    replayed: 0,
    resets: 0,
    tokensInvalid: 0,
    tokensExpired: 0,
    observeWriteLatency: undefined,
    observeReplayDepth: undefined
  }
}

/** What a transport reports beyond the HubTransport contract (the Redis transport does). */
export interface TransportMetrics {
  /** Times live delivery came back after the transport's store was unreachable. */
  readonly reconnects: number
  /** Events the store accepted that live delivery here has not reached yet; undefined when it cannot tell now (store unreachable). */
  lag (): Promise<number | undefined>
}

/** The key under which a transport offers its TransportMetrics (a symbol: not part of HubTransport). */
export const TRANSPORT_METRICS = Symbol('fastify-htmx-sse transport metrics')

/** What the metrics entry reads from one registration of the plugin. */
export interface PluginProbe {
  readonly counters: SseCounters
  readonly transport: HubTransport
  /** Unsent bytes of every open stream (a snapshot, read at scrape). */
  backlogs (): Iterable<number>
  /** Open SSE streams (live pages and `reply.sse()`), including requests waiting for `authorize`. */
  streams (): number
}

/** Keyed by the app's `sseHub`: internal, so nothing of it is on the hub's public type. */
const probes = new WeakMap<object, PluginProbe>()

export function bindProbe (hub: object, probe: PluginProbe): void {
  probes.set(hub, probe)
}

export function probeOf (hub: object): PluginProbe | undefined {
  return probes.get(hub)
}

/** The transport's own metrics, if it offers any. */
export function transportMetrics (transport: HubTransport): TransportMetrics | undefined {
  const get = (transport as { [TRANSPORT_METRICS]?: unknown })[TRANSPORT_METRICS]
  return typeof get === 'function' ? get.call(transport) as TransportMetrics : undefined
}
