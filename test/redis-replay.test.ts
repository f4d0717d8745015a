/**
 * Replay over Redis: a herd of reconnects with old ids is replayed in full,
 * page by page as each socket drains, while publishes keep being accepted;
 * a multi-topic replay misses nothing another instance publishes while it
 * is read.
 */
import http from 'node:http'
import t from 'tap'
import { redisTransport } from '../plugin/transports/redis.js'
import { hubInstance, openSse, Redis, startRedisServer, type RedisServer } from './helpers/redis-server.js'
import { waitUntil } from './helpers/sse-client.js'

let server: RedisServer
t.before(async () => { server = await startRedisServer() })
t.teardown(async () => { await server.stop() })

interface Replayed { ids: number[], resets: number, closed: boolean }

/** A bare SSE client that keeps only ids and resets (150 of them parse megabytes). */
function replayClient (port: number, path: string, lastEventId: string, until: (r: Replayed) => boolean): { done: Promise<Replayed>, close: () => void } {
  const result: Replayed = { ids: [], resets: 0, closed: false }
  let req: http.ClientRequest | undefined
  const done = new Promise<Replayed>(resolve => {
    req = http.get({ host: '127.0.0.1', port, path, agent: false, headers: { 'last-event-id': lastEventId } }, res => {
      res.setEncoding('utf8')
      let buffer = ''
      const finish = (): void => { res.destroy(); resolve(result) }
      res.on('data', (chunk: string) => {
        buffer += chunk
        let end
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const id = /^id: (\d+)$/m.exec(frame)?.[1]
          if (/^event: reset$/m.test(frame)) result.resets++
          else if (id !== undefined) result.ids.push(Number(id))
        }
        if (until(result)) finish()
      })
      res.on('close', () => { result.closed = true; resolve(result) })
    })
    req.on('error', () => { result.closed = true; resolve(result) })
  })
  return { done, close: () => req?.destroy() }
}

t.test('150 concurrent reconnects with old ids: all replayed in full, none reset, while publishes keep succeeding', async t => {
  const a = await hubInstance(t, server.url, { prefix: 'r1', history: 400 })
  const b = await hubInstance(t, server.url, { prefix: 'r1', history: 400 })
  const data = 'x'.repeat(2048)
  const history: number[] = []
  for (let i = 0; i < 400; i++) history.push(Number(await a.app.sseHub.publish('h', { data })))
  const from = history[19]!
  const want = history.slice(20)

  const clients = Array.from({ length: 150 }, (_, i) =>
    replayClient((i % 2 === 0 ? b : a).port, '/s?topics=h,q', String(from), r => r.resets > 0 || r.ids.length >= want.length))
  t.teardown(() => { for (const c of clients) c.close() })
  let failed = 0
  let accepted = 0
  const replaying = { on: true }
  const publishing = (async () => {
    for (let i = 0; i < 400 && replaying.on; i++) {
      await a.app.sseHub.publish('other', { data: `p${i}` }).then(() => accepted++, () => failed++)
      await new Promise(resolve => setTimeout(resolve, 5))
    }
  })()
  const results = await Promise.all(clients.map(c => c.done))
  replaying.on = false
  await publishing
  t.equal(results.filter(r => r.resets > 0).length, 0, 'no reconnect was reset')
  t.equal(results.filter(r => JSON.stringify(r.ids) === JSON.stringify(want)).length, 150, `every reconnect got the ${want.length} missed events once, in order`)
  t.ok(accepted > 0, `${accepted} publishes during the replays`)
  t.equal(failed, 0, 'no publish failed during the replays')
})

t.test('a multi-topic replay misses nothing another instance publishes between the reads of its topics', async t => {
  const a = await hubInstance(t, server.url, { prefix: 'r2' })
  const b = await hubInstance(t, server.url, { prefix: 'r2' })
  const before: string[] = []
  for (let i = 0; i < 4; i++) before.push(await b.app.sseHub.publish(i % 2 === 0 ? 'x' : 'y', { data: `before ${i}` }))
  const lastSeen = before[1]!

  // While A reads the replay of topic y, B publishes on x, then on y.
  let hook: (() => Promise<void>) | undefined
  const raced: string[] = []
  hook = async () => {
    raced.push(await b.app.sseHub.publish('x', { data: 'raced x' }))
    raced.push(await b.app.sseHub.publish('y', { data: 'raced y' }))
  }
  const evalsha = a.redis.evalsha.bind(a.redis) as (...args: unknown[]) => Promise<unknown>
  ;(a.redis as unknown as { evalsha: (...args: unknown[]) => Promise<unknown> }).evalsha = async (...args) => {
    if (hook !== undefined && args.includes('r2:t:y')) {
      const run = hook
      hook = undefined
      await run()
    }
    return await evalsha(...args)
  }

  const c = await openSse(a.port, '/s?topics=x,y', { 'last-event-id': lastSeen })
  t.teardown(() => c.close())
  await waitUntil(() => raced.length === 2, 10_000, 'the racing publishes')
  const tail = await b.app.sseHub.publish('y', { data: 'tail' })
  await c.waitUntil(e => e.id === tail)
  t.same(c.events.map(e => e.id), [...before.slice(2), ...raced, tail], 'every event after the client\'s id once, in id order')
})

t.test('a replay page never reads more than its page, whatever the history', async t => {
  const redis = new Redis(server.url)
  t.teardown(() => redis.disconnect())
  const a = await hubInstance(t, server.url, { prefix: 'r3', history: 2000 })
  const ids: string[] = []
  for (let i = 0; i < 1500; i++) ids.push(await a.app.sseHub.publish('big', { data: `e${i}` }))
  const transport = redisTransport({ redis, prefix: 'r3' })
  await transport.start(() => {}, undefined as never)
  t.teardown(() => transport.close())
  const first = await transport.since(['big', 'none'], ids[0]!, { limit: 100 })
  t.equal(first.complete, true)
  t.equal(first.events.length, 100, 'a page holds the limit')
  t.ok(first.more, 'and says more follow')
  const got = [...first.events.map(e => e.id)]
  let page = first
  for (let i = 0; i < 40 && page.more; i++) {
    page = await transport.since(['big', 'none'], got.at(-1)!, { limit: 100, upTo: first.upTo })
    t.ok(page.events.length <= 100)
    got.push(...page.events.map(e => e.id))
  }
  t.same(got, ids.slice(1), 'the pages together: every event after the id, once, in order')
})
