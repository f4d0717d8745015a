/**
 * Issue 24, items 1 and 3 with Redis (a real redis-server, killed and started
 * again): the example app's `/healthz` is 503 while Redis is down and 200
 * once live delivery is back, `/prometheus` counts the reconnect, and the
 * live loop's lag is 0 once this instance delivered what another published
 * (NaN while Redis cannot be asked).
 */
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../example-app/app.js'
import { redisTransport } from '../plugin/transports/redis.js'
import { fakeSampler } from './helpers/routes.js'
import { liveUrl } from './helpers/live-page.js'
import { scrape } from './helpers/prometheus.js'
import { hubInstance, Redis, startRedisServer } from './helpers/redis-server.js'
import { connect, request, until } from './helpers/sse-client.js'

const SECRET = 'redis-test-secret-0123456789'

async function dashboard (t: Test, url: string): Promise<{ app: FastifyInstance, base: string }> {
  const redis = new Redis(url)
  redis.on('error', () => {})
  t.teardown(() => redis.disconnect())
  const { app } = await buildApp({
    transport: redisTransport({ redis, publishTimeoutMs: 500, blockMs: 500 }),
    sampler: fakeSampler(),
    logLevel: false,
    heartbeatMs: false,
    secret: SECRET
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  return { app, base: `http://127.0.0.1:${(app.server.address() as { port: number }).port}` }
}

const health = async (base: string): Promise<{ status: number, body: { ready: boolean, reason?: string } }> => {
  const res = await request(`${base}/healthz`)
  return { status: res.status, body: JSON.parse(res.body) }
}

t.test('Redis restarts: /healthz 503 while it is down, 200 after; one reconnect counted; lag 0 once caught up', async t => {
  const server = await startRedisServer()
  t.teardown(() => server.stop())
  const { base } = await dashboard(t, server.url)
  const other = await hubInstance(t, server.url, { blockMs: 500 })

  t.same(await health(base), { status: 200, body: { ready: true } }, 'ready with Redis up')
  const page = await request(`${base}/notifications/`)
  const client = await connect(liveUrl(base, page.body)!)
  t.teardown(() => client.close())
  for (let i = 0; i < 5; i++) await other.app.sseHub.publish('notifications', { data: `<p id="n-${i}">from the other instance</p>` })
  await client.waitFor(5, 10_000)
  const up = await scrape(`${base}/prometheus`)
  t.equal(up.value('htmx_sse_redis_lag_events'), 0, 'nothing Redis accepted is left to deliver here')
  t.equal(up.value('htmx_sse_redis_reconnects_total'), 0)
  t.ok(up.value('htmx_sse_delivered_total')! >= 5, 'the other instance\'s events were delivered here')

  await server.kill()
  await until('/healthz answers 503', async () => (await health(base)).status === 503, 10_000)
  const down = await health(base)
  t.equal(down.body.ready, false)
  t.match(down.body.reason, /^redis /, `with a reason: ${down.body.reason}`)
  const blind = await scrape(`${base}/prometheus`)
  t.equal(blind.status, 200, 'metrics are still served while Redis is down')
  t.ok(Number.isNaN(blind.value('htmx_sse_redis_lag_events')), 'the lag is unknown (NaN), not a stale figure')

  await server.start()
  await until('/healthz answers 200 again', async () => (await health(base)).status === 200, 20_000, 50)
  t.same((await health(base)).body, { ready: true })
  const back = await scrape(`${base}/prometheus`)
  t.equal(back.value('htmx_sse_redis_reconnects_total'), 1, 'one outage, one reconnect')
  t.ok(back.value('htmx_sse_redis_lag_events')! >= 0, 'the lag is known again')
})

t.test('only the live loop\'s connection drops: not ready until live delivery is back, though publishes still work', async t => {
  const server = await startRedisServer()
  t.teardown(() => server.stop())
  const { app, base } = await dashboard(t, server.url)
  const admin = new Redis(server.url)
  t.teardown(() => admin.disconnect())
  const list = await admin.client('LIST') as string
  const loop = list.split('\n').filter(line => / name=sse:all:xread /.test(line)).map(line => /^id=(\d+) /.exec(line)![1]!)
  t.equal(loop.length, 1, 'one live-loop connection')
  await admin.client('KILL', 'ID', loop[0]!)
  // The app's own client stays connected: whatever is not ready now is the live loop.
  let reason: string | undefined
  await until('/healthz answers 503', async () => {
    const h = await health(base)
    reason = h.body.reason
    return h.status === 503
  }, 5000, 2)
  t.equal(reason, 'redis live delivery is reconnecting')
  await until('/healthz answers 200 again', async () => (await health(base)).status === 200, 20_000, 20)
  const s = await scrape(`${base}/prometheus`)
  t.equal(s.value('htmx_sse_redis_reconnects_total'), 1)
  t.match(await app.sseHub.publish('notifications', { data: '<p id="n-x">after</p>' }), /^\d+$/)
})

t.test('Redis unreachable at start: not ready until live delivery has started', async t => {
  const server = await startRedisServer()
  t.teardown(() => server.stop())
  await server.kill()
  const { base } = await dashboard(t, server.url)
  const before = await health(base)
  t.equal(before.status, 503)
  t.match(before.body.reason, /^redis /, `not ready: ${before.body.reason}`)
  await server.start()
  await until('/healthz answers 200', async () => (await health(base)).status === 200, 20_000, 50)
  const s = await scrape(`${base}/prometheus`)
  t.equal(s.value('htmx_sse_redis_reconnects_total'), 1, 'live delivery started once Redis answered')
})
