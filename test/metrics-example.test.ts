/**
 * Issue 24, items 1 and 3 on the example app: `/prometheus` counts refused
 * live tokens (a tampered URL, an expired one), and `/healthz` answers from
 * `sseHub.ready()`, which turns false as soon as the app starts closing.
 */
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../example-app/app.js'
import { normalizeSecrets, signTopics } from '../plugin/live-token.js'
import { fakeSampler } from './helpers/routes.js'
import { liveUrl } from './helpers/live-page.js'
import { scrape } from './helpers/prometheus.js'
import { connect, request, waitUntil } from './helpers/sse-client.js'

const SECRET = 'example-metrics-secret-0123456789'

async function dashboard (t: Test, before: (app: FastifyInstance) => void = () => {}): Promise<{ app: FastifyInstance, base: string }> {
  const { app } = await buildApp({ sampler: fakeSampler(), logLevel: false, heartbeatMs: false, secret: SECRET })
  before(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  return { app, base: `http://127.0.0.1:${(app.server.address() as { port: number }).port}` }
}

t.test('token refusals: a tampered live URL is a 403 and counted as invalid, an expired one as expired', async t => {
  const { base } = await dashboard(t)
  const page = await request(`${base}/`)
  const url = new URL(liveUrl(base, page.body)!)
  const token = url.searchParams.get('t')!

  const good = await connect(url.toString())
  t.teardown(() => good.close())
  t.equal(good.status, 200, 'the page\'s own URL streams')

  // Another topic list under the page's signature: what someone editing the URL would try.
  const [version, head, , mac] = token.split('.')
  const forged = new URL(url)
  forged.searchParams.set('t', [version, head, Buffer.from('user:1').toString('base64url'), mac].join('.'))
  const refused = await request(forged.toString())
  t.equal(refused.status, 403, 'a tampered token is refused before any stream byte')
  const garbled = new URL(url)
  garbled.searchParams.set('t', token.slice(0, -2) + (token.endsWith('AA') ? 'BB' : 'AA'))
  t.equal((await request(garbled.toString())).status, 403, 'so is a wrong signature')

  const old = new URL(url)
  old.searchParams.set('t', signTopics(normalizeSecrets(SECRET), { topics: ['notifications'], htmx: 2, expires: Date.now() - 60_000 }))
  const expired = await connect(old.toString())
  t.teardown(() => expired.close())
  t.equal((await expired.waitFor(1))[0]!.event, 'reset', 'an expired token gets reset, so the tab reloads')

  const s = await scrape(`${base}/prometheus`)
  t.equal(s.status, 200)
  t.match(s.contentType, /^text\/plain; version=0\.0\.4/)
  t.equal(s.value('htmx_sse_token_refusals_total{reason="invalid"}'), 2)
  t.equal(s.value('htmx_sse_token_refusals_total{reason="expired"}'), 1)
  t.equal(s.value('htmx_sse_connections'), 1, 'the page\'s own stream (the expired one ended)')
  t.notOk(s.text.includes('htmx_sse_redis_'), 'no Redis metrics on the in-process hub')
})

t.test('/healthz: 200 while serving; sseHub.ready() is false from the moment the app starts closing', async t => {
  // A hook that runs during close after the plugin's own preClose (hooks run in the order added), before onClose.
  let during: { ready: boolean, reason?: string } | undefined
  const { app, base } = await dashboard(t, app => {
    app.addHook('preClose', async () => { during = app.sseHub.ready() })
  })
  const ok = await request(`${base}/healthz`)
  t.equal(ok.status, 200)
  t.same(JSON.parse(ok.body), { ready: true })
  t.equal(ok.headers['cache-control'], 'no-store')

  const stream = await connect(liveUrl(base, (await request(`${base}/`)).body)!)
  t.teardown(() => stream.close())
  await app.close()
  t.same(during, { ready: false, reason: 'shutting down' }, 'not ready once close() began, before the hub itself closed')
  await waitUntil(() => stream.isEnded(), 5000, 'the open stream ended by the close')
  t.same(app.sseHub.ready(), { ready: false, reason: 'shutting down' }, 'nor after')
})
