/**
 * The log tail is public (the dashboard shows it to every visitor), and a
 * private agent run's URL is the only key to its page and prompt: no visitor
 * ever receives another visitor's run id through the tail.
 */
import t from 'tap'
import { buildApp } from '../example-app/app.js'
import { fakeSampler, formatLogRecord, LogFeed } from './helpers/routes.js'
import { liveUrl, openPage } from './helpers/live-page.js'
import { connect, request } from './helpers/sse-client.js'

t.test('a request for a private run URL never reaches another client\'s log tail; the request line does, redacted', async t => {
  const { app, logs } = await buildApp({
    sampler: fakeSampler(),
    metricsLingerMs: 0,
    echoLogs: false,
    heartbeatMs: false,
    agent: { tokenMs: 1, toolMs: 5, thinkMs: 5 }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const tail = await (await openPage(base, '/logs/')).connect()
  t.teardown(() => tail.close())

  // Visitor A: a run of their own (from the form: its live element), its page, a mistyped URL under it.
  const started = await request(`${base}/agent/runs`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'hx-request': 'true' }, body: 'prompt=my+secret+plan' })
  t.equal(started.status, 200)
  const stream = await connect(liveUrl(base, started.body)!)
  await stream.waitUntil(() => stream.events.some(e => e.event === 'done'), 10_000)
  stream.close()
  const id = /<article id="agent-(r[0-9a-f]{16})"/.exec(stream.events[0]!.data)![1]!
  const url = `/agent/runs/${id}`
  t.equal((await request(base + url)).status, 200)
  t.equal((await request(`${base}${url}/oops`)).status, 404)
  app.log.warn('end of visitor traffic')

  // Visitor B's tail: everything up to the marker arrived (one loop turn per batch).
  await tail.waitUntil(() => tail.events.some(e => e.data.includes('end of visitor traffic')), 10_000)
  const seen = tail.events.map(e => e.data).join('\n')
  t.match(seen, 'GET /agent/runs/:id', 'the request lines are in the tail…')
  t.notOk(seen.includes(id), '…without the run id')
  t.notOk(seen.includes(id.slice(1)), 'not even its hex part')
  t.notMatch(seen, /secret plan/, 'nor the prompt')
  t.notOk(logs!.lines.some(l => l.msg.includes(id)), 'nor in the lines a page renders')
  const page = await request(`${base}/logs/`)
  t.notOk(page.body.includes(id), 'the log page neither')
})

t.test('formatLogRecord and LogFeed.add replace id-like tokens, keep words and numbers', async t => {
  t.equal(formatLogRecord({ msg: 'incoming request', req: { method: 'GET', url: '/agent/runs/r0123456789abcdef?x=1' } }), 'incoming request GET /agent/runs/:id?…')
  t.equal(formatLogRecord({ msg: 'Route GET:/agent/runs/r00000000000000aa/stream not found' }), 'Route GET:/agent/runs/:id/stream not found')
  t.equal(formatLogRecord({ msg: 'runs: store write failed', err: { message: 'append to run "r1234567890abcdef" timed out' } }), 'runs: store write failed : append to run ":id" timed out')
  t.equal(formatLogRecord({ msg: 'listening on 127.0.0.1:3000', responseTime: 12.5 }), 'listening on 127.0.0.1:3000 12.5 ms')
  const feed = new LogFeed({ echo: false })
  feed.add({ level: 'info', time: 1, msg: 'job 1a2b3c4d done' })
  t.equal(feed.lines.at(-1)?.msg, 'job :id done', 'lines added directly too')
})
