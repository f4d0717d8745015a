/**
 * Redis loses its data (kill -9 without persistence) while an instance has
 * not read events another instance published: those events are gone, and the
 * subscribers of that instance must learn it (`reset`), never skip them.
 */
import Fastify from 'fastify'
import t from 'tap'
import htmxSse from '../plugin/index.js'
import { redisTransport } from '../plugin/transports/redis.js'
import { hubInstance, openSse, Redis, startRedisServer } from './helpers/redis-server.js'
import { eventually, waitUntil } from './helpers/sse-client.js'

t.test('events lost with Redis before an instance read them: its subscribers get reset before the new epoch, never a silent hole', async t => {
  const server = await startRedisServer()
  t.teardown(() => server.stop())
  const a = await hubInstance(t, server.url, { publishTimeoutMs: 500, blockMs: 1000 })

  // B's live loop sends its next XREAD only when the gate is open.
  let gate: Promise<void> = Promise.resolve()
  let open = (): void => {}
  const bRedis = new Redis(server.url)
  bRedis.on('error', () => {})
  const duplicate = bRedis.duplicate.bind(bRedis)
  bRedis.duplicate = ((...args: Parameters<Redis['duplicate']>) => {
    const sub = duplicate(...args)
    const xread = sub.xread.bind(sub) as (...a: unknown[]) => Promise<unknown>
    ;(sub as unknown as { xread: (...a: unknown[]) => Promise<unknown> }).xread = async (...a) => {
      await gate
      return await xread(...a)
    }
    return sub
  }) as Redis['duplicate']
  t.teardown(() => bRedis.disconnect())
  const b = Fastify()
  await b.register(htmxSse, { heartbeatMs: false, secret: 'redis-test-secret-0123456789', transport: redisTransport({ redis: bRedis, publishTimeoutMs: 500, blockMs: 1000 }) })
  b.get('/s', (_request, reply) => reply.sse({ topics: ['e'] }))
  await b.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => b.close())
  const bPort = (b.server.address() as { port: number }).port

  const onB = await openSse(bPort, '/s')
  const onA = await openSse(a.port, '/s?topics=e')
  t.teardown(() => { onB.close(); onA.close() })
  const seen = await a.app.sseHub.publish('e', { data: 'seen by both' })
  await onB.waitUntil(e => e.id === seen)

  // Cut B's blocked XREAD; its next one waits at the gate.
  gate = new Promise(resolve => { open = resolve })
  const admin = new Redis(server.url)
  admin.on('error', () => {})
  t.teardown(() => admin.disconnect())
  const list = String(await admin.client('LIST'))
  for (const line of list.split('\n').filter(l => l.includes('cmd=xread'))) await admin.client('KILL', 'ID', /id=(\d+)/.exec(line)![1]!)
  const unread: string[] = []
  for (let i = 0; i < 5; i++) unread.push(await a.app.sseHub.publish('e', { data: `unread ${i}` }))
  await onA.waitUntil(e => e.id === unread.at(-1))

  await server.restart()
  open()
  const after: string[] = []
  after.push(await eventually('publish after the restart', () => a.app.sseHub.publish('e', { data: 'after 0' })))
  for (let i = 1; i < 3; i++) after.push(await a.app.sseHub.publish('e', { data: `after ${i}` }))

  // B either delivers the lost events (it cannot: Redis no longer has them),
  // or tells its subscriber before the first event of the new epoch.
  await waitUntil(() => onB.closed || onB.events.some(e => e.id === after.at(-1)), 15_000, 'B to deliver the new epoch or close')
  const got = onB.events.map(e => e.event === 'reset' ? 'reset' : e.id)
  const firstNew = got.indexOf(after[0]!)
  const toldBefore = onB.closed ? got.length : firstNew
  const beforeNew = got.slice(0, toldBefore)
  t.ok(unread.every(id => beforeNew.includes(id)) || beforeNew.includes('reset') || (onB.closed && firstNew < 0),
    `B's subscriber got the lost events, or a reset (or a close) before the new epoch: ${JSON.stringify(got)}`)
  t.equal(got.filter(x => x === 'reset').length, 1, 'one reset')
  if (!onB.closed) t.same(got.slice(got.indexOf('reset') + 1), after, 'then every event of the new epoch, in order')
  const reset = onB.events.find(e => e.event === 'reset')
  t.ok(reset !== undefined && Number(reset.id) < Number(after[0]), 'the reset carries an id before the new epoch\'s events')

  // A client reconnecting with the reset's id is replayed the new epoch, not reset again.
  const again = await openSse(bPort, '/s', { 'last-event-id': reset?.id ?? '0' })
  t.teardown(() => again.close())
  await again.waitFor(3)
  t.same(again.events.map(e => e.id), after, 'replayed from the reset\'s id')
})
