/**
 * The Redis call layer the hub's transport and the run store share
 * (plugin/redis/), through both of its users, over a real redis-server:
 * scripts load again after SCRIPT FLUSH, a call on a stalled server rejects
 * with its coded error before the server answers again, deadlines are in
 * Redis's clock whatever this process's clock says, and calls waiting out an
 * outage share one 'ready' listener.
 */
import t, { type Test } from 'tap'
import { errors } from '../plugin/errors.js'
import { redisTransport } from '../plugin/transports/redis.js'
import { RedisRunStore } from '../runs/store-redis.js'
import { aRun, LONG } from './helpers/run-store-contract.js'
import { fileRedis, Redis, startRedisServer } from './helpers/redis-server.js'

const { client } = fileRedis(t)

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))
const outcome = async (p: Promise<unknown>): Promise<unknown> => await p.then(() => 'resolved', (err: unknown) => err)
/** `p`'s outcome, or 'no answer' after `ms`: every wait here is bounded, whatever the layer does. */
const within = async (p: Promise<unknown>, ms = 10_000): Promise<unknown> => await Promise.race([outcome(p), sleep(ms).then(() => 'no answer')])

/** A started transport on `redis` (no hub: deliveries are dropped), closed at the end of the test. */
async function transportOn (t: Test, redis: Redis, prefix: string, publishTimeoutMs = 2000): Promise<ReturnType<typeof redisTransport>> {
  const transport = redisTransport({ redis, prefix, publishTimeoutMs })
  await transport.start(() => {}, undefined as never)
  t.teardown(() => transport.close())
  return transport
}

/** How many times Redis ran EVAL (a script sent as text) since the last CONFIG RESETSTAT. */
async function evals (admin: Redis): Promise<number> {
  const stats = await admin.info('commandstats')
  return Number(/^cmdstat_eval:calls=(\d+)/m.exec(stats)?.[1] ?? 0)
}

/**
 * Pauses every client of Redis for `ms`. `answered` resolves when a command
 * sent during the pause gets its reply, after the pause; `first(p)` is p's
 * outcome if it settles before that (so without Redis), else 'Redis answered'.
 */
async function stall (ms: number): Promise<{ answered: Promise<string>, first: (p: Promise<unknown>) => Promise<unknown> }> {
  await client().call('CLIENT', 'PAUSE', String(ms), 'ALL')
  const answered = client().ping().then(() => 'Redis answered')
  return { answered, first: async p => await Promise.race([outcome(p), answered]) }
}

t.test('after SCRIPT FLUSH the transport and the run store load their scripts again, once', async t => {
  const redis = client()
  const admin = client()
  const transport = await transportOn(t, redis, 'n1')
  const store = new RedisRunStore({ redis, prefix: 'n1runs' })
  await transport.publish('t', { data: 'before' })
  await store.create(aRun('a'), 10, LONG)

  await admin.script('FLUSH')
  await admin.config('RESETSTAT')
  const id = await transport.publish('t', { data: 'after the flush' })
  t.ok(await store.update('job', 'a', 'A', { data: 'after the flush' }), 'the store\'s write after the flush is applied')
  const stored = await redis.xrange('n1:t:t', '-', '+')
  t.same(stored.map(([sid, fields]) => [sid, fields.at(-1)]), [[stored[0]?.[0], 'before'], [`${id}-0`, 'after the flush']], 'so is the publish, at the id it answered')
  t.equal((await store.get('job', 'a'))?.data, 'after the flush')
  t.equal(await evals(admin), 2, 'each script was sent as text once (publish, update)')

  await transport.publish('t', { data: 'later' })
  t.ok(await store.update('job', 'a', 'A', { data: 'later' }))
  t.equal(await evals(admin), 2, 'and found by its SHA from then on')
})

t.test('a stalled Redis: reads and writes of both users reject with their coded 503 before Redis answers again; late writes are refused', async t => {
  const redis = client()
  const transport = await transportOn(t, redis, 's2', 300)
  const store = new RedisRunStore({ redis, prefix: 's2runs', commandTimeoutMs: 300 })
  await store.create(aRun('s'), 10, LONG) // a write's reply tells the store Redis's clock
  await transport.publish('t', { data: 'warm' })

  const { answered, first } = await stall(3000)
  const [read, write, history, publish] = await Promise.all([
    first(store.get('job', 's')),
    first(store.update('job', 's', 'A', { data: 'late' })),
    first(transport.history('t', 10)),
    first(transport.publish('t', { data: 'late' }))
  ])
  t.match(read, { code: 'HTMX_SSE_RUN_STORE_UNAVAILABLE', statusCode: 503, message: /^run store: redis unavailable: get run "s": no reply within 300 ms$/ }, 'a store read')
  t.ok(read instanceof errors.SseRedisUnavailableError, 'the store\'s outage is the transport\'s error class too')
  t.match(write, { code: 'HTMX_SSE_RUN_STORE_UNAVAILABLE', statusCode: 503, message: /^run store: redis unavailable: update run "s" not confirmed within 300 ms/ }, 'a store write')
  t.match(history, { code: 'HTMX_SSE_REDIS_UNAVAILABLE', statusCode: 503, message: /^redis unavailable: history of topic "t": no reply within 300 ms$/ }, 'a transport read')
  // A publish on a healthy connection waits as long again for the reply that says whether it was applied.
  t.match(publish, { code: 'HTMX_SSE_REDIS_UNAVAILABLE', statusCode: 503, message: /^redis unavailable: publish to topic "t" not confirmed within 600 ms/ }, 'a publish')

  await answered
  t.same((await store.get('job', 's'))?.data, aRun('s').data, 'the store write reached Redis after its deadline: not applied')
  t.equal(await redis.xlen('s2:t:t'), 1, 'nor was the publish')
})

