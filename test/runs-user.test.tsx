/**
 * Runs of the app's own work function (`app.runs.start`), over a listening
 * app with real clients: the run page's stream carries progress, log lines
 * and the end; the JSON API answers the stored run; a throw fails it (its
 * message escaped), a cancel aborts its signal, `app.close()` interrupts it;
 * bad values are coded errors at the call; progress reported faster than
 * the store answers is coalesced.
 */
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import htmxSse from '../plugin/index.js'
import { runs } from '../runs/index.js'
import { AgentRunner, agentRoutes, MemoryRunStore, type RunStore } from './helpers/routes.js'
import { openPage } from './helpers/live-page.js'
import { request, until } from './helpers/sse-client.js'
import type { RunContext } from '../runs/run.js'

/** A work function's steps, each waiting for the test to let it go on. */
function stepper (): { next: () => void, wait: () => Promise<void> } {
  const waiting: Array<() => void> = []
  let credit = 0
  return {
    next: () => { const w = waiting.shift(); if (w === undefined) credit++; else w() },
    wait: async () => { if (credit > 0) { credit--; return } await new Promise<void>(resolve => waiting.push(resolve)) }
  }
}

async function serve (t: Test, options: { store?: RunStore } = {}, more?: (app: FastifyInstance) => Promise<void>): Promise<{ app: FastifyInstance, url: string }> {
  const app = Fastify({ logger: false })
  await app.register(htmxSse, { heartbeatMs: false })
  await app.register(runs, options)
  await more?.(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  return { app, url: `http://127.0.0.1:${(app.server.address() as { port: number }).port}` }
}

const asJson = { accept: 'application/json' }
const percents = (data: string[]): number[] => data.map(d => Number(/aria-valuenow="(\d+)"/.exec(d)?.[1]))

t.test('progress, log lines and the result reach the run page live; the page and the JSON are the stored run', async t => {
  const { app, url } = await serve(t)
  const steps = stepper()
  const run = await app.runs.start('report', async (run) => {
    for (let step = 1; step <= 4; step++) {
      await steps.wait()
      await run.progress(step / 4, `Step ${step} of 4 <b>`)
      await run.append(step % 2 === 0 ? `line <${step}>` : { step, ok: true })
    }
    await steps.wait()
    return 'Report ready: <42> rows'
  }, { title: 'Monthly <report>' })
  t.match(run, { kind: 'report', title: 'Monthly <report>', status: 'running', progress: 0, url: `/runs/report/${run.id}` })
  t.match(run.id, /^[0-9a-f]{16}$/)

  steps.next()
  await until('step 1 stored', async () => (await app.runs.get('report', run.id))?.entries.length === 1)
  const page = await openPage(url, run.url)
  t.equal(page.status, 200)
  t.match(page.html, /Monthly &lt;report>/, 'the title, escaped')
  t.match(page.html, /aria-valuenow="25"/, 'the progress so far')
  t.match(page.html, /Step 1 of 4 &lt;b>/, 'its label, escaped')
  t.match(page.html, /<code>\{&#34;step&#34;:1,&#34;ok&#34;:true\}<\/code>/, 'a JSON entry as JSON')
  t.match(page.html, /sse-connect=/, 'live while running')
  t.match(page.html, new RegExp(`action="/runs/report/${run.id}/cancel"`), 'with its cancel button')
  const c = await page.connect()
  t.teardown(() => c.close())
  for (let i = 0; i < 4; i++) steps.next()
  await c.waitUntil(() => c.events.some(e => e.event === 'done'), 5000)

  const updates = c.events.filter(e => e.data.includes(`innerHTML: #run-${run.id}-progress`)).map(e => e.data)
  t.same(percents(updates), [50, 75, 100], 'each later step replaces the bar')
  const lines = c.events.filter(e => e.data.includes(`#run-${run.id}-log`)).map(e => e.data)
  t.equal(lines.length, 3, 'each later line is appended')
  t.match(lines[0], `id="run-${run.id}-e1"`, 'under its index (a replay adds nothing)')
  t.match(lines[0], /line &lt;2>/, 'escaped')
  const last = c.events.at(-2)!.data
  t.match(last, new RegExp(`^<section id="run-${run.id}" class="card run" data-status="done" hx-swap-oob="true">`), 'the static run replaces the live one')
  t.match(last, /banner-success[\s\S]*Report ready: &lt;42> rows/, 'the string result as text, escaped')
  t.notMatch(last, /sse-connect|Cancel/, 'no connection, no cancel button')
  t.same([c.events.at(-1)!.event, c.events.at(-1)!.data], ['done', 'done'])
  t.ok(c.events.slice(0, -1).every(e => e.event === undefined), 'every update is unnamed (both htmx majors swap it)')

  const json = await request(url + run.url, { headers: asJson })
  t.equal(json.status, 200)
  const body = JSON.parse(json.body) as Record<string, unknown>
  t.same(Object.keys(body).sort(), ['entries', 'error', 'finishedAt', 'id', 'kind', 'label', 'progress', 'result', 'startedAt', 'status', 'title', 'url'])
  t.match(body, { id: run.id, kind: 'report', status: 'done', progress: 1, label: 'Step 4 of 4 <b>', result: 'Report ready: <42> rows', error: null })
  t.same(body.entries, [{ step: 1, ok: true }, 'line <2>', { step: 3, ok: true }, 'line <4>'])
  const html = await request(url + run.url)
  t.notMatch(html.body, /sse-connect/, 'a finished run\'s page is static')
  t.match(html.body, /Report ready: &lt;42> rows/)
})

t.test('a throw fails the run with its message; a JSON result shows as JSON; a result JSON cannot keep fails it', async t => {
  const { app, url } = await serve(t)
  const failed = await app.runs.start('report', async () => { throw new Error('no <rows> today') })
  const rows = await app.runs.start('report', async () => ({ rows: [1, 2], note: '<ok>' }))
  const mapped = await app.runs.start('report', async () => new Map([['a', 1]]))
  await until('all three over', async () => (await app.runs.recent('report')).every(r => r.status !== 'running'))
  const f = (await app.runs.get('report', failed.id))!
  t.match(f, { status: 'failed', error: 'no <rows> today' })
  const page = await request(url + failed.url)
  t.match(page.body, /banner-error[\s\S]*Failed: no &lt;rows> today/, 'escaped on the page')
  t.match(await app.runs.get('report', rows.id), { status: 'done', result: { rows: [1, 2], note: '<ok>' } })
  t.match((await request(url + rows.url)).body, /<pre class="run-result">\{\n {2}&#34;rows&#34;: \[/, 'as indented JSON, escaped')
  const m = (await app.runs.get('report', mapped.id))!
  t.equal(m.status, 'failed', 'not silently stored as {}')
  t.match(m.error, /run result: a Map is not plain JSON/)
})

t.test('cancel: the signal aborts with a coded reason, the run ends cancelled, later calls reject; the route answers like a retry would', async t => {
  const { app, url } = await serve(t)
  let reason: unknown
  let late: unknown
  let lateRun!: RunContext
  const run = await app.runs.start('report', async (run, signal) => {
    lateRun = run
    await run.progress(0.5, 'halfway')
    await new Promise<void>(resolve => signal.addEventListener('abort', () => resolve(), { once: true }))
    reason = signal.reason
    late = await run.progress(0.6).then(() => 'stored', (err: { code?: string }) => err.code)
    throw new Error('ignored: the run was cancelled')
  })
  await until('halfway', async () => (await app.runs.get('report', run.id))?.progress === 0.5)
  const page = await openPage(url, run.url)
  const c = await page.connect()
  t.teardown(() => c.close())
  const answers = await Promise.all([0, 1, 2].map(async () => await request(`${url}${run.url}/cancel`, { method: 'POST', headers: asJson })))
  t.same(answers.map(a => a.status).sort(), [200, 409, 409], 'one cancel accepted')
  t.same(answers.filter(a => a.status === 409).map(a => JSON.parse(a.body)), [{ error: 'run is cancelled' }, { error: 'run is cancelled' }])
  await c.waitUntil(() => c.events.some(e => e.event === 'done'), 5000)
  t.match(c.events.at(-2)!.data, /data-status="cancelled"[\s\S]*Cancelled at 50%/)
  t.equal(c.events.at(-1)!.data, 'cancelled')
  await until('the work saw it', async () => late !== undefined)
  t.match(reason, { code: 'HTMX_SSE_RUN_ABORTED', message: /cancelled/ })
  t.equal(late, 'HTMX_SSE_RUN_ABORTED', 'progress after the cancel rejects with the reason')
  t.match(await app.runs.get('report', run.id), { status: 'cancelled', progress: 0.5, error: undefined }, 'its throw after the cancel changes nothing')
  t.throws(() => { void lateRun.append('x') }, { code: 'HTMX_SSE_RUN_ENDED' }, 'a call after the work returned is a loud error')
  const form = await request(`${url}${run.url}/cancel`, { method: 'POST', headers: { 'hx-request': 'true' } })
  t.equal(form.status, 409)
  t.equal((await request(`${url}/runs/report/0123456789abcdef/cancel`, { method: 'POST' })).status, 404)
  t.equal((await request(`${url}/runs/report/0123456789abcdef`)).status, 404)
  t.equal((await request(`${url}/runs/Bad%20Kind/0123456789abcdef`)).status, 400, 'a kind that cannot be one')
})

t.test('app.close() aborts the work and records the run interrupted', async t => {
  const store = new MemoryRunStore()
  const app = Fastify({ logger: false })
  await app.register(htmxSse, { heartbeatMs: false })
  await app.register(runs, { store })
  let reason: unknown
  const run = await app.runs.start('report', async (run, signal) => {
    await run.progress(0.3)
    await new Promise<void>(resolve => signal.addEventListener('abort', () => resolve(), { once: true }))
    reason = signal.reason
  })
  await until('30%', async () => (await app.runs.get('report', run.id))?.progress === 0.3)
  await app.close()
  t.match(reason, { code: 'HTMX_SSE_RUN_ABORTED', message: /interrupted: the app is closing/ })
  const stored = await store.get('fn:report', run.id)
  t.equal(stored?.status, 'interrupted')
  t.ok(stored?.finishedAt)
  await t.rejects(app.runs.start('report', async () => {}), { code: 'HTMX_SSE_NOT_READY' })
})

t.test('values that cannot be stored are coded errors at the call, never dropped', async t => {
  const { app } = await serve(t)
  await t.rejects(app.runs.start('Report', async () => {}), { code: 'HTMX_SSE_INVALID_RUN_VALUE', message: /kind "Report"/ })
  await t.rejects(app.runs.start('a'.repeat(33), async () => {}), { code: 'HTMX_SSE_INVALID_RUN_VALUE' })
  await t.rejects(app.runs.start('report', async () => {}, { title: 'x'.repeat(201) }), { code: 'HTMX_SSE_INVALID_RUN_VALUE', message: /title is 201 characters/ })
  await t.rejects(app.runs.start('report', 'work' as never), { code: 'HTMX_SSE_INVALID_RUN_VALUE' })
  const caught: Record<string, unknown> = {}
  const attempt = (name: string, call: () => unknown): void => {
    try { call(); caught[name] = 'accepted' } catch (err) { caught[name] = (err as { code?: string }).code }
  }
  const run = await app.runs.start('report', async (run) => {
    attempt('NaN', () => run.progress(NaN))
    attempt('1.5', () => run.progress(1.5))
    attempt('-0.1', () => run.progress(-0.1))
    attempt('string', () => run.progress('0.5' as never))
    attempt('label', () => run.progress(0.5, 'x'.repeat(201)))
    attempt('undefined entry', () => run.append(undefined))
    attempt('date entry', () => run.append({ at: new Date() }))
    attempt('cycle', () => { const a: Record<string, unknown> = {}; a.self = a; return run.append(a) })
    attempt('huge entry', () => run.append('x'.repeat(17 * 1024)))
    attempt('entry', () => run.append({ fine: [1, 'two', null] }))
    return 'ok'
  })
  await until('done', async () => (await app.runs.get('report', run.id))?.status === 'done')
  t.same(caught, {
    NaN: 'HTMX_SSE_INVALID_RUN_VALUE',
    1.5: 'HTMX_SSE_INVALID_RUN_VALUE',
    '-0.1': 'HTMX_SSE_INVALID_RUN_VALUE',
    string: 'HTMX_SSE_INVALID_RUN_VALUE',
    label: 'HTMX_SSE_INVALID_RUN_VALUE',
    'undefined entry': 'HTMX_SSE_INVALID_RUN_VALUE',
    'date entry': 'HTMX_SSE_INVALID_RUN_VALUE',
    cycle: 'HTMX_SSE_INVALID_RUN_VALUE',
    'huge entry': 'HTMX_SSE_INVALID_RUN_VALUE',
    entry: 'accepted'
  })
  t.same((await app.runs.get('report', run.id))!.entries, [{ fine: [1, 'two', null] }], 'only the valid entry was stored')
})

t.test('progress faster than the store answers is coalesced: bounded writes and events, the last value wins', async t => {
  const store = new MemoryRunStore()
  let updates = 0
  const counting = new Proxy(store, {
    get (target, key) {
      const value = Reflect.get(target, key) as unknown
      if (key === 'update') return async (...args: unknown[]) => { updates++; return await (value as (...a: unknown[]) => Promise<boolean>).apply(target, args) }
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
    }
  })
  const { app } = await serve(t, { store: counting })
  const steps = stepper()
  const run = await app.runs.start('bulk', async (run) => {
    let last: Promise<void> = Promise.resolve()
    for (let i = 1; i <= 10_000; i++) last = run.progress(i / 10_000 * 0.7, `item ${i}`)
    await last
    await steps.wait()
    // Awaited one by one: each is stored, but only what changes the page is published.
    for (let i = 1; i <= 10_000; i++) await run.progress(0.7 + i / 10_000 * 0.2)
    await steps.wait()
  })
  const topic = app.runs.topicOf('bulk', run.id)
  await until('the burst stored', async () => (await app.runs.get('bulk', run.id))?.label === 'item 10000')
  t.equal((await app.runs.get('bulk', run.id))!.progress, 0.7, 'the last value of the burst is the one stored')
  t.ok(updates <= 3, `10 000 calls in one burst: ${updates} store writes`)
  const burstEvents = (await app.sseHub.history(topic, { limit: 1000 })).length
  t.ok(burstEvents <= 3, `${burstEvents} events published`)
  steps.next()
  await until('the awaited loop', async () => (await app.runs.get('bulk', run.id))?.progress === 0.7 + 10_000 / 10_000 * 0.2, 20_000)
  const loopEvents = (await app.sseHub.history(topic, { limit: 1000 })).length - burstEvents
  t.ok(loopEvents <= 21, `10 000 awaited calls over 20 percent: ${loopEvents} events (one per percent shown)`)
  steps.next()
  await until('done', async () => (await app.runs.get('bulk', run.id))?.status === 'done')
})

t.test('the plugin needs the core plugin first; a URL of another runner\'s kind never reaches its runs', async t => {
  const bare = Fastify({ logger: false })
  await t.rejects(async () => { await bare.register(runs); await bare.ready() }, { code: 'FST_ERR_PLUGIN_DEPENDENCY_NOT_REGISTERED', message: "The dependency 'fastify-htmx-sse' of plugin 'fastify-htmx-sse/runs' is not registered" }, 'registered before the core plugin: a clear error')
  await bare.close()

  // A misspelt option is refused, never dropped (the default store would silently lose runs on restart).
  const typo = Fastify({ logger: false })
  await typo.register(htmxSse, {})
  await t.rejects(async () => { await typo.register(runs, { stor: new MemoryRunStore() } as never); await typo.ready() }, { code: 'HTMX_SSE_INVALID_OPTION', message: /stor \(runs\) is not an option \(did you mean store\?\)/ })
  await typo.close()

  const store = new MemoryRunStore()
  const agent = new AgentRunner({ store })
  const { url } = await serve(t, { store }, async app => { await app.register(agentRoutes, { prefix: '/agent', runner: agent }) })
  const id = await agent.start('private prompt')
  t.equal((await request(`${url}/runs/agent/${id}`, { headers: asJson })).status, 404, 'an agent run is no run of this plugin')
  t.equal((await request(`${url}/runs/agent/${id}/cancel`, { method: 'POST' })).status, 404)
  t.equal((await agent.get(id))?.cancelRequested, undefined)
})
