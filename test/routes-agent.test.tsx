import t from 'tap'
import Fastify from 'fastify'
import htmxSse from '../plugin/index.js'
import { agentEvents, AgentRunner, agentRoutes, simulatedAgent, type AgentEvent, type AgentSource, LogFeed, logsRoutes, formatLogRecord } from '../routes/index.js'
import { connect, waitUntil } from './helpers/sse-client.js'

const fast = simulatedAgent({ tokenMs: 1, toolMs: 10, thinkMs: 1 })

async function collect (source: AgentSource, prompt: string): Promise<AgentEvent[]> {
  const out: AgentEvent[] = []
  for await (const ev of source.run(prompt, new AbortController().signal)) out.push(ev)
  return out
}

t.test('simulatedAgent: deterministic, tools paired, done or error', async t => {
  const a = await collect(fast, 'health?')
  const b = await collect(fast, 'health?')
  t.same(a, b, 'same prompt, same events')
  t.same(a.filter(e => e.type !== 'text').map(e => e.type), ['tool_use', 'tool_result', 'tool_use', 'tool_result', 'done'])
  const failing = await collect(fast, 'please fail')
  t.same(failing.slice(-2).map(e => e.type), ['tool_result', 'error'])
  t.match(failing.at(-2), { isError: true })
  const ac = new AbortController()
  const it = fast.run('x', ac.signal)[Symbol.asyncIterator]()
  ac.abort()
  await t.rejects(it.next(), { name: 'AbortError' }, 'stops on abort')
})

t.test('agent: per-connection stream (reply.sse(signal => …)) with tool cards updated out of band', async t => {
  const app = Fastify({ logger: false })
  await app.register(htmxSse, { heartbeatMs: false })
  await app.register(agentRoutes, { prefix: '/agent', source: fast })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const { port } = app.server.address() as { port: number }
  const c = await connect(`http://127.0.0.1:${port}/agent/stream?prompt=${encodeURIComponent('<b>hi</b>')}`)
  await c.ended
  const names = c.events.map(e => e.event)
  t.equal(names[0], 'agent_run')
  t.equal(names.at(-1), 'done')
  t.match(c.events[0]!.data, /&lt;b>hi&lt;\/b>/, 'prompt escaped')
  const data = c.events.map(e => e.data).join('\n')
  t.match(data, /hx-swap-oob="beforeend:#agent-r[0-9a-f]+-output"><div id="agent-r[0-9a-f]+-tool-1" class="tool">/)
  t.match(data, /id="agent-r[0-9a-f]+-tool-1-status" class="badge badge-ok" role="status" hx-swap-oob="true"/)
  t.match(data, /hx-swap-oob="true">[^]*cpu_avg_pct|cpu_avg_pct/)
  t.match(data, /state-done/)
  t.equal((await app.inject('/agent/stream')).statusCode, 400)
  const session = await app.inject('/agent/session?prompt=hello')
  t.match(session.body, /sse-connect="\/agent\/stream\?prompt=hello" sse-close="done"/)
  t.equal((await app.inject('/agent/session?prompt=')).statusCode, 422)
})

t.test('agent: leaving the page stops the run', async t => {
  let aborted = false
  const slow: AgentSource = {
    async * run (_prompt, signal) {
      signal.addEventListener('abort', () => { aborted = true })
      for (let i = 0; ; i++) {
        await new Promise(resolve => setTimeout(resolve, 10))
        if (signal.aborted) return
        yield { type: 'text', text: `t${i} ` }
      }
    }
  }
  const app = Fastify({ logger: false })
  await app.register(htmxSse, { heartbeatMs: false })
  await app.register(agentRoutes, { source: slow })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const { port } = app.server.address() as { port: number }
  const c = await connect(`http://127.0.0.1:${port}/stream?prompt=go`)
  await c.waitFor(3)
  c.close()
  await waitUntil(() => aborted, 2000, 'source aborted')
  t.pass('the source saw the abort')
})

t.test('agent: errors become an error card; hub runs pre-render exactly up to the cursor', async t => {
  const app = Fastify({ logger: false })
  await app.register(htmxSse, { heartbeatMs: false })
  const runner = new AgentRunner({ source: fast })
  await app.register(agentRoutes, { prefix: '/agent', runner })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const { port } = app.server.address() as { port: number }
  const c = await connect(`http://127.0.0.1:${port}/agent/hub-stream`)
  const res = await app.inject({ method: 'POST', url: '/agent/runs', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'prompt=make+it+fail' })
  t.equal(res.statusCode, 202)
  await c.waitUntil(() => c.events.some(e => /state-error/.test(e.data)), 5000)
  const all = c.events.map(e => e.data).join('\n')
  t.match(all, /class="card agent-error" role="alert"/)
  t.match(all, /badge badge-error/)
  c.close()

  // a cursor in the middle of a run: the snapshot holds exactly the events up to it
  const throwing: AgentSource = { async * run () { yield { type: 'text', text: 'partial ' }; throw new Error('socket hang up') } }
  const r2 = new AgentRunner({ source: throwing })
  r2.bind(app.sseHub, app.log)
  await r2.start('x')
  await waitUntil(() => r2.current?.state === 'error', 2000, 'run errored')
  const snap = await r2.snapshot(await app.sseHub.head())
  t.equal(snap?.state, 'error')
  t.match(snap?.items, [{ kind: 'text', text: 'partial ' }, { kind: 'error', message: 'socket hang up' }])
  t.equal((await app.inject({ method: 'POST', url: '/agent/runs', payload: { prompt: '' } })).statusCode, 422)
  r2.close()

  const events: string[] = []
  for await (const ev of agentEvents(throwing, 'x', new AbortController().signal)) events.push(ev.event ?? '')
  t.same(events, ['agent_run', 'agent', 'agent', 'done'], 'a throwing source ends with an error card and done')
})

t.test('logs: pino lines become bounded slot updates', async t => {
  const feed = new LogFeed({ size: 3, echo: false })
  const app = Fastify({ logger: { level: 'info', stream: feed.stream } })
  await app.register(htmxSse, { heartbeatMs: false })
  await app.register(logsRoutes, { prefix: '/logs', feed })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const { port } = app.server.address() as { port: number }
  const c = await connect(`http://127.0.0.1:${port}/logs/stream`)
  app.log.warn('disk <almost> full')
  await c.waitUntil(() => c.events.some(e => e.data.includes('almost')), 3000)
  for (let i = 0; i < 5; i++) app.log.info(`line ${i}`)
  await c.waitUntil(() => c.events.map(e => e.data).join('').includes('line 4'), 3000)
  const data = c.events.map(e => e.data).join('\n')
  t.match(data, /disk &lt;almost> full/)
  t.match(data, /hx-swap-oob="outerHTML"/)
  t.notMatch(data, /log-slot-3/, 'only slots 0..size-1')
  t.ok(feed.lines.length <= 3)
  const page = await app.inject('/logs/')
  t.equal((page.body.match(/class="log-slot"/g) ?? []).length, 3, 'the page holds exactly size slots')
  t.equal(formatLogRecord({ msg: 'request completed', res: { statusCode: 200 }, responseTime: 1.234 }), 'request completed 200 1.2 ms')
  feed.write('not json\n')
  t.equal(feed.lines.at(-1)?.msg, 'not json')
  c.close()
})
