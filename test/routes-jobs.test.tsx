/**
 * The jobs module: the runs plugin running the demo work function. Started
 * by POST, its page (`/runs/job/:id`) streams to 100%; reloads resume; cancel,
 * failure, the store's bound, shutdown, a dead owner's lease and a cancel
 * from another instance sharing the store.
 */
import t from 'tap'
import Fastify from 'fastify'
import htmxSse from '../plugin/index.js'
import { runs } from '../runs/index.js'
import { demoJob, JOB_KIND, jobsRoutes, MemoryRunStore, type NewRun, type RunStore } from './helpers/routes.js'
import { openPage } from './helpers/live-page.js'
import { request, until } from './helpers/sse-client.js'

const stages = [{ name: 'One', durationMs: 40 }, { name: 'Two', durationMs: 80 }]

async function start (options: { tickMs?: number, maxRuns?: number, store?: RunStore, leaseMs?: number, sweepMs?: number } = {}) {
  const app = Fastify({ logger: false })
  await app.register(htmxSse, { heartbeatMs: false })
  await app.register(runs, { maxRuns: options.maxRuns, store: options.store, leaseMs: options.leaseMs, sweepMs: options.sweepMs })
  await app.register(jobsRoutes, { prefix: '/jobs', stages, tickMs: options.tickMs ?? 20 })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as { port: number }
  return { app, url: `http://127.0.0.1:${port}` }
}

const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

t.test('jobs: POST starts a job and redirects to its live page; it streams to 100% and the banner', async t => {
  const { app, url } = await start()
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'POST', url: '/jobs', headers: FORM, payload: 'title=Nightly+%3Cexport%3E' })
  t.equal(res.statusCode, 303)
  const href = res.headers.location as string
  t.match(href, /^\/runs\/job\/[0-9a-f]{16}$/)
  const id = href.split('/').pop()!
  const page = await openPage(url, href)
  t.equal(page.status, 200)
  t.match(page.html, /<div hidden hx-ext="sse" sse-connect="\/_sse\/stream\?t=[^"]+&amp;lastEventId=\d+" sse-swap="message" hx-swap="none" sse-close="done"><\/div><\/section>/, 'live while running, its element inside the run')
  t.match(page.html, /Nightly &lt;export>/)
  t.match(page.html, /role="progressbar"/)
  t.match(page.html, />Cancel</)

  const c = await page.connect()
  t.teardown(() => c.close())
  await c.waitUntil(() => c.events.some(e => e.event === 'done'), 5000)
  t.ok(c.events.slice(0, -1).every(e => e.event === undefined), 'every update is unnamed (htmx 2 and 4 both swap it)')
  const progress = c.events.filter(e => e.data.startsWith(`<div hx-swap-oob="innerHTML: #run-${id}-progress">`))
  t.ok(progress.length >= 3, `several progress events replace the bar (${progress.length})`)
  const percents = progress.map(e => Number(/aria-valuenow="(\d+)"/.exec(e.data)![1]))
  t.same(percents, [...percents].sort((a, b) => a - b), 'progress only grows')
  t.match(progress.at(-1)?.data, /Two \(2\/2\)/, 'labelled with the stage')
  t.ok(c.events.some(e => e.data.includes('One: done')), 'a log line per stage')
  const last = c.events.at(-2)!
  t.match(last.data, new RegExp(`^<section id="run-${id}" class="card run" data-status="done" hx-swap-oob="true">`), 'the last update replaces the whole run with its static form')
  t.notMatch(last.data, /sse-connect|hx-sse/, 'without a connection element')
  t.match(last.data, /aria-valuenow="100"/)
  t.match(last.data, /banner banner-success[\s\S]*Completed all 2 stages in/)
  t.same([c.events.at(-1)!.event, c.events.at(-1)!.data], ['done', 'done'], 'then done closes the stream, with the status as data')

  t.equal((await app.runs.get(JOB_KIND, id))!.status, 'done')
  const after = await app.inject(href)
  t.notMatch(after.body, /sse-connect/, 'a finished job page is static')
  t.match(after.body, /banner banner-success/)
  t.match(after.body, /aria-valuenow="100"/)
  t.equal((await app.inject({ method: 'POST', url: `${href}/cancel` })).statusCode, 409)
})

