/**
 * A run of the app's own work function over Redis, in an app of the user's
 * (not the example): two Fastify instances on one real redis-server share the
 * hub (`redisTransport`) and the runs (`RedisRunStore`). A run started on A
 * reports its progress and log to a page rendered by B, live, to its result;
 * a cancel made on B aborts the work's signal on A.
 */
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import htmxSse from '../plugin/index.js'
import { redisTransport } from '../plugin/redis.js'
import { runs } from '../runs/index.js'
import { RedisRunStore } from '../runs/store-redis.js'
import { openPage } from './helpers/live-page.js'
import { request, until } from './helpers/sse-client.js'
import { Redis, startRedisServer } from './helpers/redis-server.js'

const server = await startRedisServer()
const clients: Redis[] = []
t.teardown(async () => {
  await Promise.all(clients.map(async c => await c.quit().catch(() => c.disconnect())))
  await server.stop()
})

async function instance (t: Test): Promise<{ app: FastifyInstance, url: string }> {
  const redis = new Redis(server.url)
  redis.on('error', () => {})
  clients.push(redis)
  const app = Fastify({ logger: false })
  await app.register(htmxSse, { heartbeatMs: false, secret: 'redis-test-secret-0123456789', transport: redisTransport({ redis }) })
  await app.register(runs, { store: new RedisRunStore({ redis }), leaseMs: 2000, sweepMs: 200 })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  return { app, url: `http://127.0.0.1:${(app.server.address() as { port: number }).port}` }
}

t.test('started on A, watched on B: progress, log lines, result; a cancel on B aborts the work on A', async t => {
  const a = await instance(t)
  const b = await instance(t)
  const gates: Array<() => void> = []
  const gate = async (): Promise<void> => await new Promise<void>(resolve => gates.push(resolve))
  const run = await a.app.runs.start('import', async (run) => {
    for (let step = 1; step <= 3; step++) {
      await gate()
      await run.progress(step / 3, `Batch ${step} of 3`)
      await run.append({ batch: step, rows: step * 10 })
    }
    return { rows: 60 }
  }, { title: 'Import <customers>' })

  const page = await openPage(b.url, run.url)
  t.equal(page.status, 200, 'B renders A\'s run')
  t.match(page.html, /data-status="running"[\s\S]*Import &lt;customers>/)
  const c = await page.connect()
  t.teardown(() => c.close())
  for (let step = 1; step <= 3; step++) {
    await until(`the work waiting at step ${step}`, async () => gates.length > 0)
    gates.shift()!()
    await c.waitUntil(() => c.events.some(e => e.data.includes(`aria-valuenow="${Math.round(step / 3 * 100)}"`)), 5000)
  }
  await c.waitUntil(() => c.events.some(e => e.event === 'done'), 5000)
  t.same(c.events.filter(e => e.data.includes(`innerHTML: #run-${run.id}-progress`)).map(e => /aria-valuenow="(\d+)"/.exec(e.data)?.[1]), ['33', '67', '100'], 'B\'s stream carries each step')
  t.equal(c.events.filter(e => e.data.includes(`#run-${run.id}-log`)).length, 3, 'and each log line')
  t.match(c.events.at(-2)?.data, /data-status="done"[\s\S]*&#34;rows&#34;: 60/, 'then the result')
  t.match(JSON.parse((await request(b.url + run.url, { headers: { accept: 'application/json' } })).body), { status: 'done', result: { rows: 60 }, entries: [{ batch: 1 }, { batch: 2 }, { batch: 3 }] })

  let aborted: unknown
  const long = await a.app.runs.start('import', async (run, signal) => {
    await run.progress(0.1, 'waiting')
    await new Promise<void>(resolve => signal.addEventListener('abort', () => resolve(), { once: true }))
    aborted = signal.reason
  })
  await until('started', async () => (await b.app.runs.get('import', long.id))?.progress === 0.1)
  const cancel = await request(`${b.url}${long.url}/cancel`, { method: 'POST', headers: { accept: 'application/json' } })
  t.same([cancel.status, JSON.parse(cancel.body)], [202, { id: long.id, result: 'requested' }], 'B asks the owner')
  await until('A aborts the work', async () => aborted !== undefined, 5000)
  t.match(aborted, { code: 'HTMX_SSE_RUN_ABORTED', message: /cancelled/ })
  await until('stored as cancelled', async () => (await b.app.runs.get('import', long.id))?.status === 'cancelled', 5000)
  t.pass('cancelled, seen on B')
})
