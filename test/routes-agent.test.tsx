import Html from '@kitajs/html'
import t from 'tap'
import Fastify from 'fastify'
import htmxSse from '../plugin/index.js'
import { agentEvents, AgentRunner, coalesceWhitespace, agentRoutes, simulatedAgent, type AgentEvent, type AgentSource, LogFeed, logsRoutes, formatLogRecord, MemoryRunStore } from './helpers/routes.js'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import { liveUrl, openPage } from './helpers/live-page.js'
import { connect, until, waitUntil } from './helpers/sse-client.js'

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

t.test('agent: per-connection stream (reply.sse(signal => …)): unnamed out-of-band updates, then done', async t => {
  const app = Fastify({ logger: false })
  await app.register(htmxSse, { heartbeatMs: false })
  await app.register(agentRoutes, { prefix: '/agent', source: fast })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const { port } = app.server.address() as { port: number }
  const c = await connect(`http://127.0.0.1:${port}/agent/stream?prompt=${encodeURIComponent('<b>hi</b>')}`)
  await c.ended
  const names = c.events.map(e => e.event)
  t.same(names.slice(0, -1).filter(n => n !== undefined), [], 'every update is unnamed (both htmx versions swap it)')
  t.equal(names.at(-1), 'done')
  t.equal(c.events.at(-1)!.data, 'end', 'done carries data (EventSource drops an event without)')
  t.match(c.events[0]!.data, /^<div hx-swap-oob="innerHTML:#agent-run"><article id="agent-r[0-9a-f]{16}"/, 'into the module\'s run slot')
  t.match(c.events[0]!.data, /&lt;b>hi&lt;\/b>/, 'prompt escaped')
  const data = c.events.map(e => e.data).join('\n')
  t.match(data, /hx-swap-oob="beforeend:#agent-r[0-9a-f]+-output"><div id="agent-r[0-9a-f]+-tool-1" class="tool">/)
  t.match(data, /id="agent-r[0-9a-f]+-tool-1-status" class="badge badge-ok" role="status" hx-swap-oob="true"/)
  t.match(data, /cpu_avg_pct/)
  t.match(data, /state-done/)
  t.equal((await app.inject('/agent/stream')).statusCode, 400)
})

