/**
 * reply.live over real sockets: signed topics, refusals before any byte,
 * expiry as a reset, key rotation, a second instance with the same secret,
 * the htmx 2 resume-script guard, and the assets the plugin serves.
 */
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { connect, request, waitUntil } from './helpers/sse-client.js'
import { startApp, type TestApp } from './helpers/app.js'
import type { HtmxSseOptions, HubTransport, LivePage } from '../plugin/index.js'

const SECRET = 'a-test-secret-of-enough-bytes'

function attrOf (html: string, name: string): string {
  const m = new RegExp(`${name.replace(':', '\\:')}="([^"]*)"`).exec(html)
  if (m === null) throw new Error(`no ${name} in ${html}`)
  return m[1]!.replace(/&amp;/g, '&').replace(/&quot;/g, '"')
}

async function liveApp (t: Test, options: HtmxSseOptions = {}): Promise<TestApp & { page: (topics: string[], o?: object) => Promise<LivePage> }> {
  let last: LivePage | undefined
  const server = await startApp({ secret: SECRET, heartbeatMs: false, ...options }, (app: FastifyInstance) => {
    app.get('/page', async (req, reply) => {
      const q = req.query as { topics: string, htmx?: string, ttlMs?: string, since?: string }
      last = await reply.live(q.topics.split(','), {
        since: q.since,
        htmx: q.htmx === undefined ? undefined : Number(q.htmx) as 2 | 4,
        ttlMs: q.ttlMs === undefined ? undefined : Number(q.ttlMs)
      })
      return last
    })
  })
  t.teardown(() => server.app.close())
  return {
    ...server,
    page: async (topics, o = {}) => {
      const q = new URLSearchParams({ topics: topics.join(','), ...Object.fromEntries(Object.entries(o).map(([k, v]) => [k, String(v)])) })
      const res = await request(`${server.url}/page?${q.toString()}`)
      t.equal(res.status, 200, res.body)
      return JSON.parse(res.body) as LivePage
    }
  }
}

/** The stream URL of a page, as its browser would request it (htmx 2 adds the resume mark). */
function streamUrl (base: string, page: LivePage, htmx: 2 | 4 = 2): string {
  const url = new URL(page.url, base)
  if (htmx === 2) url.searchParams.set('sseResume', '1')
  return url.toString()
}

t.test('a live page receives its topics, from its cursor on', async t => {
  const s = await liveApp(t)
  await s.app.sseHub.publish('orders', { data: 'before' })
  const page = await s.page(['orders', 'user:1'])
  t.match(String(page.element), /^<div hidden hx-ext="sse" sse-connect="\/_sse\/stream\?t=v1\.[^"]+" sse-swap="message" hx-swap="none"><\/div>$/)
  t.match(String(page.scripts), /src="\/_sse\/assets\/htmx\.min\.js".*src="\/_sse\/resume\.js".*src="\/_sse\/assets\/sse\.js"/)
  t.equal(attrOf(String(page.element), 'sse-connect'), page.url)
  t.equal(new URL(page.url, s.url).searchParams.get('lastEventId'), page.cursor)
  // Published after the page was rendered, before its browser connected: replayed.
  await s.app.sseHub.publish('orders', { data: 'between' })
  await s.app.sseHub.publish('other', { data: 'not mine' })
  const client = await connect(streamUrl(s.url, page))
  t.teardown(() => client.close())
  t.equal(client.status, 200)
  await s.app.sseHub.publish('user:1', { data: 'private' })
  await client.waitFor(2)
  t.same(client.events.map(e => e.data), ['between', 'private'])
})

t.test('htmx 4 pages: their own markup, reset trigger built in, no resume mark needed', async t => {
  const s = await liveApp(t, { htmx: 4 })
  const page = await s.page(['orders'])
  const el = String(page.element)
  t.match(el, /^<div hidden data-sse-connect hx-sse:connect="[^"]+" hx-swap="none"><div hidden hx-get="\/_sse\/refresh" hx-trigger="reset from:&quot;closest \[data-sse-connect\]&quot;" hx-swap="none"><\/div><\/div>$/)
  t.notMatch(el, /sse-connect=|sse-swap/)
  t.match(String(page.scripts), /src="\/_sse\/assets\/htmx4\/htmx\.min\.js".*src="\/_sse\/assets\/htmx4\/hx-sse\.js"/)
  t.notMatch(String(page.scripts), /resume/)
  const client = await connect(streamUrl(s.url, page, 4))
  t.teardown(() => client.close())
  t.equal(client.status, 200)
  // A page of the other major, in the same app (migrating page by page).
  const two = await s.page(['orders'], { htmx: 2 })
  t.match(String(two.element), /hx-ext="sse"/)
})

