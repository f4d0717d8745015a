/**
 * RedisRunStore over a real redis-server: the RunStore contract (as the
 * memory store), instances racing for the same change, state read by a new
 * client (a restarted instance), and a clear, bounded error while Redis is down.
 */
import t from 'tap'
import { Redis } from 'ioredis'
import { RedisRunStore } from '../routes/run-store-redis.js'
import { aRun, runStoreContract } from './helpers/run-store-contract.js'
import { startRedisServer } from './helpers/redis-server.js'

const server = await startRedisServer()
const clients: Redis[] = []
function client (options: { keyPrefix?: string, maxRetriesPerRequest?: number | null } = {}): Redis {
  const redis = new Redis(server.url, { lazyConnect: false, ...options })
  redis.on('error', () => {})
  clients.push(redis)
  return redis
}
t.teardown(async () => {
  for (const c of clients) c.disconnect()
  await server.stop()
})

let n = 0
const shared = client()
runStoreContract(t, async () => new RedisRunStore({ redis: shared, prefix: `c${++n}` }))

t.test('two instances race: exactly one interrupts an expired run, the bound holds', async t => {
  const a = new RedisRunStore({ redis: client(), prefix: 'race' })
  const b = new RedisRunStore({ redis: client(), prefix: 'race' })
  for (let i = 0; i < 20; i++) await a.create(aRun(`x${i}`, { leaseUntil: 100, startedAt: i }), 100)
  const wins = await Promise.all(Array.from({ length: 20 }, async (_, i) => await Promise.all([a.interrupt(`x${i}`, 200), b.interrupt(`x${i}`, 200)])))
  t.same(wins.map(pair => pair.filter(r => r !== undefined).length), Array(20).fill(1), 'one winner for every run')
  t.same(await a.expired('job', 300), [], 'none left running')

  // Both create at a bound of 3 filled with running runs: both refused, nothing dropped.
  const c = new RedisRunStore({ redis: client(), prefix: 'bound' })
  const d = new RedisRunStore({ redis: client(), prefix: 'bound' })
  for (const id of ['r1', 'r2']) await c.create(aRun(id), 3)
  const both = await Promise.all([c.create(aRun('p', { startedAt: 5 }), 3), d.create(aRun('q', { startedAt: 6 }), 3)])
  t.same(both.map(r => r.created).sort(), [false, true], 'the last free place goes to one of them')
  t.equal((await c.recent('job', 10)).length, 3, 'never over the bound')
})

t.test('a new client (a restarted instance) reads what was stored', async t => {
  const first = new RedisRunStore({ redis: client(), prefix: 'restart' })
  await first.create(aRun('kept', { data: { list: [], nested: { s: 'é <b>' } } }), 10)
  await first.append('kept', 'A', { id: 7, ev: { type: 'text', text: 'hi' } })
  await first.update('kept', 'A', { status: 'done', finishedAt: 99 })
  const second = new RedisRunStore({ redis: client(), prefix: 'restart' })
  const got = await second.get('kept')
  t.equal(got?.status, 'done')
  t.same(got?.data, { list: [], nested: { s: 'é <b>' } }, 'JSON round-trips exactly (empty arrays stay arrays)')
  t.same(await second.entries('kept'), [{ id: 7, ev: { type: 'text', text: 'hi' } }])
  t.same((await second.recent('job', 5)).map(r => r.id), ['kept'])
})

t.test('a client with keyPrefix is refused', async t => {
  t.throws(() => new RedisRunStore({ redis: client({ keyPrefix: 'x:' }) }), /keyPrefix/)
})

t.test('Redis down: a call rejects within its bound with a clear error, and works again after', async t => {
  const store = new RedisRunStore({ redis: client({ maxRetriesPerRequest: null }), prefix: 'outage', commandTimeoutMs: 300 })
  await store.create(aRun('o'), 10)
  await server.kill()
  const started = Date.now()
  await t.rejects(store.get('o'), { message: /^run store: redis unavailable: get run o/, code: 'HTMX_SSE_RUN_STORE_UNAVAILABLE' })
  t.ok(Date.now() - started < 5000, 'bounded (commandTimeoutMs 300)')
  await server.start()
  let back: unknown
  for (let i = 0; i < 50 && back === undefined; i++) {
    back = await store.create(aRun('after', { startedAt: 2 }), 10).catch(() => undefined)
    if (back === undefined) await new Promise(resolve => setTimeout(resolve, 100))
  }
  t.same(back, { created: true, dropped: [] }, 'usable again once Redis is back (its data is gone: no persistence)')
})
