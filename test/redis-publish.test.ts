/**
 * Publishing over Redis under a burst and around an outage: publishes not
 * awaited one by one are all accepted on a healthy Redis and delivered once,
 * in order, everywhere; a publish reply does not grow with the publishes in
 * flight; a rejection says truthfully whether the event was applied. (That
 * calls waiting for the connection add no listener each: redis-call-layer.)
 */
import t from 'tap'
import { redisTransport } from '../plugin/transports/redis.js'
import { fileRedis, hubInstance, openSse, Redis, type HubInstance, type SseClient } from './helpers/redis-server.js'

const server = fileRedis(t)
const client = server.client

async function outputBytes (admin: Redis): Promise<number> {
  const info = await admin.info('stats')
  return Number(/total_net_output_bytes:(\d+)/.exec(info)![1])
}

/** `count` publishes on `inst`, one per setImmediate, none awaited before the next is issued. */
async function burst (inst: HubInstance, topic: string, count: number, size: number): Promise<Array<PromiseSettledResult<string>>> {
  const pending: Array<Promise<string>> = []
  for (let i = 0; i < count; i++) {
    pending.push(inst.app.sseHub.publish(topic, { data: `${i} `.padEnd(size, 'x') }))
    await new Promise(resolve => setImmediate(resolve))
  }
  return await Promise.allSettled(pending)
}

t.test('un-awaited bursts from two instances: none rejected, every event once and in order on both, replies that do not grow with what is in flight', async t => {
  const admin = client()
  const a = await hubInstance(t, server.url, { prefix: 'b1' })
  const b = await hubInstance(t, server.url, { prefix: 'b1' })
  const onA = await openSse(a.port, '/s?topics=burst')
  const onB = await openSse(b.port, '/s?topics=burst')
  t.teardown(() => { onA.close(); onB.close() })

  const N = 2000
  const SIZE = 256
  const before = await outputBytes(admin)
  const [fromA, fromB] = await Promise.all([burst(a, 'burst', N, SIZE), burst(b, 'burst', N / 2, SIZE)])
  const settled = [...fromA, ...fromB]
  const rejected = settled.filter(r => r.status === 'rejected')
  t.equal(rejected.length, 0, `no publish rejected on a healthy Redis (first: ${rejected.length > 0 ? String((rejected[0] as PromiseRejectedResult).reason) : '-'})`)
  const ids = settled.filter(r => r.status === 'fulfilled').map(r => Number((r as PromiseFulfilledResult<string>).value)).sort((x, y) => x - y)

  const last = String(ids.at(-1))
  for (const [name, c] of [['A', onA], ['B', onB]] as Array<[string, SseClient]>) {
    await c.waitUntil(e => e.id === last, 20_000)
    t.same(c.events.map(e => Number(e.id)), ids, `${name}: every accepted event once, in id order`)
    t.equal(c.events.filter(e => e.event === 'reset').length, 0, `${name}: no reset`)
  }
  // What Redis sent back: each event to each instance about once (its reply
  // or the other's live read or reply), plus small replies; a reply that
  // re-read what its own instance had in flight sent hundreds of events per publish.
  const sentBack = (await outputBytes(admin)) - before
  const bound = settled.length * (SIZE + 200) * 4
  t.ok(sentBack < bound, `Redis sent ${sentBack} bytes for ${settled.length} publishes of ${SIZE} B (bound ${bound})`)
})

t.test('a reply that arrives after publishTimeoutMs on a healthy connection: the publish resolves with its id, it is not reported as failed', async t => {
  const redis = client()
  const transport = redisTransport({ redis, prefix: 'b2', publishTimeoutMs: 300 })
  const delivered: string[] = []
  await transport.start(m => delivered.push(m.id), undefined as never)
  t.teardown(() => transport.close())
  await transport.publish('t', { data: 'warm' })

  const attempt = transport.publish('t', { data: 'late reply' })
  const outcome = attempt.then(id => ({ id }), (err: Error) => ({ err }))
  // The event loop is busy past the timeout: Redis applied the event at once,
  // but its reply is read only after the publish's timer came due.
  const until = Date.now() + 700
  while (Date.now() < until) { /* busy */ }
  const result = await outcome
  const stored = (await redis.xrange('b2:t:t', '-', '+')).map(([sid]) => sid.split('-')[0])
  t.notOk('err' in result, `not rejected: ${'err' in result ? result.err.message : ''}`)
  if ('id' in result) t.ok(stored.includes(result.id), 'and it is in Redis')
  t.equal(stored.length, 2)
})

t.test('a publish Redis refuses after its deadline: the rejection says not accepted, and nothing was applied', async t => {
  const redis = client()
  const admin = client()
  const transport = redisTransport({ redis, prefix: 'b3', publishTimeoutMs: 300 })
  await transport.start(() => {}, undefined as never)
  t.teardown(() => transport.close())
  await transport.publish('t', { data: 'warm' })

  // Redis is busy for 450 ms (a script spinning on TIME): the publish reaches it after its 300 ms deadline.
  const busy = admin.eval(`local t0 = redis.call('TIME'); local s = tonumber(t0[1]) * 1000000 + tonumber(t0[2])
    while true do local t = redis.call('TIME'); if tonumber(t[1]) * 1000000 + tonumber(t[2]) - s > 450000 then return 1 end end`, 0)
  await new Promise(resolve => setTimeout(resolve, 20))
  const err = await transport.publish('t', { data: 'too late' }).then(() => undefined, (e: Error) => e)
  await busy
  t.ok(err !== undefined, 'rejected')
  t.match(err?.message, /^redis unavailable: publish to topic "t" not accepted: publish reached Redis \d+ ms after its deadline; not applied/, 'the rejection says it was not applied')
  t.equal(await redis.xlen('b3:t:t'), 1, 'and it was not')
})
