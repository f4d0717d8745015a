/**
 * Issue 24, item 1: `fastify-htmx-sse/metrics`, scraped over HTTP while real
 * SSE clients (node:http, one socket each) receive a fan-out; the figures are
 * checked against what those clients received.
 */
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { Registry } from 'prom-client'
import { sseMetrics } from '../plugin/metrics.js'
import { startApp } from './helpers/app.js'
import { scrape } from './helpers/prometheus.js'
import { connect, type SseClient, waitUntil } from './helpers/sse-client.js'
import type { HtmxSseOptions } from '../plugin/index.js'

const P = 'htmx_sse_'

async function metricsApp (t: Test, options: HtmxSseOptions = {}): Promise<{ app: FastifyInstance, url: string, prometheus: string }> {
  const registry = new Registry()
  const { app, url } = await startApp({ heartbeatMs: false, ...options }, async app => {
    await app.register(sseMetrics, { registry })
    app.get('/prometheus', async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()))
    app.get('/s', (request, reply) => reply.sse({ topics: String((request.query as { topics: string }).topics).split(',') }))
  })
  t.teardown(() => app.close())
  return { app, url, prometheus: `${url}/prometheus` }
}

const sum = (clients: SseClient[], of: (c: SseClient) => number): number => clients.reduce((n, c) => n + of(c), 0)

t.test('a scrape during a fan-out agrees with what the clients received', async t => {
  const { app, url, prometheus } = await metricsApp(t)
  // 12 pages of one user each and 8 that only follow orders: 20 streams, 32 subscriptions in two families.
  const clients: SseClient[] = []
  for (let i = 1; i <= 12; i++) clients.push(await connect(`${url}/s?topics=orders,user:${i}`))
  for (let i = 0; i < 8; i++) clients.push(await connect(`${url}/s?topics=orders`))
  t.teardown(() => { for (const c of clients) c.close() })
  await waitUntil(() => app.sseHub.stats().connections === 20, 5000, '20 subscribers')

  const idle = await scrape(prometheus)
  t.equal(idle.status, 200)
  t.match(idle.contentType, /^text\/plain; version=0\.0\.4/, 'the text exposition format')
  t.equal(idle.value(`${P}connections`), 20)
  t.same(Object.fromEntries(idle.series(`${P}subscribers`)), { [`${P}subscribers{family="orders"}`]: 20, [`${P}subscribers{family="user:*"}`]: 12 },
    'subscriptions by family, one series for all users')
  t.equal(idle.value(`${P}published_total`), 0)
  t.equal(idle.value(`${P}buffered_bytes_count`), 20, 'the buffered-bytes snapshot has one observation per open stream')

  // The fan-out runs while the scrape is answered: figures at the scrape lie between what was seen before and after it.
  const data = (i: number): string => `<li id="o-${i}">${'x'.repeat(200)}</li>`
  let started = 0
  let resolved = 0
  const publisher = (async () => {
    for (let i = 0; i < 30; i++) {
      started++
      await app.sseHub.publish('orders', { data: data(i) })
      resolved++
      if (i < 5) {
        started++
        await app.sseHub.publish('user:3', { data: data(100 + i) })
        resolved++
      }
      await new Promise(resolve => setImmediate(resolve))
    }
  })()
  await waitUntil(() => resolved >= 10, 5000, 'the fan-out under way')
  const resolvedBefore = resolved
  const receivedBefore = sum(clients, c => c.events.length)
  const during = await scrape(prometheus)
  const startedAfter = started
  const receivedAfter = sum(clients, c => c.events.length)
  const published = during.value(`${P}published_total`)!
  const delivered = during.value(`${P}delivered_total`)!
  t.ok(published >= resolvedBefore && published <= startedAfter, `published during: ${resolvedBefore} ≤ ${published} ≤ ${startedAfter}`)
  t.ok(delivered >= receivedBefore && delivered <= startedAfter * 20, `delivered during: ${receivedBefore} received ≤ ${delivered} ≤ ${startedAfter} × 20`)
  t.comment(`during the fan-out: published ${published}, delivered ${delivered}, received ${receivedBefore}..${receivedAfter}`)
  await publisher

  // 30 orders to 20 streams, 5 to user 3's one stream.
  const expected = 30 * 20 + 5
  await waitUntil(() => sum(clients, c => c.events.length) === expected, 10_000, `${expected} events received`)
  const after = await scrape(prometheus)
  t.equal(after.value(`${P}published_total`), 35, 'published: every publish')
  t.equal(after.value(`${P}delivered_total`), expected, 'delivered: exactly the events the clients received')
  t.equal(after.value(`${P}connections`), 20)
  const received = sum(clients, c => c.rawBytes())
  const written = after.value(`${P}written_bytes_total`)!
  // Every frame written (the opening retry hint and the events) reached a client: the bytes match.
  t.equal(written, received, `bytes written ${written} = bytes the clients read`)
  t.ok(written > expected * 200 && written < expected * 400, `bytes: ${expected} events of 200-odd bytes of data, plus framing`)
  const writes = after.value(`${P}socket_writes_total`)!
  t.ok(writes >= 20 && writes <= expected + 20, `socket writes ${writes}: at least one per stream, at most one per event plus the opening retry`)
  const latency = after.value(`${P}publish_to_write_seconds_count`)!
  t.ok(latency >= 1 && latency <= 35, `${latency} write-latency samples: at least one, at most one per fan-out`)
  t.ok(after.value(`${P}publish_to_write_seconds_sum`)! >= 0)
  t.equal(after.value(`${P}evictions_total`), 0)
  t.equal(after.value(`${P}replays_total`), 0)
  t.equal(after.value(`${P}resets_total`), 0)
  t.equal(after.value(`${P}replay_depth_count`), 0)
  t.same(app.sseHub.stats().delivered, expected, 'the same counters as stats()')

  for (const c of clients.slice(0, 12)) c.close()
  await waitUntil(() => app.sseHub.stats().connections === 8, 5000, 'the user pages closed')
  const fewer = await scrape(prometheus)
  t.equal(fewer.value(`${P}connections`), 8)
  t.same(Object.fromEntries(fewer.series(`${P}subscribers`)), { [`${P}subscribers{family="orders"}`]: 8 }, 'a family with no subscriber left is gone')
  t.equal(fewer.value(`${P}buffered_bytes_count`), 8)
})