t.test('jobs: reload mid-job shows the progress so far and continues live', async t => {
  const { app, url } = await start({ tickMs: 30 })
  t.teardown(() => app.close())
  const started = await app.inject({ method: 'POST', url: '/jobs', headers: { accept: 'application/json' }, payload: { title: 'slow' } })
  const { id } = started.json() as { id: string }
  await until('first stage done', async () => (await app.runs.get(JOB_KIND, id))!.entries.length >= 1, 2000)
  const page = await openPage(url, `/runs/job/${id}`)
  const shown = Number(/aria-valuenow="(\d+)"/.exec(page.html)![1])
  t.ok(shown > 0 && shown < 100, `page shows progress so far (${shown}%)`)
  t.match(page.html, /One: done/)
  const c = await page.connect()
  t.teardown(() => c.close())
  await c.waitUntil(() => c.events.some(e => e.event === 'done'), 5000)
  const first = Number(/aria-valuenow="(\d+)"/.exec(c.events.find(e => e.data.includes('progressbar'))!.data)![1])
  t.ok(first >= shown, 'continues from where the page was, not from 0')
})

t.test('jobs: cancel mid-run, failure, JSON and htmx starts, the bounded store, the index', async t => {
  const { app, url } = await start({ tickMs: 25, maxRuns: 2 })
  t.teardown(() => app.close())
  const api = await app.inject({ method: 'POST', url: '/jobs', headers: { accept: 'application/json' }, payload: { title: 'api' } })
  t.equal(api.statusCode, 201)
  t.equal(api.headers.location, (api.json() as { url: string }).url, 'Location is the job page')
  const { id } = api.json() as { id: string }
  const c = await (await openPage(url, `/runs/job/${id}`)).connect()
  t.teardown(() => c.close())
  const cancel = await app.inject({ method: 'POST', url: `/runs/job/${id}/cancel`, headers: { 'hx-request': 'true' } })
  t.equal(cancel.statusCode, 204)
  await c.waitUntil(() => c.events.some(e => e.event === 'done'), 3000)
  t.match(c.events.at(-2)!.data, /banner-cancelled/)
  t.equal(c.events.at(-1)!.data, 'cancelled')
  t.equal((await app.runs.get(JOB_KIND, id))!.status, 'cancelled')

  const htmx = await app.inject({ method: 'POST', url: '/jobs', headers: { 'hx-request': 'true', ...FORM }, payload: 'fail=1' })
  t.equal(htmx.statusCode, 202)
  const failingId = (htmx.headers.location as string).split('/').pop()!
  await until('job failed', async () => (await app.runs.get(JOB_KIND, failingId))!.status !== 'running', 3000)
  t.match(await app.runs.get(JOB_KIND, failingId), { status: 'failed', error: 'Two failed (on purpose)' })
  t.match((await app.inject(`/runs/job/${failingId}`)).body, /banner banner-error[\s\S]*Failed: Two failed \(on purpose\)/)

  // The store keeps 2 per kind: the cancelled job is dropped first, then the failed one; then all are running.
  const third = (await app.inject({ method: 'POST', url: '/jobs', headers: { accept: 'application/json' }, payload: {} })).json() as { id: string }
  t.equal(await app.runs.get(JOB_KIND, id), undefined, 'oldest finished job dropped')
  t.ok(await app.runs.get(JOB_KIND, third.id))
  t.equal((await app.inject({ method: 'POST', url: '/jobs', headers: { accept: 'application/json' }, payload: {} })).statusCode, 201)
  const full = await app.inject({ method: 'POST', url: '/jobs', headers: { accept: 'application/json' }, payload: {} })
  t.equal(full.statusCode, 503, 'all running: refused, not unbounded')
  t.equal(full.headers['retry-after'], '5')

  const index = await app.inject('/jobs/')
  t.match(index.body, new RegExp(`<li id="run-row-${third.id}" class="run-row run-row-running"><a href="/runs/job/${third.id}">Build #`))
  t.match(index.body, /sse-connect=/, 'the index is live on the list topic')
})