t.test('coalesceWhitespace: no event carries only whitespace, and no whitespace is lost', async t => {
  const texts = ['Hello', ' ', '\n', 'world', ' ', '!', '  ']
  const source: AgentSource = {
    async * run () {
      for (const text of texts.slice(0, 3)) yield { type: 'text', text }
      yield { type: 'tool_use', id: 'a', name: 'n', input: 1 }
      for (const text of texts.slice(3)) yield { type: 'text', text }
      yield { type: 'done' }
    }
  }
  const out: AgentEvent[] = []
  for await (const ev of coalesceWhitespace(source.run('', new AbortController().signal))) out.push(ev)
  const chunks = out.flatMap(e => e.type === 'text' ? [e.text] : [])
  t.same(chunks, ['Hello', ' \nworld', ' !', '  '])
  t.equal(chunks.join(''), texts.join(''), 'every character kept')
  t.same(out.map(e => e.type), ['text', 'tool_use', 'text', 'text', 'text', 'done'])
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

t.test('agent: hub runs on their own topic; run pages live while running, static after, exactly up to the cursor', async t => {
  const app = Fastify({ logger: false })
  await app.register(htmxSse, { heartbeatMs: false })
  const runner = new AgentRunner({ source: fast })
  await app.register(agentRoutes, { prefix: '/agent', runner })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

  const res = await fetch(`${base}/agent/runs`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify({ prompt: 'make it fail' }) })
  t.equal(res.status, 202)
  const json = await res.json() as { id: string, url: string }
  t.match(json.id, /^r[0-9a-f]{16}$/)
  t.equal(json.url, `/agent/runs/${json.id}`)
  t.equal(res.headers.get('location'), json.url)
  await until('the JSON run ended', async () => (await runner.get(json.id))?.status !== 'running', 5000)

  // htmx 2: the answer is the run's live connect element, from before its start, for the form's target.
  const htmx2 = await fetch(`${base}/agent/runs`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'hx-request': 'true' }, body: 'prompt=make+it+fail' })
  const element = await htmx2.text()
  t.match(element, /^<div hidden hx-ext="sse" sse-connect="\/_sse\/stream\?t=[^"]+&amp;lastEventId=\d+" sse-swap="message" hx-swap="none" sse-close="done"><\/div>$/, 'htmx 2: the run\'s live connect element')
  t.equal(htmx2.headers.get('hx-reswap'), 'innerHTML', 'swapped into the form\'s target (the form itself swaps nothing)')
  const c = await connect(liveUrl(base, element)!)
  await c.waitUntil(() => c.events.some(e => e.event === 'done'), 5000)
  c.close()
  const id = /<article id="agent-(r[0-9a-f]{16})"/.exec(c.events[0]!.data)![1]!
  const url = `/agent/runs/${id}`
  t.equal(c.events.at(-1)?.event, 'done', 'the run ends its stream with done (the client closes on it)')
  t.match(c.events[0]!.data, /^<div hx-swap-oob="innerHTML:#agent-run">/, 'the first event fills the run slot')
  const all = c.events.map(e => e.data).join('\n')
  t.match(all, /class="card agent-error" role="alert"/)
  t.match(all, /badge badge-error/)
  const page = await (await fetch(`${base}${url}`)).text()
  t.match(page, `id="agent-${id}" class="agent-run" data-state="error"`)
  t.notMatch(page, /sse-connect|hx-sse/, 'a finished run is static')
  t.equal((await fetch(`${base}/agent/runs/r0000000000000000`)).status, 404)
  t.equal((await fetch(`${base}/agent/runs/nope`)).status, 400)

  const plain = await fetch(`${base}/agent/runs`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'prompt=hi' })
  t.equal(plain.status, 303, 'a plain form post goes to the run page')
  t.match(plain.headers.get('location'), /^\/agent\/runs\/r[0-9a-f]{16}$/)
  t.equal((await app.inject({ method: 'POST', url: '/agent/runs', payload: { prompt: '' } })).statusCode, 422)
  const empty = await app.inject({ method: 'POST', url: '/agent/runs', headers: { 'content-type': 'application/x-www-form-urlencoded', 'hx-request': 'true' }, payload: 'prompt=' })
  t.equal(empty.statusCode, 422)
  t.equal(empty.headers['hx-reswap'], 'innerHTML', 'htmx 2: the 422 lands in the form\'s target too')

  // a cursor in the middle of a run: the snapshot holds exactly the events up to it
  let release!: () => void
  const gate = new Promise<void>(resolve => { release = resolve })
  const throwing: AgentSource = { async * run () { yield { type: 'text', text: 'partial ' }; yield { type: 'text', text: 'more ' }; await gate; throw new Error('socket hang up') } }
  // A second runner on the same store (another instance, as far as the routes can tell).
  const r2 = new AgentRunner({ source: throwing, store: runner.store })
  r2.bind(app.sseHub, app.log)
  const rid = await r2.start('x')
  await until('two tokens', async () => (await r2.store.entries('agent', rid)).length === 2, 2000)
  await r2.settled()
  const mid = await app.sseHub.head()
  const midView = await r2.view(rid)
  t.equal(midView?.live, true, 'live while running')
  // Entries are recorded before they are published, so the newest one's hub id is not
  // known yet: the page shows the entries before it and the replay brings the newest.
  t.match(midView?.run.items, [{ kind: 'text', text: 'partial ' }], 'the page shows the stored transcript, up to the last entry known published')
  const entries = await r2.store.entries('agent', rid) as Array<{ after: number }>
  t.equal(midView?.cursor, String(entries.at(-1)!.after), 'and continues after it (where the newest entry was published)')
  const runPage = await openPage(base, `/agent/runs/${rid}`)
  t.match(runPage.html, new RegExp(`sse-connect="/_sse/stream\\?t=[^"]+&amp;lastEventId=${midView!.cursor!}" sse-swap="message" hx-swap="none" sse-close="done"`), 'the run page continues after that cursor, not the hub\'s head')
  const resumed = await runPage.connect()
  release()
  await until('run errored', async () => (await r2.get(rid))?.status === 'failed', 2000)
  await resumed.waitUntil(() => resumed.events.some(e => e.event === 'done'), 3000)
  resumed.close()
  t.notOk(resumed.events.some(e => e.data.includes('partial')), 'nothing the page showed comes again')
  t.match(resumed.events[0]?.data, /more /, 'the next event is the one after the cursor')
  t.match(resumed.events[1]?.data, /agent-error/)
  t.match((await r2.snapshot(rid, mid))?.items, [{ kind: 'text', text: 'partial more ' }])
  t.equal((await r2.snapshot(rid, mid))?.items.length, 1, 'nothing after the cursor')
  t.same((await r2.snapshot(rid, midView!.cursor))?.items, midView?.run.items, 'a snapshot at the page\'s cursor is what the page showed')
  const snap = await r2.snapshot(rid, await app.sseHub.head())
  t.equal(snap?.state, 'error')
  t.match(snap?.items, [{ kind: 'text', text: 'partial more ' }, { kind: 'error', message: 'socket hang up' }])
  await r2.close()

  const events: Array<string | undefined> = []
  for await (const ev of agentEvents(throwing, 'x', new AbortController().signal)) events.push(ev.event)
  t.same(events, [undefined, undefined, undefined, undefined, 'done'], 'a throwing source ends with an error card and done')
})

