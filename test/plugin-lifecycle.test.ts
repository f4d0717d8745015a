import t from 'tap'
import http2 from 'node:http2'
import net from 'node:net'
import { once } from 'node:events'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import Fastify from 'fastify'
import htmxSse from '../plugin/index.js'
import { FASTIFY_FINISH_LISTENER } from '../plugin/reply.js'
import { connect, waitUntil, type SseClient } from './helpers/sse-client.js'
import { activeTimers, startApp } from './helpers/app.js'

t.test('app.close() with 1,000 open streams: every stream ended promptly, nothing left behind', async t => {
  const timersBefore = activeTimers()
  const { app, url } = await startApp({ heartbeatMs: 1000, retryMs: 2000 }, app => {
    app.get('/s', (_req, reply) => reply.sse({ topics: ['t'] }))
    app.get('/plain', (_req, reply) => {
      const stream = reply.sse()
      const timer = setInterval(() => { void stream.send('x') }, 5000)
      stream.signal.addEventListener('abort', () => clearInterval(timer))
      return stream
    })
  })
  const clients: SseClient[] = []
  for (let i = 0; i < 1000; i++) clients.push(await connect(`${url}/${i % 2 === 0 ? 's' : 'plain'}`))
  await waitUntil(() => app.sseHub.stats().connections === 500, 5000, '500 hub connections')
  await app.close()
  await waitUntil(() => clients.every(c => c.isEnded()), 2000, 'every client saw its stream end')
  t.ok(clients.every(c => /retry: \d+\n\n$/.test(c.raw())), 'each stream ended with a jittered retry hint')
  const stats = app.sseHub.stats()
  t.equal(stats.connections, 0, 'no hub subscriptions left')
  t.same(stats.topics, {}, 'no topics left')
  await new Promise(resolve => setImmediate(resolve))
  t.ok(activeTimers() <= timersBefore, `no timers left behind (${activeTimers()} now, ${timersBefore} before)`)
})

t.test(`Fastify still has its '${FASTIFY_FINISH_LISTENER}' finish listener (onResponse for dropped streams relies on it)`, async t => {
  let names: string[] = []
  const { app, url } = await startApp({}, app => {
    // Fastify attaches the listener when the app logs or has onResponse hooks.
    app.addHook('onResponse', async () => {})
    app.get('/s', (_req, reply) => {
      names = reply.raw.listeners('finish').map(fn => fn.name)
      return reply.sse()
    })
  })
  t.teardown(() => app.close())
  const client = await connect(`${url}/s`)
  await waitUntil(() => names.length > 0)
  t.ok(names.includes(FASTIFY_FINISH_LISTENER),
    `fastify ${app.version} names its finish listener ${JSON.stringify(FASTIFY_FINISH_LISTENER)} (found ${JSON.stringify(names)}): ` +
    'if this fails, plugin/reply.ts completeRequest() no longer runs onResponse for streams the client dropped')
  client.close()
})

t.test('new streams during shutdown are refused with 503', async t => {
  const { app, url } = await startApp({}, app => {
    app.addHook('preClose', async () => {
      const res = await fetch(`${url}/s`).catch(() => undefined)
      refused = res?.status
    })
    app.get('/s', (_req, reply) => reply.sse())
  })
  let refused: number | undefined
  const client = await connect(`${url}/s`)
  await app.close()
  await client.ended
  t.ok(refused === undefined || refused === 503, `a stream opened while closing is not accepted (${String(refused)})`)
})

