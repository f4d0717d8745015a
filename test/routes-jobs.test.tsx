import t from 'tap'
import Fastify from 'fastify'
import htmxSse from '../plugin/index.js'
import { JobRunner, jobsRoutes, MemoryRunStore, type NewRun } from './helpers/routes.js'
import { openPage } from './helpers/live-page.js'
import { until } from './helpers/sse-client.js'

const stages = [{ name: 'One', durationMs: 40 }, { name: 'Two', durationMs: 80 }]

async function start (options: { tickMs?: number, maxJobs?: number, store?: MemoryRunStore, leaseMs?: number, sweepMs?: number } = {}) {
  const app = Fastify({ logger: false })
  await app.register(htmxSse, { heartbeatMs: false })
  const runner = new JobRunner({ stages, tickMs: options.tickMs ?? 20, maxJobs: options.maxJobs, store: options.store, leaseMs: options.leaseMs, sweepMs: options.sweepMs })
  await app.register(jobsRoutes, { prefix: '/jobs', runner })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as { port: number }
  return { app, runner, url: `http://127.0.0.1:${port}` }
}

t.test('jobs: POST starts a job and redirects to its live page; it streams to 100% and the banner', async t => {
  const { app, runner, url } = await start()
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'POST', url: '/jobs', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'title=Nightly+%3Cexport%3E' })
  t.equal(res.statusCode, 303)
  const href = res.headers.location as string
  t.match(href, /^\/jobs\/[0-9a-f]{8}$/)
  const id = href.split('/').pop()!
  const page = await openPage(url, href)
  t.equal(page.status, 200)
  t.match(page.html, /<div hidden hx-ext="sse" sse-connect="\/_sse\/stream\?t=[^"]+&amp;lastEventId=\d+" sse-swap="message" hx-swap="none" sse-close="done"><\/div><\/section>/, 'live while running, its element inside the run')
  t.match(page.html, /Nightly &lt;export>/)
  t.match(page.html, /role="progressbar"/)
  t.match(page.html, /Cancel job/)

  const c = await page.connect()
  await c.waitUntil(() => c.events.some(e => e.event === 'done'), 5000)
  t.ok(c.events.slice(0, -1).every(e => e.event === undefined), 'every update is unnamed (htmx 2 and 4 both swap it)')
  const progress = c.events.filter(e => e.data.startsWith(`<div hx-swap-oob="innerHTML:#run-${id}-body">`))
  t.ok(progress.length >= 3, 'several progress events replace the run body')
  const percents = progress.map(e => Number(/aria-valuenow="(\d+)"/.exec(e.data)![1]))
  t.same(percents, [...percents].sort((a, b) => a - b), 'progress only grows')
  const last = c.events.at(-2)!
  t.match(last.data, new RegExp(`^<section id="run-${id}" class="card run" data-status="done" hx-swap-oob="true">`), 'the last update replaces the whole run with its static form')
  t.notMatch(last.data, /sse-connect|hx-sse/, 'without a connection element')
  t.match(last.data, /aria-valuenow="100"/)
  t.match(last.data, /banner banner-success/)
  t.same([c.events.at(-1)!.event, c.events.at(-1)!.data], ['done', 'done'], 'then done closes the stream, with the status as data')
  c.close()

  t.equal((await runner.get(id))!.status, 'done')
  const after = await app.inject(href)
  t.notMatch(after.body, /sse-connect/, 'a finished job page is static')
  t.match(after.body, /<script src="\/_sse\/assets\/htmx\.min\.js">/, 'and still loads htmx (its links and forms)')
  t.match(after.body, /banner banner-success/)
  t.match(after.body, /aria-valuenow="100"/)
  const cancel = await app.inject({ method: 'POST', url: `${href}/cancel` })
  t.equal(cancel.statusCode, 409)
})

