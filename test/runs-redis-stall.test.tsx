/**
 * A short Redis stall (`CLIENT PAUSE`) while runs finish, on a real
 * redis-server: nothing rejects into a timer callback (the example server
 * exits on an unhandled rejection), and every run ends up stored as it
 * really ended once Redis answers again, not left "running" for a sweep to
 * call interrupted. One warning per stalled write.
 */
import t, { type Test } from 'tap'
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import htmxSse from '../plugin/index.js'
import { AgentRunner, agentRoutes, demoJob, JOB_KIND, type AgentEvent, type AgentSource } from './helpers/routes.js'
import { runs } from '../runs/index.js'
import { RedisRunStore } from '../runs/store-redis.js'
import { connect, request, until } from './helpers/sse-client.js'
import { Redis, startRedisServer } from './helpers/redis-server.js'

const server = await startRedisServer()
const clients: Redis[] = []
function client (): Redis {
  const redis = new Redis(server.url)
  redis.on('error', () => {})
  clients.push(redis)
  return redis
}
t.teardown(async () => {
  await Promise.all(clients.map(async c => await c.quit().catch(() => c.disconnect())))
  await server.stop()
})

const unhandled: unknown[] = []
const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
process.on('unhandledRejection', onUnhandled)
t.teardown(() => { process.off('unhandledRejection', onUnhandled) })

const admin = client()
/** Every client of this server waits `ms` for its replies (what a busy or failing-over Redis does). */
async function stall (ms: number): Promise<void> {
  await admin.call('CLIENT', 'PAUSE', String(ms), 'ALL')
}

let prefixes = 0
async function start (t: Test, runners: { jobs: RedisRunStore, agent?: AgentRunner }) {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _enc, done) { lines.push(String(chunk)); done() } })
  const app = Fastify({ logger: { level: 'warn', stream } })
  await app.register(htmxSse, { heartbeatMs: false })
  // A run's topic from a given id, as its page's connection reads it (the modules have no stream routes of their own).
  app.get<{ Params: { topic: string } }>('/topic/:topic', (request, reply) => reply.sse({ topics: [request.params.topic] }))
  await app.register(runs, { store: runners.jobs })
  if (runners.agent !== undefined) await app.register(agentRoutes, { prefix: '/agent', runner: runners.agent })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  return { app, lines, url: `http://127.0.0.1:${(app.server.address() as { port: number }).port}` }
}

function store (): RedisRunStore {
  // Calls give up after 300 ms: an 800 ms pause fails every write made during it.
  return new RedisRunStore({ redis: client(), prefix: `stall${++prefixes}`, commandTimeoutMs: 300 })
}

t.test('a job that finishes during a stall is stored as done once Redis answers; its page gets the end', async t => {
  const { app, url, lines } = await start(t, { jobs: store() })
  const job = await app.runs.start(JOB_KIND, demoJob({ tickMs: 50, stages: [{ name: 'Work', durationMs: 100 }] }), { title: 'finishes in a stall' })
  const watch = await connect(`${url}/topic/${encodeURIComponent(app.runs.topicOf(JOB_KIND, job.id))}`)
  t.teardown(() => watch.close())
  await stall(800)
  await watch.waitUntil(() => watch.events.some(e => e.event === 'done'), 10_000)
  t.equal(watch.events.at(-1)?.data, 'done', 'the page is told it is done')
  t.equal((await app.runs.get(JOB_KIND, job.id))?.status, 'done', 'stored as done')
  t.same(unhandled, [], 'no unhandled rejection')
  t.equal(lines.filter(l => l.includes('store write failed') && l.includes(job.id)).length, 1, 'one warning for the stalled write, not one per retry')
})

t.test('a cancel during a stall: accepted (202 pending), concurrent ones get 409, stored as cancelled once Redis answers', async t => {
  const { app, url } = await start(t, { jobs: store() })
  const job = await app.runs.start(JOB_KIND, demoJob({ tickMs: 50, stages: [{ name: 'Long', durationMs: 60_000 }] }), { title: 'cancelled in a stall' })
  await stall(800)
  const headers = { accept: 'application/json' }
  const answers = await Promise.all([0, 1, 2].map(async () => await request(`${url}${job.url}/cancel`, { method: 'POST', headers })))
  const codes = answers.map(a => a.status).sort()
  t.same(codes, [202, 409, 409], 'one accepted, the others told it is already ending')
  t.match(JSON.parse(answers.find(a => a.status === 202)!.body), { id: job.id, result: 'pending' })
  t.match(JSON.parse(answers.find(a => a.status === 409)!.body), { error: 'run is cancelled' })
  await until('stored as cancelled', async () => (await app.runs.get(JOB_KIND, job.id).catch(() => undefined))?.status === 'cancelled', 10_000, 100)
  t.pass('cancelled once Redis answered')
  t.same(unhandled, [], 'no unhandled rejection')
})

t.test('an agent run that ends during a stall: its last event is recorded once, then it is stored as done', async t => {
  let release!: () => void
  const gate = new Promise<void>(resolve => { release = resolve })
  const source: AgentSource = {
    async * run (): AsyncGenerator<AgentEvent> {
      yield { type: 'text', text: 'first words' }
      await gate
      yield { type: 'text', text: ' last words' }
      yield { type: 'done' }
    }
  }
  const agent = new AgentRunner({ store: store(), source })
  const { app, url } = await start(t, { jobs: store(), agent })
  const cursor = await app.sseHub.head() ?? '0'
  const before = await (await fetch(`${url}/agent/runs`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify({ prompt: 'stall me' }) })).json() as { id: string, url: string }
  const watch = await connect(`${url}/topic/${encodeURIComponent(agent.topicOf(before.id))}?lastEventId=${cursor}`)
  t.teardown(() => watch.close())
  // Published, so recorded (an event is recorded before it is published).
  await watch.waitUntil(() => watch.events.some(e => e.data.includes('first words')), 5000)
  await stall(800)
  release()
  await watch.waitUntil(() => watch.events.some(e => e.event === 'done'), 10_000)
  await until('stored as done', async () => (await agent.get(before.id).catch(() => undefined))?.status === 'done', 10_000, 100)
  const page = await request(url + before.url)
  t.match(page.body, /data-status="done"/)
  t.equal(page.body.split(' last words').length - 1, 1, 'the event written during the stall is in the transcript exactly once')
  t.notMatch(page.body, /sse-connect/, 'static')
  t.same(unhandled, [], 'no unhandled rejection')
})