t.test('agent, htmx 4: the form post answers with the run stream itself, from before the run started', async t => {
  const app = Fastify({ logger: false })
  await app.register(htmxSse, { heartbeatMs: false, htmx: 4 })
  await app.register(agentRoutes, { prefix: '/agent', source: fast })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  // What htmx 4 sends: HX-Request, and text/event-stream appended to Accept.
  const res = await fetch(`${base}/agent/runs`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'hx-request': 'true', accept: 'text/html, text/event-stream' },
    body: 'prompt=' + encodeURIComponent('is it <ok>?')
  })
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /^text\/event-stream/)
  const events: EventSourceMessage[] = []
  const parser = createParser({ onEvent: e => events.push(e) })
  const decoder = new TextDecoder()
  const reader = res.body!.getReader()
  while (events.at(-1)?.event !== 'done') {
    const r = await reader.read()
    if (r.done) break
    parser.feed(decoder.decode(r.value, { stream: true }))
  }
  await reader.cancel()
  t.match(events[0]?.data, /^<div hx-swap-oob="innerHTML:#agent-run"><article id="agent-r[0-9a-f]{16}"/, 'the skeleton is the first event')
  t.match(events[0]?.data, /is it &lt;ok>\?/)
  t.equal(events.at(-1)?.event, 'done', 'done closes it (hx-sse:close on the form)')
  t.ok(events.slice(0, -1).every(e => e.event === undefined), 'updates are unnamed')
  const chunks = events.map(e => /<span class="chunk">([^<]*)<\/span>/.exec(e.data)?.[1]).filter(x => x !== undefined)
  t.ok(chunks.every(c => c.trim() !== ''), 'no whitespace-only chunk')
  const text = (await collect(fast, 'is it <ok>?')).flatMap(e => e.type === 'text' ? [e.text] : []).join('')
  t.equal(chunks.join(''), Html.escapeHtml(text), 'every token, spaces included (escaped)')
  const form = await (await fetch(`${base}/agent/`)).text()
  t.match(form, 'hx-sse:close="done"')
  await waitUntil(() => app.sseHub.stats().connections === 0, 2000, 'the stream released')
  t.pass('closing on done releases the stream')
})

t.test('logs: pino lines become bounded slot updates', async t => {
  const feed = new LogFeed({ size: 3, echo: false })
  const app = Fastify({ logger: { level: 'info', stream: feed.stream } })
  await app.register(htmxSse, { heartbeatMs: false })
  await app.register(logsRoutes, { prefix: '/logs', feed })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const { port } = app.server.address() as { port: number }
  const c = await (await openPage(`http://127.0.0.1:${port}`, '/logs/')).connect()
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

t.test('agent: a run whose owner stopped renewing shows its transcript as interrupted; a watching page turns static', async t => {
  const app = Fastify({ logger: false })
  await app.register(htmxSse, { heartbeatMs: false })
  const store = new MemoryRunStore()
  const runner = new AgentRunner({ source: simulatedAgent(), store, leaseMs: 300, sweepMs: 50 })
  await app.register(agentRoutes, { prefix: '/agent', runner })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  // Another instance's run, cut off after a tool call: its lease ends in 400 ms.
  const id = 'r00000000000000aa'
  await store.create({ id, kind: 'agent', title: 'why?', owner: 'ghost', startedAt: Date.now(), data: { prompt: 'why <script>?', startId: 1 } }, 10, 400)
  await store.append('agent', id, 'ghost', { id: 2, ev: { type: 'text', text: 'Checking <b>now</b>. ' } })
  await store.append('agent', id, 'ghost', { id: 3, ev: { type: 'tool_use', id: 'c1', name: 'get_metrics', input: { window: '1m' } } })
  const live = await (await fetch(`${base}/agent/runs/${id}`)).text()
  t.match(live, /sse-connect="\/_sse\/stream\?t=[^"]+&amp;lastEventId=3"/, 'live, continuing after its last stored entry')
  t.match(live, /Checking &lt;b>now&lt;\/b>\./, 'the stored transcript, escaped')
  t.match(live, /why &lt;script>\?/)
  t.match(live, /badge badge-pending/, 'the tool card as it stood')
  const c = await connect(liveUrl(base, live)!)
  await c.waitUntil(() => c.events.some(e => e.event === 'done'), 5000)
  c.close()
  const final = c.events.at(-2)!.data
  t.match(final, new RegExp(`^<article id="agent-${id}" class="agent-run" data-state="interrupted" data-status="interrupted" hx-swap-oob="true">`), 'the whole run, replaced out of band')
  t.match(final, /banner banner-interrupted/)
  t.match(final, /Checking &lt;b>now&lt;\/b>\./, 'with its transcript')
  const page = await (await fetch(`${base}/agent/runs/${id}`)).text()
  t.match(page, /data-status="interrupted"/)
  t.match(page, /Interrupted: the server running it stopped/)
  t.notMatch(page, /sse-connect|hx-sse/, 'static')
  t.equal((await store.get('agent', id))?.status, 'interrupted')
  // The pushed copy links the run page (it may land on the dashboard's slot); the run page itself does not.
  const pushed = final.replace(' hx-swap-oob="true"', '').replace(/ <a class="small run-link" href="[^"]+">run page<\/a>/, '')
  t.equal(pushed, page.slice(page.indexOf('<article'), page.indexOf('</article>') + 10), 'the live page ends exactly as the static page')
})
