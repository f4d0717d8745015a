/**
 * `fastify-htmx-sse/metrics`: the plugin's Prometheus metrics, with
 * prom-client (an optional peer, loaded only here). Register it after the
 * plugin, then serve the registry wherever the app serves its metrics:
 *
 *   await app.register(htmxSse, { secret })
 *   await app.register(sseMetrics, { registry })
 *   app.get('/prometheus', async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()))
 *
 * Nothing here runs per event: the plugin keeps plain counters (./counters.ts)
 * and these metrics read them when the registry is scraped. Only two
 * histograms are observed as things happen: write latency once per flush
 * slice, replay depth once per resume.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import type { Registry } from 'prom-client'
import { probeOf, transportMetrics, type PluginProbe } from './counters.js'
import { missingPeer } from './errors.js'
import * as option from './options.js'

/**
 * The options of `sseMetrics`. Not exported (the package's names are budgeted):
 * name it as `Parameters<typeof sseMetrics>[1]` if you need to.
 */
interface SseMetricsOptions {
  /** Where the metrics are registered: the app's own registry, or (default) prom-client's global one. */
  registry?: Registry
  /** What every metric name starts with. Default `htmx_sse_`. */
  prefix?: string
}

type PromClient = typeof import('prom-client')

/** Topic families reported by name; the rest are summed under `other`, so a label never grows with the users. */
const MAX_FAMILIES = 50
const OTHER_FAMILY = 'other'
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
const DEPTH_BUCKETS = [0, 1, 10, 100, 1000, 10_000]
const BUFFERED_BUCKETS = [0, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304]

const OPTION_KEYS = Object.keys({ registry: 0, prefix: 0 } satisfies Record<keyof SseMetricsOptions, 0>)

/** `user:42` → `user:*`; a topic without a colon is its own family. */
function familyOf (topic: string): string {
  const colon = topic.indexOf(':')
  return colon < 0 ? topic : `${topic.slice(0, colon)}:*`
}

/** Subscriptions per family: the MAX_FAMILIES largest by name, the rest under `other`. */
function families (topics: Record<string, number>): Map<string, number> {
  const all = new Map<string, number>()
  for (const topic in topics) {
    const family = familyOf(topic)
    all.set(family, (all.get(family) ?? 0) + topics[topic]!)
  }
  if (all.size <= MAX_FAMILIES) return all
  const sorted = [...all].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
  const kept = new Map(sorted.slice(0, MAX_FAMILIES))
  let rest = 0
  for (const [, n] of sorted.slice(MAX_FAMILIES)) rest += n
  kept.set(OTHER_FAMILY, (kept.get(OTHER_FAMILY) ?? 0) + rest)
  return kept
}

async function loadPromClient (): Promise<PromClient> {
  try {
    return await import('prom-client')
  } catch (err) {
    throw missingPeer(err, 'prom-client', 'sseMetrics (fastify-htmx-sse/metrics)')
  }
}

