import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { setTimeout as sleep } from 'node:timers/promises'
import { connect, request, waitUntil, type SseClient } from './helpers/sse-client.js'
import { activeTimers, startApp } from './helpers/app.js'
import { MemoryTransport } from '../plugin/transports/memory.js'

const topicsRoute = (app: import('fastify').FastifyInstance): void => {
  app.get('/stream', (req, reply) => {
    const topics = String((req.query as { topics?: string }).topics ?? 'a').split(',')
    return reply.sse({ topics })
  })
}

/** An app (no heartbeat) with `n` clients subscribed to `topic`. */
async function subscribed (t: Test, n: number, topic: string): Promise<{ app: FastifyInstance, clients: SseClient[] }> {
  const { app, url } = await startApp({ heartbeatMs: false }, topicsRoute)
  t.teardown(() => app.close())
  const clients: SseClient[] = []
  for (let i = 0; i < n; i++) clients.push(await connect(`${url}/stream?topics=${topic}`))
  await waitUntil(() => app.sseHub.stats().topics[topic] === n)
  return { app, clients }
}

t.test('publish renders once and sends the same bytes to every subscriber', async t => {
  const { app, clients } = await subscribed(t, 50, 'news')
  let renders = 0
  async function Card ({ title }: { title: string }): Promise<string> {
    renders++
    await sleep(1)
    return <article class='card'><h2 safe>{title}</h2></article>
  }
  const id = await app.sseHub.publish('news', { event: 'card', data: <Card title='<hello & "world">' /> })
  await Promise.all(clients.map(c => c.waitFor(1)))
  t.equal(renders, 1, 'the component rendered once for 50 subscribers')
  const bodies = new Set(clients.map(c => c.raw().replace(/^retry: \d+\n\n/, '')))
  t.equal(bodies.size, 1, 'every subscriber got byte-identical event text')
  t.equal([...bodies][0], `event: card\nid: ${id}\ndata: <article class="card"><h2>&lt;hello &amp; &#34;world&#34;></h2></article>\n\n`)
  t.equal(app.sseHub.stats().published, 1)
})

t.test('stats().writes: events published in one turn reach each socket in one write', async t => {
  const { app, clients } = await subscribed(t, 5, 'w')
  await sleep(20)
  const before = app.sseHub.stats()
  // Awaited in one turn: the in-process transport resolves each publish in a microtask.
  for (let i = 0; i < 10; i++) await app.sseHub.publish('w', { data: `e${i}` })
  await Promise.all(clients.map(c => c.waitFor(10)))
  const after = app.sseHub.stats()
  t.equal(after.delivered - before.delivered, 50, '10 events to each of 5 sockets')
  t.equal(after.writes - before.writes, 5, 'one write per socket')
})

t.test('one connection, many topics: hub-assigned ids increase across topics', async t => {
  const { app, url } = await startApp({}, topicsRoute)
  t.teardown(() => app.close())
  const c = await connect(`${url}/stream?topics=a,b,c`)
  await waitUntil(() => app.sseHub.stats().connections === 1)
  const published: string[] = []
  for (let i = 0; i < 30; i++) published.push(await app.sseHub.publish(['a', 'b', 'c', 'other'][i % 4]!, { event: 'e', data: String(i) }))
  await c.waitFor(23)
  const ids = c.events.map(e => Number(e.id))
  t.same(c.events.map(e => e.data), [...Array(30).keys()].filter(i => i % 4 !== 3).map(String), 'only subscribed topics, in order')
  t.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]!), 'ids strictly increase')
  t.same(app.sseHub.stats().topics, { a: 1, b: 1, c: 1 })
})