t.test('a token with a changed topic, signature or expiry is refused before any byte', async t => {
  const s = await liveApp(t)
  const page = await s.page(['user:1'])
  const token = new URL(page.url, s.url).searchParams.get('t')!
  const [v, head, topics, sig] = token.split('.') as [string, string, string, string]
  const forged = [
    [v, head, Buffer.from('user:2').toString('base64url'), sig],
    [v, head, topics, Buffer.alloc(32, 1).toString('base64url')],
    [v, head.slice(0, 1) + (parseInt(head.slice(1), 36) + 3600).toString(36), topics, sig],
    [v, '4' + head.slice(1), topics, sig]
  ].map(p => p.join('.'))
  for (const bad of [...forged, '', 'garbage', 'x'.repeat(5000)]) {
    const res = await request(`${s.url}/_sse/stream?sseResume=1&t=${encodeURIComponent(bad)}`)
    t.equal(res.status, 403, `refused: ${bad.slice(0, 40)}`)
    t.notMatch(String(res.headers['content-type']), /event-stream/)
    t.equal(JSON.parse(res.body).code, 'HTMX_SSE_INVALID_TOKEN')
  }
  const none = await request(`${s.url}/_sse/stream?sseResume=1`)
  t.equal(none.status, 403)
})

t.test('an expired token gets a reset (the page reloads) and the stream ends', async t => {
  const s = await liveApp(t)
  const page = await s.page(['orders'], { ttlMs: 1000 })
  // Expiry is in whole seconds, rounded up.
  await new Promise(resolve => setTimeout(resolve, 2100))
  const client = await connect(streamUrl(s.url, page))
  t.equal(client.status, 200)
  await client.ended
  t.same(client.events.map(e => e.event), ['reset'])
})

t.test('rotation: the first secret signs, every one verifies; another instance with the secret serves the page', async t => {
  const old = await liveApp(t, { secret: 'the-old-secret-1234567890' })
  const page = await old.page(['orders'])
  const rotated = await liveApp(t, { secret: ['the-new-secret-1234567890', 'the-old-secret-1234567890'] })
  const c1 = await connect(streamUrl(rotated.url, page))
  t.teardown(() => c1.close())
  t.equal(c1.status, 200)
  await rotated.app.sseHub.publish('orders', { data: 'x' })
  await c1.waitFor(1)
  const fresh = await rotated.page(['orders'])
  const onlyNew = await liveApp(t, { secret: 'the-new-secret-1234567890' })
  t.equal((await request(streamUrl(onlyNew.url, page))).status, 403, 'retired secret no longer verifies')
  const c2 = await connect(streamUrl(onlyNew.url, fresh))
  t.teardown(() => c2.close())
  t.equal(c2.status, 200, 'signed with the new secret')
})

t.test('without a secret: a random one per process; a foreign token resets instead of failing forever', async t => {
  const a = await liveApp(t, { secret: undefined })
  const b = await liveApp(t, { secret: undefined })
  const page = await a.page(['orders'])
  const ok = await connect(streamUrl(a.url, page))
  t.teardown(() => ok.close())
  t.equal(ok.status, 200)
  const other = await connect(streamUrl(b.url, page))
  await other.ended
  t.same(other.events.map(e => e.event), ['reset'], 'a page from before a restart reloads')
  t.equal((await request(`${b.url}/_sse/stream?sseResume=1&t=garbage`)).status, 403)
})

t.test('htmx 2 page without the resume script: refused loudly, not silently lossy', async t => {
  const s = await liveApp(t)
  const page = await s.page(['orders'])
  const res = await request(new URL(page.url, s.url).toString())
  t.equal(res.status, 400)
  t.match(res.body, /resume script/)
})

t.test('authorize is for reply.sse; a signed page does not ask it', async t => {
  let asked = 0
  const s = await liveApp(t, { authorize: () => { asked++; return false } })
  const page = await s.page(['orders'])
  const client = await connect(streamUrl(s.url, page))
  t.teardown(() => client.close())
  t.equal(client.status, 200)
  t.equal(asked, 0)
})