function define (prom: PromClient, registry: Registry, prefix: string, app: FastifyInstance, probe: PluginProbe): string[] {
  const { counters } = probe
  const registers = [registry]
  const names: string[] = []
  const name = (suffix: string): string => {
    const full = prefix + suffix
    names.push(full)
    return full
  }
  /** A counter that mirrors a number the plugin keeps (it only grows). */
  const mirror = (suffix: string, help: string, read: () => number): void => {
    let seen = 0
    // eslint-disable-next-line no-new -- registered by its constructor
    new prom.Counter({
      name: name(suffix),
      help,
      registers,
      collect () {
        const now = read()
        if (now > seen) this.inc(now - seen)
        seen = now
      }
    })
  }

  // eslint-disable-next-line no-new
  new prom.Gauge({
    name: name('connections'),
    help: 'SSE streams open on this instance (live pages and reply.sse()), with requests waiting for authorize.',
    registers,
    collect () { this.set(probe.streams()) }
  })
  // eslint-disable-next-line no-new
  new prom.Gauge({
    name: name('subscribers'),
    help: `Hub subscriptions by topic family (the topic up to its first colon, as "user:*"); the ${MAX_FAMILIES} largest families, the rest as "${OTHER_FAMILY}".`,
    labelNames: ['family'],
    registers,
    collect () {
      this.reset()
      for (const [family, n] of families(app.sseHub.stats().topics)) this.set({ family }, n)
    }
  })
  mirror('published_total', 'Events published through this instance.', () => counters.published)
  mirror('delivered_total', 'Events written to SSE sockets on this instance (live and replayed).', () => counters.delivered)
  mirror('written_bytes_total', 'Bytes of SSE frames written to sockets on this instance.', () => counters.bytes)
  mirror('socket_writes_total', 'Socket writes of SSE streams (one carries every event a stream had queued).', () => counters.writes)
  mirror('evictions_total', 'Streams closed for being slow consumers (more than maxBufferedBytes unsent).', () => counters.evicted)
  mirror('replays_total', 'Reconnects with Last-Event-ID answered from history.', () => counters.replays)
  mirror('resets_total', 'reset events sent (history no longer reached a client\'s last event, or the transport lost events).', () => counters.resets)

  let invalid = 0
  let expired = 0
  // eslint-disable-next-line no-new
  new prom.Counter({
    name: name('token_refusals_total'),
    help: 'Live-page stream requests whose signed token was refused: reason="invalid" (403: missing, tampered, foreign), reason="expired" (expired, or signed before a restart of an app without a secret option: answered with reset so the tab reloads).',
    labelNames: ['reason'],
    registers,
    collect () {
      this.inc({ reason: 'invalid' }, counters.tokensInvalid - invalid)
      this.inc({ reason: 'expired' }, counters.tokensExpired - expired)
      invalid = counters.tokensInvalid
      expired = counters.tokensExpired
    }
  })

  const depth = new prom.Histogram({
    name: name('replay_depth'),
    help: 'Events replayed per reconnect answered from history.',
    buckets: DEPTH_BUCKETS,
    registers
  })
  const latency = new prom.Histogram({
    name: name('publish_to_write_seconds'),
    help: 'Seconds from an event\'s fan-out on this instance (its publish, in-process; its arrival from the transport otherwise) to the socket writes that carry it; one sample per flush slice, its oldest event.',
    buckets: LATENCY_BUCKETS,
    registers
  })
  // eslint-disable-next-line no-new
  new prom.Histogram({
    name: name('buffered_bytes'),
    help: 'Unsent bytes per open SSE stream, a snapshot taken at each scrape (read the buckets as they are, not with rate()).',
    buckets: BUFFERED_BUCKETS,
    registers,
    collect () {
      this.reset()
      this.zero({})
      for (const bytes of probe.backlogs()) this.observe(bytes)
    }
  })
  counters.observeReplayDepth = events => depth.observe(events)
  counters.observeWriteLatency = seconds => latency.observe(seconds)

  const transport = transportMetrics(probe.transport)
  if (transport !== undefined) {
    // eslint-disable-next-line no-new
    new prom.Gauge({
      name: name('redis_lag_events'),
      help: 'Events Redis accepted that live delivery on this instance has not reached; NaN while Redis is unreachable.',
      registers,
      async collect () { this.set(await transport.lag() ?? Number.NaN) }
    })
    mirror('redis_reconnects_total', 'Times live delivery resumed after Redis was unreachable.', () => transport.reconnects)
  }
  return names
}

const metrics: FastifyPluginAsync<SseMetricsOptions> = async (app, options) => {
  option.onlyKnown(options, [...new Set([...OPTION_KEYS, ...option.REGISTER_KEYS])], 'sseMetrics')
  const prefix = options.prefix ?? 'htmx_sse_'
  if (typeof prefix !== 'string' || !/^([a-zA-Z_:][a-zA-Z0-9_:]*)?$/.test(prefix)) {
    throw option.invalidOption('prefix (sseMetrics)', `must be the start of a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), got ${option.shown(prefix)}`)
  }
  const probe = probeOf(app.sseHub)
  if (probe === undefined) throw option.invalidOption('sseMetrics', 'needs fastify-htmx-sse registered first, on the same app')
  if (probe.counters.observeWriteLatency !== undefined) throw option.invalidOption('sseMetrics', 'is already registered for this app\'s sseHub')
  const prom = await loadPromClient()
  const registry = options.registry === undefined ? prom.register : option.withMethods<Registry>('registry (sseMetrics)', options.registry, ['metrics', 'getSingleMetric', 'removeSingleMetric'])
  const taken = ['connections', 'published_total'].map(s => prefix + s).find(n => registry.getSingleMetric(n) !== undefined)
  if (taken !== undefined) throw option.invalidOption('registry (sseMetrics)', `already has a metric ${taken}: register sseMetrics once per registry, or give each a prefix`)
  const names = define(prom, registry, prefix, app, probe)
  app.addHook('onClose', async () => {
    // So an app built again in the same process (tests, hot reload) can register them again.
    for (const n of names) registry.removeSingleMetric(n)
    probe.counters.observeReplayDepth = undefined
    probe.counters.observeWriteLatency = undefined
  })
}

/**
 * Prometheus metrics of fastify-htmx-sse (every name starts with `prefix`,
 * default `htmx_sse_`): connections, subscribers by topic family, published,
 * delivered, written bytes, socket writes, evictions, replays, resets, replay
 * depth, buffered bytes, publish-to-write latency, token refusals, and with
 * the Redis transport its live loop's lag and reconnects. Register it after
 * fastify-htmx-sse; it needs the optional peer `prom-client`.
 */
export const sseMetrics = fp(metrics, { fastify: '5.x', name: 'fastify-htmx-sse-metrics', dependencies: ['fastify-htmx-sse'] })
