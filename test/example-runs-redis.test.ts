/**
 * Runs as stored state across real processes: two `npm start` instances
 * (example-app/server.tsx with REDIS_URL) on one real redis-server. A job
 * (a run of the jobs module's own work function, `app.runs.start`) or an
 * agent run started on A renders on B (live, then static), cancel works from
 * B, A killed with SIGKILL mid-run shows as interrupted on B, and a fresh
 * instance after both are gone renders every run from Redis.
 */
import t, { type Test } from 'tap'
import type { ChildProcess } from 'node:child_process'
import { connect, request, until, type SseClient } from './helpers/sse-client.js'
import { startRedisServer } from './helpers/redis-server.js'
import { liveUrl } from './helpers/live-page.js'
import { freePort, spawnTsx, waitForHttp } from './helpers/process.js'
import { launchBrowser } from './helpers/browser.js'

interface Instance { port: number, url: string, child: ChildProcess }

async function startInstance (redisUrl: string): Promise<Instance> {
  const port = await freePort()
  const child = spawnTsx('example-app/server.tsx', { PORT: String(port), HOST: '127.0.0.1', REDIS_URL: redisUrl, SSE_SECRET: 'example-test-secret-0123456789', LOG_LEVEL: 'warn' })
  const status = await waitForHttp(`http://127.0.0.1:${port}/`, child)
  if (status !== 200) throw new Error(`dashboard on ${port} answered ${status}`)
  return { port, url: `http://127.0.0.1:${port}`, child }
}

async function stop (child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  await new Promise(resolve => {
    child.once('exit', resolve)
    child.kill(signal)
  })
}

async function postJson (url: string, body: unknown): Promise<{ status: number, json: Record<string, string> }> {
  const res = await request(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify(body) })
  return { status: res.status, json: res.body === '' ? {} : JSON.parse(res.body) as Record<string, string> }
}

/** The live page's connection, opened as the browser would (its cursor included). */
async function follow (base: string, page: string): Promise<SseClient> {
  const url = liveUrl(base, page)
  if (url === undefined) throw new Error('the page is not live')
  return await connect(url)
}

/** A redis-server and two instances on it, all stopped (instances first: they quit their clients) at the end of `t`. */
async function cluster (t: Test): Promise<{ redisUrl: string, instances: Instance[] }> {
  const redis = await startRedisServer()
  const instances: Instance[] = []
  t.teardown(async () => {
    await Promise.all(instances.map(async i => await stop(i.child)))
    await redis.stop()
  })
  instances.push(await startInstance(redis.url))
  instances.push(await startInstance(redis.url))
  return { redisUrl: redis.url, instances }
}

