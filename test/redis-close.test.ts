/**
 * app.close() releases everything the Redis transport opened (its blocking
 * connection, timers) and leaves the user's own client alone.
 */
import Fastify from 'fastify'
import t from 'tap'
import htmxSse from '../plugin/index.js'
import { redisTransport } from '../plugin/transports/redis.js'
import { openSse, Redis, startRedisServer } from './helpers/redis-server.js'

const connections = async (redis: Redis): Promise<string[]> =>
  (await redis.client('LIST') as string).trim().split('\n').map(line => /name=(\S*)/.exec(line)?.[1] ?? '')

const handles = (): Record<string, number> => {
  const out: Record<string, number> = {}
  for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1
  return out
}

t.test('app.close(): the duplicate connection is closed, the user client is not', async t => {
  const server = await startRedisServer()
  t.teardown(() => server.stop())
  const admin = new Redis(server.url)
  const redis = new Redis(server.url)
  t.teardown(() => { admin.disconnect(); redis.disconnect() })
  await admin.ping()
  await redis.ping()
  const baseline = await connections(admin)
  const handlesBefore = handles()

  const app = Fastify()
  await app.register(htmxSse, { heartbeatMs: false, secret: 'redis-test-secret-0123456789', transport: redisTransport({ redis, prefix: 'c' }) })
  app.get('/s', (_request, reply) => reply.sse({ topics: ['k'] }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port

  t.ok((await connections(admin)).includes('c:all:xread'), 'the transport opened its own blocking connection')
  const c = await openSse(port, '/s')
  const id = await app.sseHub.publish('k', { data: 'x' })
  await c.waitUntil(e => e.id === id)

  // A reconnect that waits on Redis while the app closes must not keep anything alive.
  await app.close()
  await c.waitFor(1)
  t.ok(c.closed, 'the stream ended')

  t.same((await connections(admin)).sort(), baseline.sort(), 'Redis sees exactly the connections from before')
  t.equal(redis.status, 'ready', 'the user client was not quit')
  t.equal(await redis.ping(), 'PONG', 'and still works')
  await t.rejects(app.sseHub.publish('k', { data: 'late' }), /closed/, 'publish after close fails clearly')
  const handlesAfter = handles()
  t.equal(handlesAfter.Timeout ?? 0, handlesBefore.Timeout ?? 0, 'no timer left behind')
  t.equal(handlesAfter.TCPSocketWrap ?? 0, handlesBefore.TCPSocketWrap ?? 0, 'no socket left behind')
})

t.test('app.close() while Redis is down and the loop waits between reconnects: it returns, bounded', async t => {
  const server = await startRedisServer()
  t.teardown(() => server.stop())
  // A long reconnect delay: the blocking connection sits in 'reconnecting' with the loop's command queued.
  const redis = new Redis(server.url, { maxRetriesPerRequest: 1, retryStrategy: () => 3000 })
  redis.on('error', () => {})
  t.teardown(() => redis.disconnect())
  const app = Fastify()
  await app.register(htmxSse, { heartbeatMs: false, secret: 'redis-test-secret-0123456789', transport: redisTransport({ redis, prefix: 'd', publishTimeoutMs: 300, blockMs: 200 }) })
  await app.ready()
  await server.kill()
  for (const wait of [300, 700, 1500]) {
    await new Promise(resolve => setTimeout(resolve, wait))
  }
  const started = Date.now()
  await app.close()
  t.ok(Date.now() - started < 10_000, `app.close() returned (${Date.now() - started} ms)`)
})
