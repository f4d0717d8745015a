/**
 * Topics are bounded on Redis as in memory: a topic nobody publishes to
 * expires (its history, then its mark), and a client whose topic expired with
 * events after its id gets `reset` on replay, never a silent hole; a client
 * of a topic that had nothing after its id is replayed as usual.
 */
import t from 'tap'
import { hubInstance, openSse, Redis, startRedisServer } from './helpers/redis-server.js'
import { until } from './helpers/sse-client.js'

t.test('idle topics expire from Redis; their clients get reset, never a hole', async t => {
  const server = await startRedisServer()
  t.teardown(() => server.stop())
  const admin = new Redis(server.url)
  t.teardown(() => admin.disconnect())
  const TTL = 400
  const a = await hubInstance(t, server.url, { prefix: 'x', topicTtlMs: TTL })
  const keys = async (pattern: string): Promise<string[]> => await admin.keys(pattern)

  const start = await a.app.sseHub.head()
  const rooms: string[] = []
  for (let i = 0; i < 300; i++) rooms.push(await a.app.sseHub.publish(`room${i}`, { data: `post ${i}` }))
  t.equal((await keys('x:t:*')).length, 300, '300 topic streams')

  // While the mark is kept: exact answers for an expired stream.
  await until('the streams to expire', async () => (await keys('x:t:*')).length === 0, 10_000)
  const stale = await openSse(a.port, '/s?topics=room7', { 'last-event-id': start! })
  const current = await openSse(a.port, '/s?topics=room7', { 'last-event-id': rooms[7]! })
  t.teardown(() => { stale.close(); current.close() })
  const [reset] = await stale.waitFor(1)
  t.equal(reset!.event, 'reset', 'a client that missed an event of the expired topic: reset')
  const live = await a.app.sseHub.publish('room7', { data: 'again' })
  await current.waitUntil(e => e.id === live)
  t.same(current.events.map(e => e.id), [live], 'a client that had seen its last event: no reset, live events')

  // After the marks expire too, only a few keys are left, however many topics there were.
  await until('the marks to expire', async () => (await keys('x:m:*')).length <= 1, 10_000)
  const fresh = await a.app.sseHub.publish('lobby', { data: 'hello' })
  const left = await keys('x:*')
  t.ok(left.length <= 10, `keys left: ${left.length} (${left.join(' ')})`)

  const gone = await openSse(a.port, '/s?topics=room9', { 'last-event-id': rooms[8]! })
  t.teardown(() => gone.close())
  const [first] = await gone.waitFor(1)
  t.equal(first!.event, 'reset', 'an id older than the expired topic\'s last event, mark gone too: reset')

  const never = await openSse(a.port, '/s?topics=never-used', { 'last-event-id': fresh })
  t.teardown(() => never.close())
  const next = await a.app.sseHub.publish('never-used', { data: 'first' })
  await never.waitUntil(e => e.id === next)
  t.same(never.events.map(e => e.id), [next], 'a topic without events after a recent id: no reset')
})
