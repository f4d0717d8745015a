/**
 * Issue 11, item 8 (a, b): the example app refuses cross-origin
 * state-changing requests, and never shows one visitor's request data (URL
 * query strings) to another through its live log panel.
 */
import t from 'tap'
import { buildApp, type DashboardApp } from '../example-app/app.js'
import { demoJob, fakeSampler, JOB_KIND } from './helpers/routes.js'
import { connect, request, waitUntil } from './helpers/sse-client.js'

interface Running extends DashboardApp { url: string }

async function start (): Promise<Running> {
  const dashboard = await buildApp({
    sampler: fakeSampler(),
    metricsIntervalMs: 200,
    metricsLingerMs: 0,
    statsIntervalMs: 500,
    echoLogs: false,
    heartbeatMs: false,
    agent: { tokenMs: 1, toolMs: 5, thinkMs: 5 },
    jobs: { tickMs: 50, stages: [{ name: 'Work', durationMs: 100 }] }
  })
  await dashboard.app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = dashboard.app.server.address() as { port: number }
  return { ...dashboard, url: `http://127.0.0.1:${port}` }
}

const FORM = 'application/x-www-form-urlencoded'

/** The state-changing forms of the dashboard, and how to count what each one published. */
const posts = [
  { path: '/notifications', body: (tag: string) => `level=info&text=${tag}`, topic: 'notifications' },
  { path: '/chat/lobby/messages', body: (tag: string) => `nick=mallory&text=${tag}`, topic: 'chat:lobby' },
  // each agent run has its own topic
  { path: '/agent/runs', body: (tag: string) => `prompt=${tag}`, topic: 'agent:*' }
]

async function published (d: Running, topic: string, tag: string): Promise<number> {
  const topics = topic === 'agent:*' ? (await d.agent.recent()).map(r => d.agent.topicOf(r.id)) : [topic]
  let n = 0
  for (const name of topics) n += (await d.app.sseHub.history(name, { limit: 1000 })).filter(m => m.data.includes(tag)).length
  return n
}

t.test('(a) cross-origin state-changing POSTs are refused with 403 and publish nothing', async t => {
  const d = await start()
  t.teardown(() => d.app.close())
  const crossSite: Array<[string, Record<string, string>]> = [
    ['Origin: http://evil.example', { origin: 'http://evil.example' }],
    ['Origin: null', { origin: 'null' }],
    ['Sec-Fetch-Site: cross-site (no Origin)', { 'sec-fetch-site': 'cross-site' }]
  ]
  let n = 0
  for (const { path, body, topic } of posts) {
    for (const [what, headers] of crossSite) {
      const tag = `xsrf${n++}`
      const res = await request(`${d.url}${path}`, { method: 'POST', headers: { 'content-type': FORM, ...headers }, body: body(tag) })
      t.equal(res.status, 403, `POST ${path} with ${what}: 403 (got ${res.status})`)
      t.equal(await published(d, topic, tag), 0, `POST ${path} with ${what}: nothing published on ${topic}`)
    }
  }
  const listTopic = d.app.runs.listTopic(JOB_KIND)
  const jobsBefore = (await d.app.sseHub.history(listTopic, { limit: 1000 })).length
  const job = await request(`${d.url}/jobs`, { method: 'POST', headers: { 'content-type': FORM, origin: 'http://evil.example' }, body: 'title=xsrf-job' })
  t.equal(job.status, 403, `POST /jobs cross-origin: 403 (got ${job.status})`)
  t.equal((await d.app.sseHub.history(listTopic, { limit: 1000 })).length, jobsBefore, 'and no job was started')
  const running = await d.app.runs.start(JOB_KIND, demoJob({ stages: [{ name: 'Long', durationMs: 60_000 }], tickMs: 100 }))
  const cancel = await request(`${d.url}${running.url}/cancel`, { method: 'POST', headers: { 'content-type': FORM, 'sec-fetch-site': 'cross-site' } })
  t.equal(cancel.status, 403, `POST a run's cancel cross-site: 403 (got ${cancel.status})`)
  t.equal((await d.app.runs.get(JOB_KIND, running.id))?.status, 'running', 'and the run goes on')

  // Same-origin requests and requests without Origin (curl, scripts) still work.
  const allowed: Array<[string, Record<string, string>]> = [
    ['Origin equal to the server\'s own origin', { origin: d.url }],
    ['Sec-Fetch-Site: same-origin', { origin: d.url, 'sec-fetch-site': 'same-origin' }],
    ['no Origin and no Sec-Fetch-Site', {}]
  ]
  for (const { path, body, topic } of posts) {
    for (const [what, headers] of allowed) {
      const tag = `ok${n++}`
      const res = await request(`${d.url}${path}`, { method: 'POST', headers: { 'content-type': FORM, ...headers }, body: body(tag) })
      t.ok(res.status >= 200 && res.status < 400, `POST ${path} with ${what}: accepted (${res.status})`)
      t.ok(await published(d, topic, tag) > 0, `POST ${path} with ${what}: published`)
    }
  }
})

t.test('(b) the live log panel never shows another visitor\'s query string', async t => {
  const d = await start()
  t.teardown(() => d.app.close())
  const logs = d.logs!
  const secret = 'my-secret-text'
  const seqBefore = logs.lines.at(-1)?.seq ?? -1
  const victim = await connect(`${d.url}/agent/stream?prompt=${secret}`)
  t.equal(victim.status, 200)
  await victim.waitUntil(() => victim.events.length > 0, 5000)
  victim.close()
  await victim.ended
  // A second visitor's request, then wait until the log has caught up with both.
  const other = await request(`${d.url}/notifications/?page=2`)
  t.equal(other.status, 200)
  await waitUntil(() => logs.lines.filter(l => l.seq > seqBefore && /request completed/.test(l.msg)).length >= 2, 5000, 'both requests logged')
  // LogFeed publishes once per event-loop turn.
  await new Promise(resolve => setImmediate(resolve))
  await new Promise(resolve => setTimeout(resolve, 20))

  const history = await d.app.sseHub.history(logs.topic, { limit: 1000 })
  t.ok(history.length > 0, 'the log tail published lines')
  const leaked = history.filter(m => m.data.includes(secret))
  t.equal(leaked.length, 0, `no published log line carries the query string (${leaked.length} do)`, { sample: leaked[0]?.data.slice(0, 300) })
  t.notOk(history.some(m => m.data.includes('page=2')), 'nor any other request\'s query string')
  const page = (await request(`${d.url}/`)).body
  t.notOk(page.includes(secret), 'the dashboard page (pre-rendered log tail) does not show it')
  const logPage = (await request(`${d.url}/logs/`)).body
  t.notOk(logPage.includes(secret), 'nor does the log page')
})

t.test('(b) a query string inside any log message (a 404 names the URL) is cut too', async t => {
  const { formatLogRecord } = await import('./helpers/routes.js')
  t.equal(formatLogRecord({ msg: 'Route GET:/agent/nope?prompt=my-secret not found' }), 'Route GET:/agent/nope?… not found')
  t.equal(formatLogRecord({ msg: 'incoming request', req: { method: 'GET', url: '/a/b?x=1#h' } }), 'incoming request GET /a/b?…')
  t.equal(formatLogRecord({ msg: 'plain text, no url' }), 'plain text, no url')
})