t.test('replays, their depth and resets', async t => {
  const { app, url, prometheus } = await metricsApp(t, { history: 10 })
  const ids: string[] = []
  for (let i = 1; i <= 8; i++) ids.push(await app.sseHub.publish('feed', { data: `e${i}` }))
  const resumed = await connect(`${url}/s?topics=feed`, { headers: { 'last-event-id': ids[0]! } })
  t.teardown(() => resumed.close())
  t.same((await resumed.waitFor(7)).map(e => e.data), ['e2', 'e3', 'e4', 'e5', 'e6', 'e7', 'e8'])
  const one = await scrape(prometheus)
  t.equal(one.value(`${P}replays_total`), 1)
  t.equal(one.value(`${P}replay_depth_count`), 1)
  t.equal(one.value(`${P}replay_depth_sum`), 7, 'the 7 events it missed')
  t.equal(one.value(`${P}replay_depth_bucket{le="1"}`), 0)
  t.equal(one.value(`${P}replay_depth_bucket{le="10"}`), 1)
  t.equal(one.value(`${P}resets_total`), 0)

  // History keeps 10: an id 20 events back is gone, and the client gets reset.
  for (let i = 9; i <= 28; i++) await app.sseHub.publish('feed', { data: `e${i}` })
  const stale = await connect(`${url}/s?topics=feed`, { headers: { 'last-event-id': ids[1]! } })
  t.teardown(() => stale.close())
  t.equal((await stale.waitFor(1))[0]!.event, 'reset')
  const two = await scrape(prometheus)
  t.equal(two.value(`${P}resets_total`), 1)
  t.equal(two.value(`${P}replays_total`), 1, 'a reset is not a replay')
  t.equal(two.value(`${P}replay_depth_count`), 1)
  t.equal(two.value(`${P}published_total`), 28)
})

