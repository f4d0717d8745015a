/**
 * `fastify-htmx-sse/testing` (`sseTest(app)`), imported by package name as a
 * user would: `oobParts` reads every fragment helper back as what it does, `openStream`
 * parses the wire format exactly and follows live pages of both htmx majors
 * over real sockets, `captureBroadcasts` records what was accepted and
 * nothing else. Every failure is a coded error, not a hang.
 */
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import htmxSse from 'fastify-htmx-sse'
import { Append, Prepend, Remove, Replace, Update } from 'fastify-htmx-sse/views'
import { sseTest } from 'fastify-htmx-sse/testing'

async function app (options: { htmx?: 2 | 4 } = {}, routes: (app: FastifyInstance) => void = () => {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  await app.register(htmxSse, { heartbeatMs: false, ...options })
  routes(app)
  return app
}

// It needs no app of its own: any app's helpers parse alike.
const { oobParts } = sseTest(Fastify())

t.test('oobParts: each fragment helper reads back as one part', async t => {
  t.same(oobParts(<Prepend to='orders' id='order-7' tag='li'><b>tea</b></Prepend> as string), [
    { swap: 'prepend', target: '#orders', id: 'order-7', html: '<li id="order-7"><b>tea</b></li>' }
  ])
  t.same(oobParts(<Prepend to='orders' id='order-8' limit={20}>x</Prepend> as string), [
    { swap: 'prepend', target: '#orders', id: 'order-8', html: '<div id="order-8">x</div>', limit: 20 }
  ], 'the limit delete and its sink are part of the prepend')
  t.same(oobParts(<Append to='rows' id='r-1' tag='tr' limit={3}><td>1</td></Append> as string), [
    { swap: 'append', target: '#rows', id: 'r-1', html: '<tr id="r-1"><td>1</td></tr>', limit: 3 }
  ], 'table rows, wrapped in tbody for the parser')
  t.same(oobParts(<Replace id='cpu' class='card'><b>42 %</b></Replace> as string), [
    { swap: 'replace', target: '#cpu', html: '<div id="cpu" class="card"><b>42 %</b></div>' }
  ], 'replace: the element as it lands, without hx-swap-oob')
  t.same(oobParts(<Update id='total'>{'<i>3</i>'}</Update> as string), [{ swap: 'update', target: '#total', html: '<i>3</i>' }])
  t.same(oobParts(<Update id='body' content='rows'><tr><td>a</td></tr></Update> as string), [{ swap: 'update', target: '#body', html: '<tr><td>a</td></tr>' }])
  t.same(oobParts(<Remove id='order-7' /> as string), [{ swap: 'remove', target: '#order-7', html: '' }])
  t.same(oobParts({ data: [<Remove id='a' />, <Replace id='b'>b</Replace>, <Prepend to='l' id='i'>i</Prepend>].join('') }).map(p => `${p.swap} ${p.target}`),
    ['remove #a', 'replace #b', 'prepend #l'], 'several fragments in one event, in order; an event object works too')
})

t.test('oobParts: hand-written oob parts, as htmx reads them', async t => {
  t.same(oobParts('<div id="cpu" hx-swap-oob="true"><b>1</b></div>'), [{ swap: 'replace', target: '#cpu', html: '<div id="cpu"><b>1</b></div>' }])
  t.same(oobParts('<p id="x" hx-swap-oob="innerHTML">new</p>'), [{ swap: 'update', target: '#x', html: 'new' }], 'a style alone targets the element\'s own id')
  t.same(oobParts('<div hx-swap-oob="beforeend: #log"><p>line</p></div><div hx-swap-oob="afterbegin:#feed">top</div>'), [
    { swap: 'append', target: '#log', html: '<p>line</p>' },
    { swap: 'prepend', target: '#feed', html: 'top' }
  ])
  t.same(oobParts('<div data-hx-swap-oob="afterend: #a">b</div><div hx-swap-oob="delete: .old, #gone"></div>'), [
    { swap: 'afterend', target: '#a', html: 'b' },
    { swap: 'remove', target: '.old, #gone', html: '' }
  ], 'other styles keep htmx\'s name; data-hx-swap-oob counts')
  t.same(oobParts('<div hx-swap-oob="outerHTML: #a &gt; li"><li hx-swap-oob="true" id="n">nested</li><script>"<div hx-swap-oob=true>"</script></div>'), [
    { swap: 'replace', target: '#a > li', html: '<div><li hx-swap-oob="true" id="n">nested</li><script>"<div hx-swap-oob=true>"</script></div>' }
  ], 'entities decoded; what is inside a part (oob or script text) belongs to it')
  t.same(oobParts('<b>plain</b> text'), [], 'no oob part')
})

t.test('openStream: parses the wire format exactly; listens on its own when the app is not listening', async t => {
  const a = await app({}, app => {
    app.get('/raw', (_request, reply) => {
      reply.hijack()
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream' })
      // BOM, CRLF and CR line ends, a comment, a field without a colon, an event without data, a chunk split inside a CRLF.
      reply.raw.write('\ufeffretry: 250\r\n\r\n: hello\r\nid: 1\r\nevent: a\r\ndata: one\r\ndata:two\r')
      setTimeout(() => {
        reply.raw.write('\n\r\nevent: empty\n\ndata\n\nid: 2\rdata:  spaced\r\r')
        reply.raw.end()
      }, 20)
    })
  })
  t.teardown(() => a.close())
  t.equal(a.server.listening, false)
  const stream = await sseTest(a).openStream('/raw')
  t.ok(a.server.listening, 'the app now listens on a loopback port')
  const seen = []
  for await (const event of stream) seen.push(event)
  t.same(seen, [
    { id: '1', event: 'a', data: 'one\ntwo' },
    { id: undefined, event: 'message', data: '' },
    { id: '2', event: 'message', data: ' spaced' }
  ], 'for await ends when the stream does')
  t.equal(stream.retry, 250)
  t.ok(stream.ended)
  await t.rejects(stream.next(), { code: 'HTMX_SSE_TEST_TIMEOUT', message: /openStream\(\/raw\): the stream (ended|closed), and no event is left \(3 received\)/ }, 'next() after the end rejects at once')
})

t.test('openStream: reply.sse() routes; next() by match, at once or waiting; timeouts are coded errors', async t => {
  const a = await app({}, app => {
    app.get('/s', (_request, reply) => {
      const stream = reply.sse()
      void stream.send('<b>1</b>', { event: 'tick', id: '1' })
      const timer = setTimeout(() => { void stream.send('2', { event: 'tock' }) }, 50)
      stream.signal.addEventListener('abort', () => clearTimeout(timer))
      return stream
    })
  })
  t.teardown(() => a.close())
  await a.listen({ host: '127.0.0.1', port: 0 })
  const stream = await sseTest(a).openStream('/s', { timeoutMs: 300 })
  t.equal(stream.status, 200)
  t.match(stream.headers['content-type'], /^text\/event-stream/)
  t.equal(stream.page, undefined)
  t.same(await stream.next({ event: 'tock' }), { id: undefined, event: 'tock', data: '2' }, 'waits for a later match')
  t.same(await stream.next(), { id: '1', event: 'tick', data: '<b>1</b>' }, 'an earlier one is still there')
  await t.rejects(stream.next(e => e.data === 'never', 100), { code: 'HTMX_SSE_TEST_TIMEOUT', message: /openStream\(\/s\): no event matching the predicate within 100 ms \(2 received\)/ })
  await t.rejects(stream.next(), { code: 'HTMX_SSE_TEST_TIMEOUT', message: /within 300 ms/ }, 'the open option is the default wait')
  stream.close()
  await t.rejects(sseTest(a).openStream('/missing'), { code: 'HTMX_SSE_TEST_STREAM', message: /openStream\(\/missing\): expected a 200 text\/event-stream, got 404 application\/json/ })
  await t.rejects(sseTest(a).openStream('http://elsewhere/s'), { code: 'HTMX_SSE_INVALID_OPTION' })
})

for (const htmx of [2, 4] as const) {
  t.test(`openStream: an htmx ${htmx} live page, followed to its stream; broadcasts captured`, async t => {
    const a = await app({ htmx }, app => {
      app.get('/orders', async (_request, reply) => {
        const live = await reply.live(['orders'])
        reply.header('set-cookie', 'sid=abc; Path=/; HttpOnly').type('text/html')
        return `<html><head>${live.scripts as string}</head><body><ul id="orders"></ul>${live.element as string}</body></html>`
      })
      app.get('/bare', async (_request, reply) => reply.type('text/html').send('<p>no live element</p>'))
    })
    t.teardown(() => a.close())
    const broadcasts = sseTest(a).captureBroadcasts()
    const before = await a.sseHub.publish('orders', { data: 'before the page' })
    const page = await sseTest(a).openStream('/orders')
    t.match(page.page, /<ul id="orders"><\/ul>/, 'the page\'s HTML')
    t.match(page.url, htmx === 2 ? /^\/_sse\/stream\?t=.+&lastEventId=\d+&sseResume=1$/ : /^\/_sse\/stream\?t=.+&lastEventId=\d+$/, 'the connect element\'s URL, with what the browser adds')
    const pending = broadcasts.next({ topic: 'orders', event: 'message' }) // the first one, published before the page
    const next = page.next(undefined, 2000)
    const id = await a.sseHub.publish('orders', { data: <Prepend to='orders' id='o-1' tag='li'>tea</Prepend> })
    t.same(await pending, { topic: 'orders', id: before, event: 'message', data: 'before the page' })
    const sent = await broadcasts.next({ topic: 'orders' })
    const got = await next
    t.same(got, { id, event: 'message', data: sent.data }, 'the page gets what was published after it rendered, not before')
    t.same(sent, { topic: 'orders', id, event: 'message', data: '<div hx-swap-oob="afterbegin: #orders:not(:has(> #o-1)), #orders > #o-1"><li id="o-1">tea</li></div><li id="o-1" hx-swap-oob="outerHTML: #orders > #o-1">tea</li>' })
    t.same(oobParts(sent), [{ swap: 'prepend', target: '#orders', id: 'o-1', html: '<li id="o-1">tea</li>' }])
    page.close()
    await t.rejects(sseTest(a).openStream('/bare'), { code: 'HTMX_SSE_TEST_STREAM', message: /openStream\(\/bare\): the page has no connect element/ })
    broadcasts.stop()
  })
}

t.test('openStream: the page\'s cookies and the given headers reach its stream; Last-Event-ID is sent', async t => {
  const seen: Array<Record<string, unknown>> = []
  const a = await app({}, app => {
    app.get('/page', async (_request, reply) => reply.header('set-cookie', 'sid=s3cret; Path=/').type('text/html')
      .send('<div hidden hx-ext="sse" sse-connect="/own?a=1&amp;b=2" sse-swap="message"></div>'))
    app.get('/own', (request, reply) => {
      seen.push({ cookie: request.headers.cookie, auth: request.headers.authorization, query: request.query, last: request.headers['last-event-id'] })
      const stream = reply.sse()
      void stream.send('ok')
      return stream
    })
  })
  t.teardown(() => a.close())
  const stream = await sseTest(a).openStream('/page', { headers: { authorization: 'Bearer t', cookie: 'theme=dark' }, lastEventId: '41' })
  t.equal((await stream.next()).data, 'ok')
  stream.close()
  t.same(seen, [{ cookie: 'theme=dark; sid=s3cret', auth: 'Bearer t', query: { a: '1', b: '2', sseResume: '1' }, last: '41' }])
})

t.test('captureBroadcasts: only what the hub accepted, as it accepted it; stop; several at once', async t => {
  const a = await app()
  t.teardown(() => a.close())
  const own = Object.getPrototypeOf(a.sseHub).publish
  const one = sseTest(a).captureBroadcasts()
  const two = sseTest(a).captureBroadcasts()
  const event = { event: 'update', data: Promise.resolve(<i>async</i>) }
  const published = a.sseHub.publish('t', event)
  event.event = 'changed-after'
  const id = await published
  await t.rejects(a.sseHub.publish('bad topic', { data: 'x' }), { code: 'HTMX_SSE_INVALID_TOPICS' }, 'a refused publish throws to its caller as usual')
  await t.rejects(a.sseHub.publish('t', { data: 42 as never }), { code: 'HTMX_SSE_INVALID_EVENT' })
  t.same(one.broadcasts, [{ topic: 't', id, event: 'update', data: '<i>async</i>' }], 'the rendered HTML and the fields as published; refusals not recorded')
  t.same(await two.next({ event: 'update' }), one.broadcasts[0])
  await t.rejects(two.next({ topic: 't' }, 50), { code: 'HTMX_SSE_TEST_TIMEOUT', message: /captureBroadcasts: no event with \{"topic":"t"\} within 50 ms \(1 received\)/ }, 'next() returns each broadcast once')
  one.stop()
  await a.sseHub.publish('t', { data: 'after one stopped' })
  t.equal(one.broadcasts.length, 1, 'a stopped capture records nothing more')
  t.equal((await two.next()).data, 'after one stopped', 'the other still records')
  const waiting = two.next(undefined, 5000)
  two.stop()
  await t.rejects(waiting, { code: 'HTMX_SSE_TEST_TIMEOUT', message: /the capture was stopped before a matching event came/ })
  t.notOk(Object.hasOwn(a.sseHub, 'publish'), 'the hub\'s own publish is back')
  t.equal(a.sseHub.publish, own)
  t.throws(() => sseTest(Fastify()).captureBroadcasts(), { code: 'HTMX_SSE_NOT_READY' })
})