t.test('deadlines are in Redis time: a clock 30 s behind refuses none of its writes, one 30 s ahead lets no late write in', async t => {
  const realNow = Date.now
  t.teardown(() => { Date.now = realNow })

  // Behind: a deadline taken from this clock would have passed in Redis's before the write was sent.
  Date.now = () => realNow() - 30_000
  const behind = client()
  const slow = await transportOn(t, behind, 'k3', 300)
  const slowStore = new RedisRunStore({ redis: behind, prefix: 'k3runs', commandTimeoutMs: 300 })
  await slowStore.create(aRun('b'), 10, LONG) // carries no deadline yet; its reply tells the clock
  const accepted: unknown[] = []
  for (let i = 0; i < 5; i++) {
    accepted.push(await within(slowStore.update('job', 'b', 'A', { data: i })), await within(slow.publish('t', { data: `${i}` })))
  }
  t.same(accepted, Array(10).fill('resolved'), 'every write and publish applied')
  t.equal(await behind.xlen('k3:t:t'), 5)

  // Ahead: a deadline taken from this clock would leave Redis 30 s to apply a write its caller was told failed.
  Date.now = () => realNow() + 30_000
  const ahead = client()
  const fast = await transportOn(t, ahead, 'k4', 300)
  const fastStore = new RedisRunStore({ redis: ahead, prefix: 'k4runs', commandTimeoutMs: 300 })
  await fastStore.create(aRun('f'), 10, LONG)
  await fast.publish('t', { data: 'warm' })
  const { answered, first } = await stall(1500)
  const [write, publish] = await Promise.all([first(fastStore.update('job', 'f', 'A', { data: 'late' })), first(fast.publish('t', { data: 'late' }))])
  t.match(write, { code: 'HTMX_SSE_RUN_STORE_UNAVAILABLE', message: /not confirmed/ })
  t.match(publish, { code: 'HTMX_SSE_REDIS_UNAVAILABLE', message: /not confirmed/ })
  await answered
  t.same((await fastStore.get('job', 'f'))?.data, aRun('f').data, 'Redis refused the late store write')
  t.equal(await ahead.xlen('k4:t:t'), 1, 'and the late publish')
})

t.test('calls of the transport and the run store waiting out an outage on one client share a ready listener each', async t => {
  const own = await startRedisServer()
  t.teardown(() => own.stop())
  const redis = new Redis(own.url)
  redis.on('error', () => {})
  t.teardown(() => redis.disconnect())
  const transport = await transportOn(t, redis, 'r5', 500)
  const store = new RedisRunStore({ redis, prefix: 'r5runs', commandTimeoutMs: 500 })
  await store.create(aRun('x'), 10, LONG)
  const warnings: Error[] = []
  const onWarning = (w: Error): void => { warnings.push(w) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })

  await own.kill()
  await sleep(50)
  const calls = [
    () => transport.publish('t', { data: 'x' }),
    () => store.get('job', 'x'),
    () => store.update('job', 'x', 'A', { data: 2 })
  ]
  const attempts = calls.map(async call => await within(call()))
  await sleep(100)
  const one = redis.listenerCount('ready')
  for (let i = 3; i < 45; i++) attempts.push(within(calls[i % 3]!()))
  await sleep(100)
  t.equal(redis.listenerCount('ready'), one, `as many ready listeners with 45 waiting calls as with one of each user (${one})`)
  const outcomes = await Promise.all(attempts) as Array<{ code?: string, message?: string }>
  const publishes = outcomes.filter((_, i) => i % 3 === 0)
  t.ok(publishes.every(o => o.code === 'HTMX_SSE_REDIS_UNAVAILABLE' && /not accepted: connection is/.test(o.message ?? '')), 'each publish rejected as not accepted')
  t.same(outcomes.filter((_, i) => i % 3 !== 0).map(o => o.code), Array(30).fill('HTMX_SSE_RUN_STORE_UNAVAILABLE'), 'each store call rejected with its coded error')
  t.ok(redis.listenerCount('ready') <= one, 'none left behind')
  t.same(warnings.filter(w => w.name === 'MaxListenersExceededWarning').map(w => w.message), [], 'no MaxListenersExceededWarning')
})