t.test('jobs: reload mid-job shows the progress so far and continues live', async t => {
  const { app, runner, url } = await start({ tickMs: 30 })
  t.teardown(() => app.close())
  const job = (await runner.start({ title: 'slow' }))!
  await until('first stage done', async () => (await runner.get(job.id))!.elapsed[0]! >= 40, 2000)
  const page = await openPage(url, `/jobs/${job.id}`)
  const shown = Number(/aria-valuenow="(\d+)"/.exec(page.html)![1])
  t.ok(shown > 0 && shown < 100, `page shows progress so far (${shown}%)`)
  t.match(page.html, /stage stage-done/)
  const c = await page.connect()
  await c.waitUntil(() => c.events.some(e => e.event === 'done'), 5000)
  const first = Number(/aria-valuenow="(\d+)"/.exec(c.events[0]!.data)![1])
  t.ok(first >= shown, 'continues from where the page was, not from 0')
  c.close()
})

t.test('jobs: cancel mid-run, failure, JSON API, htmx start, bounded store, unknown ids', async t => {
  const { app, runner, url } = await start({ tickMs: 25, maxJobs: 2 })
  t.teardown(() => app.close())
  const api = await app.inject({ method: 'POST', url: '/jobs', headers: { accept: 'application/json' }, payload: { title: 'api' } })
  t.equal(api.statusCode, 201)
  t.equal(api.headers.location, (api.json() as { url: string }).url, 'Location is the job page')
  const { id } = api.json() as { id: string }
  const c = await (await openPage(url, `/jobs/${id}`)).connect()
  const cancel = await app.inject({ method: 'POST', url: `/jobs/${id}/cancel`, headers: { 'hx-request': 'true' } })
  t.equal(cancel.statusCode, 204)
  await c.waitUntil(() => c.events.some(e => e.event === 'done'), 3000)
  t.match(c.events.at(-2)!.data, /banner-cancelled/)
  t.equal(c.events.at(-1)!.data, 'cancelled')
  c.close()
  t.equal((await runner.get(id))!.status, 'cancelled')

  const htmx = await app.inject({ method: 'POST', url: '/jobs', headers: { 'hx-request': 'true', 'content-type': 'application/x-www-form-urlencoded' }, payload: 'fail=1' })
  t.equal(htmx.statusCode, 202)
  const failingId = (htmx.headers.location as string).split('/').pop()!
  await until('job failed', async () => (await runner.get(failingId))!.status !== 'running', 3000)
  t.equal((await runner.get(failingId))!.status, 'failed')
  const failedPage = await app.inject(`/jobs/${failingId}`)
  t.match(failedPage.body, /banner banner-error/)

  // store holds 2: the cancelled job is dropped first
  const third = (await runner.start())!
  t.equal(await runner.get(id), undefined, 'oldest finished job dropped')
  t.ok(await runner.get(third.id))
  await runner.start() // drops the failed one
  const full = await app.inject({ method: 'POST', url: '/jobs', headers: { accept: 'application/json' }, payload: {} })
  t.equal(full.statusCode, 503, 'all running: refused, not unbounded')

  const unknown = await openPage(url, '/jobs/nope')
  t.equal(unknown.status, 404)
  t.notMatch(unknown.html, /sse-connect/, 'an unknown job\'s page does not connect')
  t.equal((await app.inject('/jobs/a%20b')).statusCode, 404, 'nor does an id that cannot be a topic')
  t.equal((await app.inject({ method: 'POST', url: '/jobs/nope/cancel' })).statusCode, 404)
  const index = await app.inject('/jobs/')
  t.match(index.body, new RegExp(`href="/jobs/${third.id}"`))
  const list = await runner.recent()
  t.ok(list.length <= 6)
})

t.test('jobs: app.close() stops the jobs it runs and records them as interrupted', async t => {
  const store = new MemoryRunStore()
  const { app, runner } = await start({ tickMs: 20, store })
  const job = (await runner.start())!
  await until('a tick', async () => (await store.get('job', job.id))!.data !== undefined && ((await store.get('job', job.id))!.data as { elapsed: number[] }).elapsed[0]! > 0, 2000)
  await app.close()
  const closed = await store.get('job', job.id)
  t.equal(closed?.status, 'interrupted', 'not left running')
  t.ok(closed?.finishedAt)
  await new Promise(resolve => setTimeout(resolve, 100))
  t.same(await store.get('job', job.id), closed, 'no tick after close (its timer is gone)')
})

