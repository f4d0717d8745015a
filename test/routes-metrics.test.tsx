import t from 'tap'
import Fastify from 'fastify'
import htmxSse from '../plugin/index.js'
import { fakeSampler, MetricsFeed, metricsRoutes, HubStatsCard, HubStatsFeed, hubStatsRoutes, topicLabel } from './helpers/routes.js'
import { render } from './helpers/html.js'
import { openPage } from './helpers/live-page.js'
import { waitUntil } from './helpers/sse-client.js'

async function start (sampler = fakeSampler(), extra: { intervalMs?: number, lingerMs?: number } = {}) {
  const app = Fastify({ logger: false })
  await app.register(htmxSse, { heartbeatMs: false })
  const feed = new MetricsFeed({ sampler, intervalMs: extra.intervalMs ?? 30, lingerMs: extra.lingerMs ?? 0 })
  await app.register(metricsRoutes, { prefix: '/metrics', feed })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as { port: number }
  return { app, feed, sampler, url: `http://127.0.0.1:${port}` }
}

t.test('metrics: sampler starts with the first subscriber and stops after the last', async t => {
  const { app, feed, sampler, url } = await start()
  t.teardown(() => app.close())
  await new Promise(resolve => setTimeout(resolve, 80))
  t.equal(sampler.calls, 0, 'no sampling without subscribers')
  t.equal(sampler.warmUps, 0)

  const page = await openPage(url, '/metrics')
  t.equal(sampler.calls, 0, 'rendering the page does not sample')
  const one = await page.connect()
  const two = await page.connect()
  await one.waitFor(3)
  t.equal(sampler.warmUps, 1, 'warmed up once before the first sample')
  t.equal(feed.running, true)
  t.equal(app.sseHub.stats().topics.metrics, 2, 'two subscribers')
  const values = one.events.slice(0, 3).map(e => /id="metric-cpu"[\s\S]*?class="value">([^<]+)</.exec(e.data)?.[1])
  t.equal(new Set(values).size, 3, 'values change every tick')
  t.ok(one.events.every(e => e.event === undefined), 'unnamed events (htmx 2 and 4 both swap them)')
  t.match(one.events[0]!.data, /hx-swap-oob="innerHTML: #metric-cpu-slot"/)
  t.match(one.events[0]!.data, /<svg class="sparkline"/)
  t.match(one.events[0]!.data, /hx-swap-oob="innerHTML: #metric-cores-slot"/)

  await two.waitFor(3)
  const sameBytes = two.events.find(e => e.id === one.events[2]!.id)
  t.equal(sameBytes?.data, one.events[2]!.data, 'one loop: both clients get the same sample')

  one.close()
  await waitUntil(() => app.sseHub.stats().topics.metrics === 1, 2000, 'one subscriber')
  t.equal(feed.running, true, 'still sampling for the second client')
  two.close()
  await waitUntil(() => !feed.running, 2000, 'loop stopped')
  const calls = sampler.calls
  await new Promise(resolve => setTimeout(resolve, 120))
  t.ok(sampler.calls <= calls + 1, 'no more samples after the last subscriber left')

  const three = await page.connect()
  await three.waitFor(1)
  t.ok(sampler.calls > calls, 'restarts with a new subscriber')
  three.close()
  await waitUntil(() => !feed.running, 2000, 'loop stopped again')
})

t.test('metrics: lingerMs keeps the loop across a reload, then stops it', async t => {
  const { app, feed, sampler, url } = await start(fakeSampler(), { lingerMs: 300 })
  t.teardown(() => app.close())
  const page = await openPage(url, '/metrics')
  const first = await page.connect()
  await first.waitFor(1)
  first.close()
  await waitUntil(() => (app.sseHub.stats().topics.metrics ?? 0) === 0, 2000, 'no subscriber')
  t.equal(feed.running, true, 'lingers after the last subscriber left')
  const again = await page.connect()
  await again.waitFor(1)
  t.equal(sampler.warmUps, 1, 'a subscriber back within the linger: no restart, no second warm-up')
  again.close()
  await waitUntil(() => !feed.running, 3000, 'stopped once the linger ran out')
})

