/**
 * Runs as seen through their routes when things race: a run page's route never
 * reaches an agent run (both stores), concurrent cancels of one run get one
 * acceptance and truthful refusals, and an agent owner that stalled past its
 * lease publishes nothing after the instance that interrupted it closed its
 * stream.
 */
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import htmxSse from '../plugin/index.js'
import { AgentRunner, agentRoutes, demoJob, JOB_KIND, MemoryRunStore, type AgentEvent, type AgentSource, type RunStore } from './helpers/routes.js'
import { runs } from '../runs/index.js'
import { RedisRunStore } from '../runs/store-redis.js'
import { connect, request, until } from './helpers/sse-client.js'
import { Redis, startRedisServer } from './helpers/redis-server.js'

const server = await startRedisServer()
const clients: Redis[] = []
t.teardown(async () => {
  await Promise.all(clients.map(async c => await c.quit().catch(() => c.disconnect())))
  await server.stop()
})
let prefixes = 0
function redisStore (): RedisRunStore {
  const redis = new Redis(server.url)
  redis.on('error', () => {})
  clients.push(redis)
  return new RedisRunStore({ redis, prefix: `ck${++prefixes}` })
}

/** A source that writes, then waits for `release`, then finishes. */
function gated (): { source: AgentSource, release: () => void } {
  let release!: () => void
  const gate = new Promise<void>(resolve => { release = resolve })
  const source: AgentSource = {
    async * run (): AsyncGenerator<AgentEvent> {
      yield { type: 'text', text: 'before' }
      await gate
      yield { type: 'text', text: ' STALE' }
      yield { type: 'done' }
    }
  }
  return { source, release }
}