t.test('works over HTTP/2 with a node:http2 client', async t => {
  const app = Fastify({ http2: true })
  await app.register(htmxSse, { heartbeatMs: false })
  app.addHook('onRequest', async (_req, reply) => { reply.header('access-control-allow-origin', '*') })
  app.get('/s', (_req, reply) => reply.sse(async function * () {
    yield { event: 'a', data: 'one' }
    yield { event: 'b', data: 'two\nlines', id: '5' }
  }()))
  app.get('/hub', (_req, reply) => reply.sse({ topics: ['h2'] }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port
  const session = http2.connect(`http://127.0.0.1:${port}`)
  t.teardown(async () => { session.close(); await app.close() })

  const read = (path: string, until: (events: EventSourceMessage[]) => boolean): Promise<{ headers: http2.IncomingHttpHeaders, events: EventSourceMessage[] }> =>
    new Promise((resolve, reject) => {
      const req = session.request({ ':path': path, accept: 'text/event-stream' })
      const events: EventSourceMessage[] = []
      let headers: http2.IncomingHttpHeaders = {}
      const parser = createParser({ onEvent: e => events.push(e) })
      req.setEncoding('utf8')
      req.on('response', h => { headers = h })
      req.on('data', (chunk: string) => {
        parser.feed(chunk)
        if (until(events)) { req.close(); resolve({ headers, events }) }
      })
      req.on('end', () => resolve({ headers, events }))
      req.on('error', reject)
    })

  const { headers, events } = await read('/s', () => false)
  t.equal(headers[':status'], 200)
  t.equal(headers['content-type'], 'text/event-stream; charset=utf-8')
  t.equal(headers['access-control-allow-origin'], '*')
  t.same(events.map(e => [e.event, e.data, e.id]), [['a', 'one', undefined], ['b', 'two\nlines', '5']])

  const live = read('/hub', evs => evs.length === 3)
  await waitUntil(() => app.sseHub.stats().connections === 1)
  for (let i = 0; i < 3; i++) await app.sseHub.publish('h2', { event: 'n', data: String(i) })
  t.same((await live).events.map(e => e.data), ['0', '1', '2'])
  await waitUntil(() => app.sseHub.stats().connections === 0, 2000, 'the h2 stream closed on the server')
})

t.test('plugin options are validated with clear errors', async t => {
  for (const [options, message] of [
    [{ heartbeatMs: -1 }, /heartbeatMs/],
    [{ retryMs: 0 }, /retryMs/],
    [{ maxBufferedBytes: Number.NaN }, /maxBufferedBytes/],
    [{ history: 1.5 }, /history/],
    [{ authorize: 'yes' }, /authorize/]
  ] as const) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(htmxSse, options as never).ready() }, { message }, `rejects ${JSON.stringify(options)}`)
    await app.close().catch(() => {})
  }
})

t.test('reply.sse() on a reply already sent throws', async t => {
  const app = Fastify()
  await app.register(htmxSse)
  let error: Error | undefined
  app.get('/s', async (_req, reply) => {
    await reply.send('done')
    try { reply.sse() } catch (err) { error = err as Error }
  })
  await app.inject('/s')
  t.match(error?.message, /already sent/)
  await app.close()
})

t.test('a connection that never sent a request (Chromium\'s spare socket) does not hold app.close()', async t => {
  const { app, url } = await startApp({}, app => { app.get('/ok', async () => 'ok') })
  const { port } = new URL(url)
  const open = async (): Promise<net.Socket> => await new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1', () => resolve(socket)).once('error', reject)
  })
  // A kept-alive socket that served a request is Fastify's 'idle' case; the silent one is ours.
  const silent = await open()
  const used = await open()
  used.write('GET /ok HTTP/1.1\r\nhost: x\r\n\r\n')
  await once(used, 'data')
  const closedBy = new Promise<string>(resolve => silent.once('close', () => resolve('server')))
  await app.close()
  t.equal(await closedBy, 'server', 'the silent socket was closed by the server')
  t.equal(silent.bytesRead, 0, 'it was sent nothing (no response lost)')
  used.destroy()
})

t.test('closePreRequestSockets: false leaves a silent socket to Node\'s headersTimeout', async t => {
  const { app, url } = await startApp({ closePreRequestSockets: false }, () => {})
  const silent = await new Promise<net.Socket>((resolve, reject) => {
    const socket = net.connect(Number(new URL(url).port), '127.0.0.1', () => resolve(socket)).once('error', reject)
  })
  await new Promise(resolve => setTimeout(resolve, 50))
  let closed = false
  const closing = app.close().then(() => { closed = true })
  await new Promise(resolve => setTimeout(resolve, 500))
  t.equal(closed, false, 'app.close() still waits on the silent socket')
  t.equal(silent.destroyed, false, 'which is still open')
  silent.destroy()
  await closing
  t.equal(closed, true, 'and finishes once the client lets go')
})
