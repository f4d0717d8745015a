/**
 * An instance cut off from Redis while more events were published than the
 * firehose keeps: it cannot deliver them live any more, so its subscribers are
 * closed (resync) and come back through replay from the topic's history —
 * never a silent skip.
 */
import Fastify from 'fastify'
import t from 'tap'
import htmxSse from '../plugin/index.js'
import { redisTransport } from '../plugin/transports/redis.js'
import { openSse, Redis, startRedisServer } from './helpers/redis-server.js'
import { waitUntil } from './helpers/sse-client.js'

t.test('firehose trimmed past an instance: its subscribers are closed, then replayed exactly', async t => {
  const server = await startRedisServer()
  const clients: Redis[] = []
  const client = (): Redis => {
    const c = new Redis(server.url)
    c.on('error', () => {})
    clients.push(c)
    return c
  }
  t.teardown(async () => {
    for (const c of clients) c.disconnect()
    await server.stop()
  })
  const admin = client()
  // Small radix nodes, so `MAXLEN ~ 8` really trims this short firehose.
  await admin.config('SET', 'stream-node-max-entries', '4')

  const start = async (): Promise<{ app: ReturnType<typeof Fastify>, port: number }> => {
    const app = Fastify()
    await app.register(htmxSse, { heartbeatMs: false, secret: 'redis-test-secret-0123456789', transport: redisTransport({ redis: client(), firehose: 8 }) })
    app.get('/s', (_request, reply) => reply.sse({ topics: ['g'] }))
    await app.listen({ port: 0, host: '127.0.0.1' })
    t.teardown(() => app.close())
    return { app, port: (app.server.address() as { port: number }).port }
  }
  const a = await start()
  const b = await start()

  const c = await openSse(b.port, '/s?topics=g')
  t.teardown(() => c.close())
  for (let i = 0; i < 3; i++) await a.app.sseHub.publish('g', { data: `before ${i}` })
  await c.waitFor(3)

  // Cut every live-delivery loop off; while they reconnect, publish far more than the firehose keeps.
  const list = String(await admin.client('LIST'))
  const loops = list.split('\n').filter(line => line.includes('cmd=xread')).map(line => /id=(\d+)/.exec(line)![1]!)
  t.ok(loops.length >= 2, `found ${loops.length} XREAD loops to cut`)
  for (const id of loops) await admin.client('KILL', 'ID', id)
  const missed: string[] = []
  for (let i = 0; i < 40; i++) missed.push(await a.app.sseHub.publish('g', { data: `gap ${i}` }))
  t.ok(Number(await admin.xlen('sse:all')) < 40, 'the firehose no longer holds what B missed')

  await waitUntil(() => c.closed, 10_000, 'B to close its subscriber instead of skipping events')
  t.same(c.events.map(e => e.data), ['before 0', 'before 1', 'before 2'], 'nothing after the gap was delivered on the old connection')

  const again = await openSse(b.port, '/s?topics=g', { 'last-event-id': c.events.at(-1)!.id! })
  t.teardown(() => again.close())
  await again.waitFor(40, 10_000)
  t.same(again.events.map(e => e.id), missed, 'the reconnect is replayed every missed event once, in order')
  t.equal(again.events.filter(e => e.event === 'reset').length, 0, 'from history, no reset')
})
