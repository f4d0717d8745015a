/**
 * Two `npm start` instances on one redis-server, B's clock 8 s ahead of A's
 * (Date.now shifted in B's process only). Leases are judged by Redis's
 * clock, so B's sweeps never interrupt A's healthy job or agent run; and
 * when A really dies, B still marks its run interrupted.
 */
import t from 'tap'
import type { ChildProcess } from 'node:child_process'
import { request, until } from './helpers/sse-client.js'
import { startRedisServer } from './helpers/redis-server.js'
import { freePort, spawnTsx, waitForHttp } from './helpers/process.js'

const SKEW_MS = 8_000
/** Loaded before the app in B: every Date.now() there reads SKEW_MS ahead. */
const skewed = `data:text/javascript,${encodeURIComponent(`const real = Date.now; Date.now = () => real() + ${SKEW_MS}`)}`

interface Instance { url: string, child: ChildProcess }

async function startInstance (redisUrl: string, env: Record<string, string> = {}): Promise<Instance> {
  const port = await freePort()
  const child = spawnTsx('example-app/server.tsx', { PORT: String(port), HOST: '127.0.0.1', REDIS_URL: redisUrl, SSE_SECRET: 'example-test-secret-0123456789', LOG_LEVEL: 'warn', ...env })
  const status = await waitForHttp(`http://127.0.0.1:${port}/`, child)
  if (status !== 200) throw new Error(`dashboard on ${port} answered ${status}`)
  return { url: `http://127.0.0.1:${port}`, child }
}

async function stop (child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  await new Promise(resolve => {
    child.once('exit', resolve)
    child.kill(signal)
  })
}

async function postJson (url: string, body: unknown): Promise<Record<string, string>> {
  const res = await request(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify(body) })
  if (res.status !== 201 && res.status !== 202) throw new Error(`${url} answered ${res.status}`)
  return JSON.parse(res.body) as Record<string, string>
}

/** The stored status a page shows (`data-status` of the run). */
async function statusOn (base: string, path: string): Promise<string | undefined> {
  return /data-status="([a-z]+)"/.exec((await request(base + path)).body)?.[1]
}

t.test('a skewed clock on one instance interrupts no healthy run; a dead owner is still noticed', async t => {
  const redis = await startRedisServer()
  const instances: Instance[] = []
  t.teardown(async () => {
    await Promise.all(instances.map(async i => await stop(i.child)))
    await redis.stop()
  })
  const [a, b] = await Promise.all([startInstance(redis.url), startInstance(redis.url, { NODE_OPTIONS: `--import=${skewed}` })])
  instances.push(a!, b!)

  // Healthy runs on A, watched from B (whose sweeps run every 2 s with its clock 8 s ahead).
  const job = await postJson(`${a!.url}/jobs`, { title: 'healthy' })
  const run = await postJson(`${a!.url}/agent/runs`, { prompt: 'Is the server healthy?' })
  await until('both runs over', async () => (await statusOn(b!.url, job.url!)) !== 'running' && (await statusOn(b!.url, run.url!)) !== 'running', 20_000, 200)
  t.equal(await statusOn(b!.url, job.url!), 'done', 'the job finished (not interrupted by the skewed instance)')
  t.equal(await statusOn(b!.url, run.url!), 'done', 'the agent run too')

  // A dies mid-job: B, skewed clock and all, marks it interrupted.
  const orphan = await postJson(`${a!.url}/jobs`, { title: 'orphan' })
  t.equal(await statusOn(b!.url, orphan.url!), 'running')
  await stop(a!.child, 'SIGKILL')
  await until('B to notice A died', async () => (await statusOn(b!.url, orphan.url!)) === 'interrupted', 20_000, 200)
  t.pass('the dead owner\'s job is interrupted')
})