async function serve (t: Test, register: (app: FastifyInstance) => Promise<void>, store?: RunStore, sweepMs = 50): Promise<{ app: FastifyInstance, url: string }> {
  const app = Fastify({ logger: false })
  await app.register(htmxSse, { heartbeatMs: false })
  await app.register(runs, { store, leaseMs: sweepMs * 20, sweepMs })
  // A run's topic from a given id, as its page's connection reads it (the modules have no stream routes of their own).
  app.get<{ Params: { topic: string } }>('/topic/:topic', (request, reply) => reply.sse({ topics: [request.params.topic] }))
  await register(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  return { app, url: `http://127.0.0.1:${(app.server.address() as { port: number }).port}` }
}

const json = { accept: 'application/json' }

for (const [name, make] of [['memory', () => new MemoryRunStore()], ['redis', redisStore]] as Array<[string, () => RunStore]>) {
  t.test(`${name}: POST /runs/<kind>/<agent run id>/cancel is a 404 and leaves the agent run alone`, async t => {
    const store = make()
    const { source, release } = gated()
    const agent = new AgentRunner({ store, source, leaseMs: 1000, sweepMs: 50 })
    const { url } = await serve(t, async app => {
      await app.register(agentRoutes, { prefix: '/agent', runner: agent })
    }, store)
    const id = await agent.start('mine')
    for (const kind of ['job', 'agent']) {
      const res = await request(`${url}/runs/${kind}/${id}/cancel`, { method: 'POST', headers: json })
      t.equal(res.status, 404, `no such run of kind ${kind}`)
    }
    // A renewal after the request: a cancel flag, had it been set, would have reached the owner with it.
    const lease = (await agent.get(id))!.leaseUntil
    await until('a renewal', async () => (await agent.get(id))!.leaseUntil > lease + 1, 5000)
    const after = (await agent.get(id))!
    t.equal(after.status, 'running', 'still running')
    t.notOk(after.cancelRequested, 'no cancel request stored on it')
    release()
    await until('the run ends', async () => (await agent.get(id))?.status !== 'running', 5000)
    t.equal((await agent.get(id))?.status, 'done', 'it finished as its source did, not cancelled')
  })
}

const long = demoJob({ stages: [{ name: 'Long', durationMs: 60_000 }], tickMs: 50 })

t.test('concurrent cancels of a run its instance runs: one 200, the rest 409 "run is cancelled"', async t => {
  const { app, url } = await serve(t, async () => {}, redisStore())
  const job = await app.runs.start(JOB_KIND, long)
  const answers = await Promise.all(Array.from({ length: 4 }, async () => await request(`${url}${job.url}/cancel`, { method: 'POST', headers: json })))
  t.same(answers.map(a => a.status).sort(), [200, 409, 409, 409])
  t.same(answers.filter(a => a.status === 409).map(a => JSON.parse(a.body)), Array(3).fill({ error: 'run is cancelled' }))
  t.equal((await app.runs.get(JOB_KIND, job.id))?.status, 'cancelled')
  const late = await request(`${url}${job.url}/cancel`, { method: 'POST', headers: json })
  t.equal(late.status, 409, 'and so does a cancel after it')
})

t.test('concurrent cancels on an instance that does not run it: one 202, the rest 409 "cancel already requested"', async t => {
  const store = redisStore()
  // The owner sees cancel requests when it renews: not before the four requests are answered.
  const { app: owner } = await serve(t, async () => {}, store, 500)
  const { app: other, url } = await serve(t, async () => {}, store, 500)
  const job = await owner.runs.start(JOB_KIND, long)
  const answers = await Promise.all(Array.from({ length: 4 }, async () => await request(`${url}${job.url}/cancel`, { method: 'POST', headers: json })))
  t.same(answers.map(a => a.status).sort(), [202, 409, 409, 409])
  t.match(JSON.parse(answers.find(a => a.status === 202)!.body), { result: 'requested' })
  t.same(answers.filter(a => a.status === 409).map(a => JSON.parse(a.body)), Array(3).fill({ error: 'cancel already requested' }))
  await until('the owner cancels it', async () => (await other.runs.get(JOB_KIND, job.id))?.status === 'cancelled', 5000)
  t.pass('cancelled by its owner')
})

t.test('an agent owner that stalls past its lease publishes nothing after the interruption', async t => {
  const store = new MemoryRunStore()
  // The stalled owner: its lease loop is frozen (renewals do nothing), as in a paused process.
  let frozen = false
  const stalledStore = new Proxy(store, {
    get (target, key) {
      const value = Reflect.get(target, key) as unknown
      if (key === 'renew') return async (...args: unknown[]) => frozen ? [] : await (value as (...a: unknown[]) => Promise<string[]>).apply(target, args)
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
    }
  })
  const { source, release } = gated()
  const owner = new AgentRunner({ store: stalledStore, source, leaseMs: 300, sweepMs: 50 })
  const { app, url } = await serve(t, async app => { await app.register(agentRoutes, { prefix: '/agent', runner: owner }) })
  // The instance that notices: same store, same hub.
  const sweeper = new AgentRunner({ store, leaseMs: 300, sweepMs: 50 })
  sweeper.bind(app.sseHub, app.log)
  t.teardown(() => sweeper.close())

  const cursor = await app.sseHub.head() ?? '0'
  const id = await owner.start('stall')
  const watch = await connect(`${url}/topic/${encodeURIComponent(owner.topicOf(id))}?lastEventId=${cursor}`)
  t.teardown(() => watch.close())
  await watch.waitUntil(() => watch.events.some(e => e.data.includes('before')), 5000)
  frozen = true
  await watch.waitUntil(() => watch.events.some(e => e.event === 'done'), 5000)
  t.match(watch.events.at(-2)?.data, /data-state="interrupted"/, 'interrupted by the other instance: banner, then done')
  release()
  await until('the owner to give up the run', async () => { await owner.settled(); return (await owner.get(id))?.status === 'interrupted' }, 5000)
  await owner.settled()
  // Everything the topic holds, replayed from before the run, up to a marker published now.
  await app.sseHub.publish(owner.topicOf(id), { event: 'marker', data: 'end of test' })
  const replay = await connect(`${url}/topic/${encodeURIComponent(owner.topicOf(id))}?lastEventId=${cursor}`)
  t.teardown(() => replay.close())
  await replay.waitUntil(() => replay.events.some(e => e.event === 'marker'), 5000)
  const names = replay.events.map(e => e.event ?? 'update')
  t.same(names.slice(names.indexOf('done')), ['done', 'marker'], 'the topic has nothing between the close event and the marker')
  t.notOk(watch.events.some(e => e.data.includes('STALE')), 'the watching page got no stale chunk')
  t.notOk((await request(`${url}/agent/runs/${id}`)).body.includes('STALE'), 'and the transcript has none')
})