t.test('jobs: app.close() stops the jobs it runs and records them as interrupted', async t => {
  const store = new MemoryRunStore()
  const { app } = await start({ tickMs: 20, store })
  const { id } = (await app.inject({ method: 'POST', url: '/jobs', headers: { accept: 'application/json' }, payload: {} })).json() as { id: string }
  await until('a tick', async () => ((await store.get('fn:job', id))!.data as { progress: number }).progress > 0, 2000)
  await app.close()
  const closed = await store.get('fn:job', id)
  t.equal(closed?.status, 'interrupted', 'not left running')
  t.ok(closed?.finishedAt)
  await new Promise(resolve => setTimeout(resolve, 100))
  t.same(await store.get('fn:job', id), closed, 'nothing written after close (the work\'s signal aborted)')
})

t.test('jobs: a job whose owner stopped renewing shows as interrupted, live pages turn static', async t => {
  const store = new MemoryRunStore()
  const { app, url } = await start({ store, leaseMs: 300, sweepMs: 50 })
  t.teardown(() => app.close())
  // A job of another instance that died mid-run: its lease ends in 400 ms.
  const ghost: NewRun = { id: 'deadbeef', kind: 'fn:job', title: 'Orphan <b>job</b>', owner: 'ghost-1', startedAt: Date.now() - 1000, data: { progress: 0.5, label: 'Two (2/2)' } }
  await store.create(ghost, 50, 400)
  const live = await openPage(url, '/runs/job/deadbeef')
  t.match(live.html, /data-status="running"/, 'while its lease holds, it is running')
  t.match(live.html, /sse-connect=/)
  t.match(live.html, /Orphan &lt;b>job&lt;\/b>/, 'its title is escaped')
  const c = await live.connect()
  t.teardown(() => c.close())
  await c.waitUntil(() => c.events.some(e => e.event === 'done'), 5000)
  const final = c.events.at(-2)!.data
  t.match(final, /^<section id="run-deadbeef" class="card run" data-status="interrupted" hx-swap-oob="true">/, 'the live page gets the static interrupted run')
  t.match(final, /banner banner-interrupted/)
  t.match(final, /Interrupted: the server running it stopped/)
  t.equal(c.events.at(-1)!.data, 'interrupted')
  const page = await app.inject('/runs/job/deadbeef')
  t.equal(page.statusCode, 200, 'never a 404')
  t.notMatch(page.body, /sse-connect/, 'static')
  t.match(page.body, /It had reached 50%/)
  t.equal((await app.inject({ method: 'POST', url: '/runs/job/deadbeef/cancel' })).statusCode, 409)
})

t.test('jobs: a page rendered after the lease ran out, before any sweep, already shows interrupted', async t => {
  const store = new MemoryRunStore()
  const { app } = await start({ store, leaseMs: 60_000, sweepMs: 30_000 })
  t.teardown(() => app.close())
  await store.create({ id: 'cafe0001', kind: 'fn:job', title: 'old', owner: 'gone', startedAt: 1, data: { progress: 0 } }, 50, -1)
  t.match((await app.inject('/runs/job/cafe0001')).body, /data-status="interrupted"/)
  t.equal((await store.get('fn:job', 'cafe0001'))?.status, 'interrupted', 'recorded by the render')
})

t.test('jobs: a cancel on another instance sharing the store reaches the owner', async t => {
  const store = new MemoryRunStore()
  const a = await start({ store, tickMs: 20, sweepMs: 50, leaseMs: 1000 })
  const b = await start({ store, sweepMs: 50, leaseMs: 1000 })
  t.teardown(async () => { await a.app.close(); await b.app.close() })
  const run = await a.app.runs.start(JOB_KIND, demoJob({ stages: [{ name: 'Long', durationMs: 60_000 }], tickMs: 20 }), { title: 'far away' })
  t.not(a.app.runs.owner, b.app.runs.owner)
  const answer = await request(`${b.url}${run.url}/cancel`, { method: 'POST', headers: { accept: 'application/json' } })
  t.same([answer.status, JSON.parse(answer.body)], [202, { id: run.id, result: 'requested' }], 'B does not run it: it asks')
  await until('cancelled by its owner', async () => (await store.get('fn:job', run.id))!.status !== 'running', 3000)
  t.equal((await store.get('fn:job', run.id))!.status, 'cancelled')
  t.same((await b.app.runs.recent(JOB_KIND)).map(j => j.id), (await a.app.runs.recent(JOB_KIND)).map(j => j.id), 'both list the same jobs')
})
