import t from 'tap'
import Fastify from 'fastify'
import htmxSse from '../plugin/index.js'
import { JobRunner, jobsRoutes } from '../routes/index.js'
import { connect, waitUntil } from './helpers/sse-client.js'

const stages = [{ name: 'One', durationMs: 40 }, { name: 'Two', durationMs: 80 }]

async function start (options: { tickMs?: number, maxJobs?: number } = {}) {
  const app = Fastify({ logger: false })
  await app.register(htmxSse, { heartbeatMs: false })
  const runner = new JobRunner({ stages, tickMs: options.tickMs ?? 20, maxJobs: options.maxJobs })
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
  const page = await app.inject(href)
  t.equal(page.statusCode, 200)
  t.match(page.body, new RegExp(`sse-connect="/jobs/${id}/stream\\?lastEventId=\\d+" sse-swap="message" hx-swap="none" sse-close="done"`), 'live while running')
  t.match(page.body, /Nightly &lt;export>/)
  t.match(page.body, /role="progressbar"/)
  t.match(page.body, /Cancel job/)

  const cursor = /lastEventId=(\d+)/.exec(page.body)![1]
  const c = await connect(`${url}/jobs/${id}/stream?lastEventId=${cursor}`)
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

  t.equal(runner.get(id)!.status, 'done')
  const after = await app.inject(href)
  t.notMatch(after.body, /sse-connect/, 'a finished job page is static')
  t.match(after.body, /banner banner-success/)
  t.match(after.body, /aria-valuenow="100"/)
  const cancel = await app.inject({ method: 'POST', url: `${href}/cancel` })
  t.equal(cancel.statusCode, 409)
})

t.test('jobs: reload mid-job shows the progress so far and continues live', async t => {
  const { app, runner, url } = await start({ tickMs: 30 })
  t.teardown(() => app.close())
  const job = runner.start({ title: 'slow' })!
  await waitUntil(() => job.elapsed[0]! >= 40, 2000, 'first stage done')
  const page = await app.inject(`/jobs/${job.id}`)
  const shown = Number(/aria-valuenow="(\d+)"/.exec(page.body)![1])
  t.ok(shown > 0 && shown < 100, `page shows progress so far (${shown}%)`)
  t.match(page.body, /stage stage-done/)
  const connectUrl = /sse-connect="([^"]+)"/.exec(page.body)![1]!.replace(/&amp;/g, '&')
  const c = await connect(url + connectUrl)
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
  const c = await connect(`${url}/jobs/${id}/stream`)
  const cancel = await app.inject({ method: 'POST', url: `/jobs/${id}/cancel`, headers: { 'hx-request': 'true' } })
  t.equal(cancel.statusCode, 204)
  await c.waitUntil(() => c.events.some(e => e.event === 'done'), 3000)
  t.match(c.events.at(-2)!.data, /banner-cancelled/)
  t.equal(c.events.at(-1)!.data, 'cancelled')
  c.close()
  t.equal(runner.get(id)!.status, 'cancelled')

  const htmx = await app.inject({ method: 'POST', url: '/jobs', headers: { 'hx-request': 'true', 'content-type': 'application/x-www-form-urlencoded' }, payload: 'fail=1' })
  t.equal(htmx.statusCode, 202)
  const failing = runner.get((htmx.headers.location as string).split('/').pop()!)!
  await waitUntil(() => failing.status !== 'running', 3000, 'job failed')
  t.equal(failing.status, 'failed')
  const failedPage = await app.inject(`/jobs/${failing.id}`)
  t.match(failedPage.body, /banner banner-error/)

  // store holds 2: the cancelled job is dropped first
  const third = runner.start()!
  t.equal(runner.get(id), undefined, 'oldest finished job dropped')
  t.ok(runner.get(third.id))
  runner.start() // drops the failed one
  const full = await app.inject({ method: 'POST', url: '/jobs', headers: { accept: 'application/json' }, payload: {} })
  t.equal(full.statusCode, 503, 'all running: refused, not unbounded')

  t.equal((await app.inject('/jobs/nope')).statusCode, 404)
  const gone = await connect(`${url}/jobs/nope/stream`)
  await gone.ended
  t.same(gone.events.map(e => [e.event, e.data]), [['done', 'gone']], 'an unknown job\'s stream closes at once (a 404 would make htmx 4 reconnect forever)')
  t.equal((await app.inject({ method: 'POST', url: '/jobs/nope/cancel' })).statusCode, 404)
  const index = await app.inject('/jobs/')
  t.match(index.body, new RegExp(`href="/jobs/${third.id}"`))
  const list = runner.recent()
  t.ok(list.length <= 6)
})

t.test('jobs: app.close() clears job timers', async t => {
  const { app, runner } = await start({ tickMs: 1000 })
  const job = runner.start()!
  t.ok(job.timer)
  await app.close()
  t.equal(job.timer, undefined)
})