t.test('replay: every missed event once, in order, then live — no gap or duplicate at the seam', async t => {
  const { app, url } = await startApp({ history: 10_000 }, topicsRoute)
  t.teardown(() => app.close())
  const state = { publishing: true }
  const published: number[] = []
  const publisher = (async () => {
    let i = 0
    while (state.publishing) {
      const id = await app.sseHub.publish(i % 3 === 2 ? 'y' : 'x', { event: 'e', data: String(i) })
      published.push(Number(id))
      i++
      if (i % 5 === 0) await sleep(1)
    }
  })()
  const received: number[] = []
  let lastId: string | undefined
  for (let round = 0; round < 15; round++) {
    const headers: Record<string, string> = lastId === undefined ? {} : { 'last-event-id': lastId }
    const query = round % 2 === 0 || lastId === undefined ? '' : `&lastEventId=${lastId}`
    const c = await connect(`${url}/stream?topics=x,y${query}`, round % 2 === 0 ? { headers } : {})
    await c.waitFor(5 + (round % 4) * 7)
    c.close()
    await c.ended
    // Only fully received events count; whatever was in flight is replayed next time.
    for (const e of c.events) received.push(Number(e.id))
    lastId = c.events.at(-1)!.id
    t.equal(c.events.filter(e => e.event === 'reset').length, 0, `round ${round}: no reset`)
  }
  state.publishing = false
  await publisher
  const first = published.indexOf(received[0]!)
  t.ok(first >= 0)
  const expected = published.slice(first, first + received.length)
  t.same(received, expected, `${received.length} events over 15 connections: exactly the published sequence`)
  t.ok(app.sseHub.stats().replayed > 0, 'some of them came from replay')
})

t.test('history too short or unknown id: one reset event first, then live', async t => {
  const { app, url } = await startApp({ history: 5 }, topicsRoute)
  t.teardown(() => app.close())
  const ids: string[] = []
  for (let i = 0; i < 20; i++) ids.push(await app.sseHub.publish('a', { data: String(i) }))
  for (const stale of [ids[2]!, '12345', 'not-an-id', String(Number(ids[19]) + 1000)]) {
    const c = await connect(`${url}/stream?topics=a`, { headers: { 'last-event-id': stale } })
    await waitUntil(() => c.events.length >= 1)
    await app.sseHub.publish('a', { data: 'live' })
    await c.waitFor(2)
    t.equal(c.events[0]!.event, 'reset', `stale id ${stale}: reset first`)
    t.equal(c.events.filter(e => e.event === 'reset').length, 1)
    t.equal(c.events[1]!.data, 'live')
    t.ok(Number(c.events[0]!.id) < Number(c.events[1]!.id), 'the reset carries the head id, so the next reconnect resumes')
    c.close()
  }
  // Within history: exact replay, no reset.
  const tail: string[] = []
  for (let i = 0; i < 3; i++) tail.push(await app.sseHub.publish('a', { data: `tail ${i}` }))
  const recent = await connect(`${url}/stream?topics=a&lastEventId=${tail[0]!}`)
  await recent.waitFor(2)
  t.same(recent.events.slice(0, 2).map(e => e.data), ['tail 1', 'tail 2'])
  recent.close()
  t.equal(app.sseHub.stats().resets, 4)
})

t.test('a page rendered from history() and connecting later misses nothing', async t => {
  const { app, url } = await startApp({}, topicsRoute)
  t.teardown(() => app.close())
  for (let i = 0; i < 3; i++) await app.sseHub.publish('feed', { data: `old ${i}` })
  const history = await app.sseHub.history('feed', { limit: 2 })
  t.same(history.map(m => m.data), ['old 1', 'old 2'], 'newest events, oldest first')
  const newest = history.at(-1)!.id
  // Published after the page was rendered, before its EventSource connects:
  await app.sseHub.publish('feed', { data: 'between render and connect' })
  const c = await connect(`${url}/stream?topics=feed&lastEventId=${newest}`)
  await waitUntil(() => c.events.length === 1)
  await app.sseHub.publish('feed', { data: 'live' })
  await c.waitFor(2)
  t.same(c.events.map(e => e.data), ['between render and connect', 'live'])
  t.equal(await app.sseHub.head(), c.events[1]!.id)
  c.close()
})

