/**
 * Redis dies (kill -9, no persistence: it comes back empty) and comes back:
 * publishes fail clearly and boundedly, SSE clients stay connected, nothing
 * crashes, each instance reconnects by itself, ids keep growing.
 */
import t from 'tap'
import { hubInstance, openSse, startRedisServer, type RedisServer, type SseClient } from './helpers/redis-server.js'
import { eventually, waitUntil } from './helpers/sse-client.js'

const PUBLISH_TIMEOUT = 500
const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))
const instance = (t: Parameters<typeof hubInstance>[0], url: string): ReturnType<typeof hubInstance> =>
  hubInstance(t, url, { publishTimeoutMs: PUBLISH_TIMEOUT, blockMs: 1000 }, { logs: true })
const until = (what: string, cond: () => boolean): Promise<void> => waitUntil(cond, 10_000, what)

t.test('outage: bounded clear failures, clients stay, automatic recovery, ids never go back', async t => {
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })

  const server: RedisServer = await startRedisServer()
  t.teardown(() => server.stop())
  const a = await instance(t, server.url)
  const b = await instance(t, server.url)
  const sse = async (port: number, path: string, headers?: Record<string, string>): Promise<SseClient> => {
    const c = await openSse(port, path, headers)
    t.teardown(() => c.close())
    return c
  }
  const ca = await sse(a.port, '/s?topics=o')
  const cb = await sse(b.port, '/s?topics=o')
  const before: string[] = []
  for (let i = 0; i < 3; i++) before.push(await a.app.sseHub.publish('o', { data: `before${i}` }))
  await ca.waitFor(3)
  await cb.waitFor(3)

  await server.kill()

  for (const [name, inst] of [['A', a], ['B', b]] as const) {
    const attempt = inst.app.sseHub.publish('o', { data: 'lost' })
    const bound = sleep(PUBLISH_TIMEOUT + 5000).then(() => 'no answer')
    const outcome = await Promise.race([attempt.then(() => 'accepted', (err: Error) => err), bound])
    t.type(outcome, Error, `${name}: publish rejects within the bound`)
    t.match((outcome as Error).message, /^redis unavailable: publish to topic "o"/, `${name}: clear message`)
  }
  await until('both loops to notice the outage', () =>
    [a, b].every(i => i.logs.some(l => l.level === 40 && /Redis unavailable/.test(l.msg))))

  // A reconnect during the outage: the stream opens and gets a reset, nothing throws.
  const during = await sse(b.port, '/s?topics=o', { 'last-event-id': before[1]! })
  const [reset] = await during.waitFor(1)
  t.equal(reset!.event, 'reset', 'reconnect during the outage: reset, not a failure')

  t.notOk(ca.closed, 'A client still connected during the outage')
  t.notOk(cb.closed, 'B client still connected during the outage')

  await server.start()

  // Both instances reconnect by themselves; the first publishes may still race the reconnect.
  const after: string[] = []
  after.push(await eventually('publish on A after restart', () => a.app.sseHub.publish('o', { data: 'after0' })))
  after.push(await eventually('publish on B after restart', () => b.app.sseHub.publish('o', { data: 'after1' })))
  for (let i = 2; i < 6; i++) after.push(await (i % 2 === 0 ? a : b).app.sseHub.publish('o', { data: `after${i}` }))
  t.ok(Number(after[0]) > Number(before.at(-1)), 'ids keep growing although Redis lost its counter')

  for (const [name, c] of [['A', ca], ['B', cb], ['reset during outage', during]] as const) {
    await c.waitUntil(e => e.id === after.at(-1))
    const got = c.events.filter(e => e.event !== 'reset').map(e => e.id)
    t.same(got, name === 'reset during outage' ? after : [...before, ...after], `${name}: same connection, every accepted event once, in order`)
    t.notOk(c.closed, `${name}: never closed`)
  }

  // A client holding an id from before the data loss cannot be replayed: reset.
  const stale = await sse(a.port, '/s?topics=o', { 'last-event-id': before[2]! })
  const [first] = await stale.waitFor(1)
  t.equal(first!.event, 'reset', 'pre-loss id: reset')
  t.equal(first!.id, after.at(-1), 'reset carries the new head')

  for (const [name, inst] of [['A', a], ['B', b]] as const) {
    await until(`${name} to log recovery`, () => inst.logs.some(l => l.level === 30 && /reachable again/.test(l.msg)))
    t.equal(inst.logs.filter(l => /Redis unavailable/.test(l.msg)).length, 1, `${name}: one warning for the outage`)
  }
  t.same(unhandled, [], 'no unhandled rejection')
})

t.test('Redis down when the app starts: it still starts, then catches up by itself', async t => {
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })

  const server = await startRedisServer()
  t.teardown(() => server.stop())
  await server.kill()
  const a = await instance(t, server.url)
  t.ok(a.logs.some(l => l.level === 40 && /Redis unavailable/.test(l.msg)), 'start warned instead of failing')
  const c = await openSse(a.port, '/s?topics=o')
  t.teardown(() => c.close())
  await t.rejects(a.app.sseHub.publish('o', { data: 'nope' }), /^redis unavailable: publish to topic "o" not accepted: connection is/)

  await server.start()
  const first = await eventually('publish after Redis came up', () => a.app.sseHub.publish('o', { data: 'first' }))
  const second = await a.app.sseHub.publish('o', { data: 'second' })
  await c.waitUntil(e => e.id === second)
  t.same(c.events.map(e => [e.id, e.data]), [[first, 'first'], [second, 'second']], 'the first event published here is delivered here too')
  t.same(unhandled, [])
})