t.test('options: clear coded errors', async t => {
  const shared = { start: async () => {}, publish: async () => '1', since: async () => ({ events: [], complete: true, upTo: '0', more: false }), history: async () => [], head: async () => undefined, close: async () => {} } satisfies HubTransport
  await t.rejects(startApp({ transport: shared }), { code: 'HTMX_SSE_INVALID_OPTION', message: /secret is required with a shared transport/ })
  await t.rejects(startApp({ secret: 'short' }), { code: 'HTMX_SSE_INVALID_OPTION', message: /at least 16 bytes/ })
  await t.rejects(startApp({ secret: [] as string[] }), { code: 'HTMX_SSE_INVALID_OPTION' })
  await t.rejects(startApp({ htmx: 3 as 2 }), { code: 'HTMX_SSE_INVALID_OPTION', message: /htmx must be 2 or 4/ })
  await t.rejects(startApp({ streamPath: 'no-slash' }), { code: 'HTMX_SSE_INVALID_OPTION', message: /streamPath/ })
  const s = await liveApp(t)
  const bad = await request(`${s.url}/page?topics=${encodeURIComponent('bad topic')}`)
  t.equal(bad.status, 400)
  t.equal(JSON.parse(bad.body).code, 'HTMX_SSE_INVALID_TOPICS')
})

t.test('the plugin serves htmx and its extension for both majors, with revalidation', async t => {
  const s = await liveApp(t)
  for (const file of ['htmx.min.js', 'sse.js', 'htmx4/htmx.min.js', 'htmx4/hx-sse.js']) {
    const res = await request(`${s.url}/_sse/assets/${file}`)
    t.equal(res.status, 200, file)
    t.match(String(res.headers['content-type']), /javascript/)
    t.ok(res.body.length > 1000)
    const again = await request(`${s.url}/_sse/assets/${file}`, { headers: { 'if-none-match': String(res.headers.etag) } })
    t.equal(again.status, 304)
  }
  t.equal((await request(`${s.url}/_sse/assets/package.json`)).status, 404)
  t.equal((await request(`${s.url}/_sse/assets/../package.json`)).status, 404)
})

t.test('snapshot: the cursor is read before the items, so nothing falls between', async t => {
  const s = await liveApp(t)
  const empty = await s.app.sseHub.snapshot('chat')
  t.same(empty.items, [])
  const ids = []
  for (let i = 0; i < 5; i++) ids.push(await s.app.sseHub.publish('chat', { data: `m${i}` }))
  await s.app.sseHub.publish('other', { data: 'x' })
  const snap = await s.app.sseHub.snapshot('chat', { limit: 3 })
  t.same(snap.items.map(m => m.data), ['m2', 'm3', 'm4'])
  t.ok(Number(snap.cursor) >= Number(ids[4]))
  t.ok(Number(empty.cursor) < Number(ids[0]))
  await t.rejects(s.app.sseHub.snapshot('bad topic'), { code: 'HTMX_SSE_INVALID_TOPICS' })
})

t.test('sseHub.watch: start with the first subscriber of a topic, stop after the last', async t => {
  const s = await liveApp(t)
  const calls: string[] = []
  const unwatch = s.app.sseHub.watch('metrics', { start: () => calls.push('start'), stop: () => calls.push('stop') })
  const page = await s.page(['metrics', 'other'])
  t.same(calls, [], 'rendering a page does not start it')
  const a = await connect(streamUrl(s.url, page))
  await waitUntil(() => calls.length === 1)
  const b = await connect(streamUrl(s.url, page))
  const other = await connect(streamUrl(s.url, await s.page(['other'])))
  await new Promise(resolve => setTimeout(resolve, 50))
  t.same(calls, ['start'], 'once for many subscribers')
  a.close()
  await new Promise(resolve => setTimeout(resolve, 50))
  t.same(calls, ['start'])
  b.close()
  await waitUntil(() => calls.length === 2)
  t.same(calls, ['start', 'stop'])
  const c = await connect(streamUrl(s.url, page))
  await waitUntil(() => calls.length === 3)
  unwatch()
  t.same(calls, ['start', 'stop', 'start', 'stop'], 'unwatch stops a running watcher')
  c.close()
  other.close()
})

t.test('reply.live since: a page continues after an id it knows, not the head', async t => {
  const s = await liveApp(t)
  const first = await s.app.sseHub.publish('log', { data: 'a' })
  await s.app.sseHub.publish('log', { data: 'b' })
  const page = await s.page(['log'], { since: first })
  t.equal(page.cursor, first)
  const client = await connect(streamUrl(s.url, page))
  t.teardown(() => client.close())
  await client.waitFor(1)
  t.same(client.events.map(e => e.data), ['b'], 'exactly what came after it')
  const bad = await request(`${s.url}/page?topics=log&since=not-an-id`)
  t.equal(bad.status, 500)
  t.match(JSON.parse(bad.body), { code: 'HTMX_SSE_INVALID_OPTION', message: /since \(reply.live\) must be a hub id/ })
})