t.test('authorize, topic validation and connection limits refuse before any stream byte', async t => {
  const { app, url } = await startApp({
    maxConnections: 4,
    maxConnectionsPerIp: 3,
    authorize: async (req, topics) => {
      await sleep(1)
      return req.headers['x-user'] === 'admin' || !topics.includes('secret')
    }
  }, topicsRoute)
  t.teardown(() => app.close())
  const forbidden = await request(`${url}/stream?topics=news,secret`)
  t.equal(forbidden.status, 403)
  t.notMatch(forbidden.headers['content-type'] ?? '', /event-stream/)
  t.match(JSON.parse(forbidden.body).message, /not authorized/)
  const allowed = await connect(`${url}/stream?topics=secret`, { headers: { 'x-user': 'admin' } })
  t.equal(allowed.status, 200)

  const bad = await request(`${url}/stream?topics=${encodeURIComponent('bad topic!')}`)
  t.equal(bad.status, 400)
  t.match(JSON.parse(bad.body).message, /invalid topic "bad topic!"/)
  const tooMany = await request(`${url}/stream?topics=${[...Array(33).keys()].map(i => `t${i}`).join(',')}`)
  t.equal(tooMany.status, 400)
  t.match(JSON.parse(tooMany.body).message, /at most 32 topics/)
  const empty = await request(`${url}/stream?topics=`)
  t.equal(empty.status, 400)

  const more = [await connect(`${url}/stream?topics=a`), await connect(`${url}/stream?topics=a`)]
  const perIp = await request(`${url}/stream?topics=a`)
  t.equal(perIp.status, 503, 'a 4th stream from one address is refused')
  t.equal(perIp.headers['retry-after'], '5')
  t.match(JSON.parse(perIp.body).message, /from this address/)
  for (const c of [allowed, ...more]) c.close()
  await waitUntil(() => app.sseHub.stats().connections === 0)
  t.equal(app.sseHub.stats().connections, 0)
  await t.rejects(app.sseHub.publish('bad topic', { data: 'x' }), { code: 'HTMX_SSE_INVALID_TOPICS' })
  await t.rejects(app.sseHub.publish('a', { event: 'x\ny', data: 'x' }), { code: 'HTMX_SSE_INVALID_EVENT', message: /"event"/ })
  await t.rejects(app.sseHub.publish('a', { data: 'x', id: '5' } as never), /assigns ids/)
})

t.test('maxConnections: 503 with Retry-After', async t => {
  const { app, url } = await startApp({ maxConnections: 2 }, topicsRoute)
  t.teardown(() => app.close())
  const a = await connect(`${url}/stream`)
  const b = await connect(`${url}/stream`)
  const c = await request(`${url}/stream`)
  t.equal(c.status, 503)
  t.equal(c.headers['retry-after'], '5')
  a.close(); b.close()
})

t.test('10,000 connect/disconnect cycles leave no subscription, stream or timer behind', async t => {
  const transport = new MemoryTransport({ history: 10 })
  const { app, url } = await startApp({ transport, heartbeatMs: 50 }, topicsRoute)
  t.teardown(() => app.close())
  const timersBefore = activeTimers()
  const listenersBefore = app.server.listenerCount('connection') + app.server.listenerCount('request')
  const cycles = 10_000
  const concurrency = 100
  let done = 0
  await Promise.all([...Array(concurrency).keys()].map(async worker => {
    for (let i = worker; i < cycles; i += concurrency) {
      const c = await connect(`${url}/stream?topics=a,b${i % 7}`)
      if (i % 10 === 0) await c.waitUntil(() => c.retries.length > 0)
      c.close()
      await c.ended
      done++
    }
  }))
  t.equal(done, cycles)
  await waitUntil(() => app.sseHub.stats().connections === 0, 5000, 'all subscriptions gone')
  t.same(app.sseHub.stats().topics, {}, 'no topic keeps a subscriber set')
  await sleep(120)
  t.ok(activeTimers() <= timersBefore, `no timers left behind (${activeTimers()} vs ${timersBefore}); the heartbeat stops with the last stream`)
  t.equal(app.server.listenerCount('connection') + app.server.listenerCount('request'), listenersBefore, 'no server listeners added')
})

t.test('a transport that fails during replay: the stream closes (client retries), nothing crashes', async t => {
  class Flaky extends MemoryTransport {
    override async since (): Promise<never> { throw new Error('store unavailable') }
  }
  const errors: string[] = []
  const { app, url } = await startApp({ transport: new Flaky() }, topicsRoute, {
    logger: { level: 'error', stream: { write: (l: string) => { errors.push(JSON.parse(l).msg) } } }
  })
  t.teardown(() => app.close())
  const id = await app.sseHub.publish('a', { data: 'x' })
  const c = await connect(`${url}/stream?topics=a&lastEventId=${id}`)
  await c.ended
  t.same(c.events, [], 'no event was sent out of order')
  t.ok(errors.some(m => /replay failed/.test(m)), 'the failure was logged')
  t.equal(app.sseHub.stats().connections, 0)
})