t.test('two instances on one Redis: every run renders everywhere, a killed owner shows as interrupted, a fresh instance keeps them', async t => {
  const { redisUrl, instances } = await cluster(t)
  const [a, b] = instances as [Instance, Instance]

  // A job started on A (the JSON API) renders live on B, and B's stream carries it to 100%, then its result.
  const started = await postJson(`${a.url}/jobs`, { title: 'Nightly <export>' })
  t.equal(started.status, 201)
  const { id: done, url: doneUrl } = started.json
  t.equal(doneUrl, `/runs/job/${done}`)
  const onB = await request(b.url + doneUrl!)
  t.equal(onB.status, 200, 'B renders A\'s job (not a 404)')
  t.match(onB.body, /data-status="running"/)
  t.match(onB.body, /Nightly &lt;export>/, 'its title escaped')
  const live = await follow(b.url, onB.body)
  t.teardown(() => live.close())
  await live.waitUntil(() => live.events.some(e => e.event === 'done'), 20_000)
  const bars = live.events.filter(e => e.data.includes(`innerHTML: #run-${done}-progress`)).map(e => Number(/aria-valuenow="(\d+)"/.exec(e.data)?.[1]))
  t.ok(bars.length >= 3, `progress arrives on B as A reports it (${bars.length} updates)`)
  t.equal(bars.at(-1), 100, 'up to 100%')
  t.same(bars, [...bars].sort((x, y) => x - y), 'never backwards')
  t.match(live.events.at(-2)?.data, /data-status="done"[\s\S]*aria-valuenow="100"[\s\S]*banner-success[\s\S]*Completed all 4 stages in/, 'then the static run with its result')
  const asJson = JSON.parse((await request(b.url + doneUrl!, { headers: { accept: 'application/json' } })).body) as Record<string, unknown>
  t.match(asJson, { id: done, kind: 'job', status: 'done', progress: 1, result: /^Completed all 4 stages in/ }, 'B\'s JSON API has the result')
  t.equal((asJson.entries as unknown[]).length, 4, 'and the log lines')
  const list = await request(`${b.url}/jobs/`)
  t.match(list.body, new RegExp(`href="/runs/job/${done}"`), 'B\'s recent-jobs list has it')

  // Cancel from B reaches A, which runs it.
  const second = (await postJson(`${a.url}/jobs`, { title: 'to cancel' })).json.id!
  const cancel = await request(`${b.url}/runs/job/${second}/cancel`, { method: 'POST', headers: { 'hx-request': 'true' } })
  t.equal(cancel.status, 202, 'B asks (A runs it)')
  await until('the cancel to reach A', async () => (await request(`${b.url}/runs/job/${second}`)).body.includes('data-status="cancelled"'), 10_000)
  t.pass('cancelled by its owner, seen on B')

  // A dies mid-job and mid-agent-run: B shows both as interrupted.
  const orphan = (await postJson(`${a.url}/jobs`, { title: 'orphan' })).json.id!
  const agentRun = await postJson(`${a.url}/agent/runs`, { prompt: 'Is the server healthy?' })
  t.equal(agentRun.status, 202)
  const agentUrl = agentRun.json.url!
  const orphanPage = await request(`${b.url}/runs/job/${orphan}`)
  const watching = await follow(b.url, orphanPage.body)
  t.teardown(() => watching.close())
  await watching.waitUntil(() => watching.events.length >= 2, 10_000)
  const agentPage = await request(b.url + agentUrl)
  t.match(agentPage.body, /data-status="running"/, 'the agent run is live on B')
  const agentWatch = await follow(b.url, agentPage.body)
  t.teardown(() => agentWatch.close())
  // Killed once some text is stored (an event is published, then stored: the newest may not be yet).
  await until('a stored chunk', async () => (await request(b.url + agentUrl)).body.includes('<span class="chunk">Let '), 10_000, 50)
  const killedAt = Date.now()
  await stop(a.child, 'SIGKILL')
  await watching.waitUntil(() => watching.events.some(e => e.event === 'done'), 15_000)
  const detected = Date.now() - killedAt
  t.ok(detected < 15_000, `B's watching page turned static ${detected} ms after SIGKILL`)
  t.comment(`interrupted detected ${detected} ms after SIGKILL (lease 6 s, sweep 2 s)`)
  t.match(watching.events.at(-2)?.data, /data-status="interrupted"[\s\S]*banner-interrupted/, 'the live job page gets the interrupted banner')
  await agentWatch.waitUntil(() => agentWatch.events.some(e => e.event === 'done'), 15_000)
  t.match(agentWatch.events.at(-2)?.data, /data-status="interrupted"/, 'so does the live agent run page')
  const orphanAfter = await request(`${b.url}/runs/job/${orphan}`)
  t.match(orphanAfter.body, /data-status="interrupted"/)
  t.notMatch(orphanAfter.body, /sse-connect/, 'static')

  // Every instance gone, then a fresh one: it renders all of them from Redis.
  await stop(b.child)
  const c = await startInstance(redisUrl)
  instances.push(c)
  const expect: Array<[string, string]> = [[done!, 'done'], [second, 'cancelled'], [orphan, 'interrupted']]
  for (const [id, status] of expect) {
    const page = await request(`${c.url}/runs/job/${id}`)
    t.equal(page.status, 200, `job ${status}: still there`)
    t.match(page.body, new RegExp(`id="run-${id}" class="card run" data-status="${status}"`))
    t.notMatch(page.body, /sse-connect/, 'static')
  }
  const agentOnC = await request(c.url + agentUrl)
  t.match(agentOnC.body, /data-status="interrupted"/, 'the agent run too')
  t.match(agentOnC.body, /<span class="chunk">Let /, 'with its stored transcript')
  const dashboard = await request(`${c.url}/`)
  t.match(dashboard.body, new RegExp(`href="/runs/job/${orphan}"`), 'the dashboard lists the stored jobs')
})

t.test('Chromium on B watches a job started on A reach 100%', async t => {
  const { instances } = await cluster(t)
  const [a, b] = instances as [Instance, Instance]
  const browser = await launchBrowser()
  t.teardown(async () => await browser.close())
  const { id, url } = (await postJson(`${a.url}/jobs`, { title: 'watched in Chromium' })).json
  const page = await browser.newPage()
  const errors: string[] = []
  page.on('pageerror', err => errors.push(err.message))
  await page.goto(b.url + url!)
  await page.waitForSelector(`#run-${id!}[data-status="running"]`)
  await page.waitForSelector(`#run-${id!}[data-status="done"]`, { timeout: 20_000 })
  t.equal(await page.getAttribute(`#run-${id!}-progress [role="progressbar"]`, 'aria-valuenow'), '100', 'the bar on B reached 100')
  t.equal(await page.locator(`#run-${id!} .banner-success`).count(), 1, 'with the success banner')
  t.equal(await page.locator(`#run-${id!} [sse-connect]`).count(), 0, 'and no connection left')
  t.same(errors, [], 'no page errors')
})