t.test('jobs: a job whose owner stopped renewing shows as interrupted, live pages turn static', async t => {
  const store = new MemoryRunStore()
  const { app, url } = await start({ store, leaseMs: 300, sweepMs: 50 })
  t.teardown(() => app.close())
  // A job of another instance that died mid-run: its lease ends in 400 ms.
  const ghost: NewRun = {
    id: 'deadbeef', kind: 'job', title: 'Orphan <b>job</b>', owner: 'ghost-1', startedAt: Date.now() - 1000, data: { stages, elapsed: [40, 20] }
  }
  await store.create(ghost, 50, 400)
  const live = await openPage(url, '/jobs/deadbeef')
  t.match(live.html, /data-status="running"/, 'while its lease holds, it is running')
  t.match(live.html, /sse-connect=/)
  t.match(live.html, /Orphan &lt;b>job&lt;\/b>/, 'its title is escaped')
  const c = await live.connect()
  await c.waitUntil(() => c.events.some(e => e.event === 'done'), 5000)
  c.close()
  const final = c.events.at(-2)!.data
  t.match(final, /^<section id="run-deadbeef" class="card run" data-status="interrupted" hx-swap-oob="true">/, 'the live page gets the static interrupted run')
  t.match(final, /banner banner-interrupted/)
  t.match(final, /Interrupted: the server running it stopped/)
  t.match(final, /badge badge-interrupted/)
  t.equal(c.events.at(-1)!.data, 'interrupted')
  const page = await app.inject('/jobs/deadbeef')
  t.equal(page.statusCode, 200, 'never a 404')
  t.match(page.body, /data-status="interrupted"/)
  t.notMatch(page.body, /sse-connect/, 'static')
  t.match(page.body, /It had reached 50%/)
  t.equal((await store.get('job', 'deadbeef'))?.status, 'interrupted')
  t.equal((await app.inject({ method: 'POST', url: '/jobs/deadbeef/cancel' })).statusCode, 409)
})

t.test('jobs: a page rendered after the lease ran out, before any sweep, already shows interrupted', async t => {
  const store = new MemoryRunStore()
  const { app } = await start({ store, leaseMs: 60_000, sweepMs: 30_000 })
  t.teardown(() => app.close())
  await store.create({ id: 'cafe0001', kind: 'job', title: 'old', owner: 'gone', startedAt: 1, data: { stages, elapsed: [0, 0] } }, 50, -1)
  const page = await app.inject('/jobs/cafe0001')
  t.match(page.body, /data-status="interrupted"/)
  t.equal((await store.get('job', 'cafe0001'))?.status, 'interrupted', 'recorded by the render')
})

t.test('jobs: cancel on another runner sharing the store reaches the owner', async t => {
  const store = new MemoryRunStore()
  const { app, runner } = await start({ store, tickMs: 20, sweepMs: 50, leaseMs: 1000 })
  t.teardown(() => app.close())
  const other = new JobRunner({ stages, store, sweepMs: 50, leaseMs: 1000 })
  other.bind(app.sseHub, app.log)
  t.teardown(() => other.close())
  const job = (await runner.start({ title: 'far away' }))!
  t.not(other.owner, runner.owner)
  const outcome = await other.cancel(job.id)
  t.equal(outcome.result, 'requested', 'the other runner does not run it: it asks')
  await until('cancelled by its owner', async () => (await store.get('job', job.id))!.status !== 'running', 3000)
  t.equal((await store.get('job', job.id))!.status, 'cancelled')
  t.same((await other.recent()).map(j => j.id), (await runner.recent()).map(j => j.id), 'both list the same jobs')
  t.same(await other.cancel('ffffffff'), { result: 'unknown' })
})