t.test('buffered bytes show a client that stopped reading; its eviction is counted', async t => {
  const { app, url, prometheus } = await metricsApp(t, { maxBufferedBytes: 256 * 1024 })
  const reader = await connect(`${url}/s?topics=big`)
  const stuck = await connect(`${url}/s?topics=big`, { paused: true })
  t.teardown(() => { reader.close(); stuck.close() })
  await waitUntil(() => app.sseHub.stats().connections === 2)
  const chunk = 'y'.repeat(16 * 1024)
  let backedUp = false
  let sent = 0
  // The kernel's socket buffers fill first (a few MiB on loopback); bounded either way.
  while (app.sseHub.stats().evicted === 0 && sent < 2000) {
    await app.sseHub.publish('big', { data: chunk })
    sent++
    if (!backedUp && sent % 8 === 0) {
      const s = await scrape(prometheus)
      // Buckets are cumulative: fewer streams at "≤ 0 bytes" than in all means one has bytes waiting.
      backedUp = s.value(`${P}buffered_bytes_bucket{le="0"}`)! < s.value(`${P}buffered_bytes_count`)!
    }
  }
  t.ok(backedUp, `a scrape saw unsent bytes on a stream before its eviction (${sent} events)`)
  t.equal(app.sseHub.stats().evicted, 1, 'the client that stopped reading was evicted')
  await waitUntil(() => app.sseHub.stats().connections === 1)
  const s = await scrape(prometheus)
  t.equal(s.value(`${P}evictions_total`), 1)
  t.equal(s.value(`${P}connections`), 1)
  t.equal(s.value(`${P}buffered_bytes_count`), 1)
})

t.test('families stay bounded: the 50 largest by name, the rest summed as "other"', async t => {
  const { app, url, prometheus } = await metricsApp(t)
  // 60 families: two streams of 30 topics (f0:x … f59:x, one subscription each), and three
  // streams that add f0:y … f9:y, so the families f0 … f9 have 4 subscriptions and the rest 1.
  const clients: SseClient[] = []
  const topics = (from: number): string => Array.from({ length: 30 }, (_, i) => `f${from + i}:x`).join(',')
  clients.push(await connect(`${url}/s?topics=${topics(0)}`), await connect(`${url}/s?topics=${topics(30)}`))
  for (let i = 0; i < 3; i++) clients.push(await connect(`${url}/s?topics=${Array.from({ length: 10 }, (_, j) => `f${j}:y`).join(',')}`))
  t.teardown(() => { for (const c of clients) c.close() })
  await waitUntil(() => app.sseHub.stats().connections === 5)
  const s = await scrape(prometheus)
  const series = s.series(`${P}subscribers`)
  t.equal(series.size, 51, '50 families and "other"')
  t.equal(s.value(`${P}subscribers{family="f0:*"}`), 4, 'f0:x once, f0:y three times')
  t.equal(s.value(`${P}subscribers{family="f9:*"}`), 4)
  t.equal(s.value(`${P}subscribers{family="other"}`), 10, 'the 10 smallest families (one subscription each)')
  t.equal([...series.values()].reduce((a, b) => a + b, 0), 90, 'every subscription is counted once')
})

t.test('options: a missing plugin, a bad prefix, a second registration, a registry that already has the names', async t => {
  const registry = new Registry()
  const { app } = await startApp({}, async app => {
    await app.register(sseMetrics, { registry, prefix: 'shop_sse_' })
  })
  t.teardown(() => app.close())
  t.ok(registry.getSingleMetric('shop_sse_connections'), 'the prefix replaces htmx_sse_')

  const Fastify = (await import('fastify')).default
  const bare = Fastify()
  await t.rejects(async () => { await bare.register(sseMetrics) }, /fastify-htmx-sse/, 'registering without the plugin fails')
  const htmxSse = (await import('../plugin/index.js')).default
  for (const [options, code, message] of [
    [{ prefix: 'bad-prefix' }, 'HTMX_SSE_INVALID_OPTION', /prefix \(sseMetrics\) must be the start of a Prometheus metric name/],
    [{ registry, prefix: 'shop_sse_' }, 'HTMX_SSE_INVALID_OPTION', /already has a metric shop_sse_connections/],
    [{ Registry: registry }, 'HTMX_SSE_INVALID_OPTION', /Registry \(sseMetrics\) is not an option \(did you mean registry\?\)/]
  ] as const) {
    const other = Fastify()
    await other.register(htmxSse, {})
    await t.rejects(async () => { await other.register(sseMetrics, options as never) }, { code, message }, JSON.stringify(Object.keys(options)))
    await other.close()
  }
  const twice = Fastify()
  await twice.register(htmxSse, {})
  await twice.register(sseMetrics, { registry: new Registry() })
  await t.rejects(async () => { await twice.register(sseMetrics, { registry: new Registry() }) }, { code: 'HTMX_SSE_INVALID_OPTION', message: /already registered/ })
  await twice.close()

  // Closing the app removes its metrics, so an app built again can register them in the same registry.
  await app.close()
  t.equal(registry.getSingleMetric('shop_sse_connections'), undefined)
})