t.test('metrics: sparklines keep the last minute; page renders the cards and the sink', async t => {
  const sampler = fakeSampler()
  const feed = new MetricsFeed({ sampler, intervalMs: 1000, windowMs: 5000 })
  const app = Fastify({ logger: false })
  await app.register(htmxSse)
  await app.register(metricsRoutes, { feed })
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const page = await openPage(url, '/')
  t.equal(page.status, 200)
  t.match(page.html, /<div hidden hx-ext="sse" sse-connect="\/_sse\/stream\?t=[^"]+" sse-swap="message" hx-swap="none"><\/div>/, 'one hidden connect element')
  t.match(page.html, /id="metric-cpu-slot"/)
  t.match(page.html, /<span class="value">—<\/span>/, 'no sample yet: an em dash, not 0')
  const c = await page.connect()
  await waitUntil(() => sampler.calls >= 2, 5000, 'two samples')
  c.close()
  const cards = await (feed.Updates() as Promise<string> | string)
  t.match(cards, /<polyline points="[^"]+"/)
  t.ok(feed.latest !== undefined)
})

t.test('metrics: a failing sampler logs and keeps going', async t => {
  let n = 0
  const base = fakeSampler()
  const flaky = { sample: async () => { if (n++ % 2 === 0) throw new Error('boom'); return await base.sample() } }
  const { app, feed, url } = await start(flaky as never)
  t.teardown(() => app.close())
  const c = await (await openPage(url, '/metrics')).connect()
  await c.waitFor(2)
  t.pass('events still flow')
  c.close()
  await waitUntil(() => !feed.running, 2000)
})

t.test('hub stats: published while watched, stops after', async t => {
  const app = Fastify({ logger: false })
  await app.register(htmxSse)
  const feed = new HubStatsFeed({ intervalMs: 30 })
  await app.register(hubStatsRoutes, { prefix: '/hub', feed })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const { port } = app.server.address() as { port: number }
  t.equal(feed.running, false)
  const page = await openPage(`http://127.0.0.1:${port}`, '/hub/')
  t.match(page.html, /id="hub-stats-body"/)
  t.match(page.html, /sse-connect="\/_sse\/stream\?t=[^"]*" sse-swap="message" hx-swap="none"/)
  t.equal(feed.running, false, 'rendering the page starts nothing')
  const c = await page.connect()
  await c.waitFor(2)
  t.equal(c.events[0]!.event, undefined)
  t.match(c.events[0]!.data, /^<div hx-swap-oob="innerHTML: #hub-stats-body">/)
  t.match(c.events[1]!.data, /Connections<\/dt><dd><span class="num">1</)
  c.close()
  await waitUntil(() => !feed.running, 2000, 'stats timer stopped')
})

t.test('app.close() stops the loop', async t => {
  const { app, feed, url } = await start()
  const c = await (await openPage(url, '/metrics')).connect()
  await c.waitFor(1)
  await app.close()
  t.equal(feed.running, false)
  await c.ended
})

t.test('hub stats card: run ids are never shown (they open a visitor\'s own run)', async t => {
  const html = await render(<HubStatsCard stats={{ connections: 3, topics: { 'agent:r0123456789abcdef': 1, 'agent:rfedcba9876543210': 1, 'job:9c0ffee1': 1, 'chat:lobby': 2 }, published: 0, delivered: 0, replayed: 0, writes: 0, evicted: 0, resets: 0 }} />)
  t.notMatch(html, /r0123456789abcdef|rfedcba9876543210|9c0ffee1/)
  t.match(html, 'agent:* ×2 · chat:lobby ×2 · job:* ×1')
  t.match(html, /Topics watched<\/dt><dd><span class="num">4</)
  t.equal(topicLabel('chat:lobby'), 'chat:lobby')
  t.equal(topicLabel('notifications'), 'notifications')
})
