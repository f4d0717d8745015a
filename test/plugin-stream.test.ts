import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent, fetch as undiciFetch } from 'undici'
import { EventSource } from 'eventsource'
import { connect, request, waitUntil } from './helpers/sse-client.js'
import { startApp } from './helpers/app.js'
import type { SseStream } from '../plugin/index.js'

t.test('reply.sse(): headers, retry hint, ordered sends (sync and async), close', async t => {
  const { app, url } = await startApp({ retryMs: 1000 }, app => {
    app.get('/s', (_req, reply) => {
      const stream = reply.sse()
      void stream.send('one', { event: 'a' })
      void stream.send(new Promise<string>(resolve => setTimeout(() => resolve('<b>two</b>'), 30)), { event: 'b', id: '2' })
      void stream.send('three\nlines\r\nhere', { event: 'c' })
      stream.close()
      return stream
    })
  })
  t.teardown(() => app.close())
  const client = await connect(`${url}/s`)
  await client.ended
  t.equal(client.status, 200)
  t.equal(client.headers['content-type'], 'text/event-stream; charset=utf-8')
  t.equal(client.headers['cache-control'], 'no-cache')
  t.equal(client.headers['x-accel-buffering'], 'no')
  t.same(client.events.map(e => [e.event, e.data]), [['a', 'one'], ['b', '<b>two</b>'], ['c', 'three\nlines\nhere']])
  t.equal(client.events[1]!.id, '2')
  t.equal(client.retries.length, 1)
  t.ok(client.retries[0]! >= 800 && client.retries[0]! <= 1200, 'retry is jittered around retryMs')
  t.match(client.raw(), /^retry: \d+\n\n/, 'retry hint comes first')
})

t.test('invalid fields throw a TypeError at send() and nothing is written', async t => {
  const errors: string[] = []
  const { app, url } = await startApp({}, app => {
    app.get('/s', (_req, reply) => {
      const stream = reply.sse()
      for (const bad of [{ event: 'x\ny' }, { id: 'a\rb' }, { id: 'a\u0000' }, { retry: -1 }, { event: 'a,b' }, { event: 'a b' }]) {
        try {
          void stream.send('forged\n\nevent: evil', bad)
        } catch (err) {
          if (err instanceof TypeError && (err as { code?: string }).code === 'HTMX_SSE_INVALID_EVENT') errors.push(err.message)
        }
      }
      void stream.send('ok')
      stream.close()
      return stream
    })
  })
  t.teardown(() => app.close())
  const client = await connect(`${url}/s`)
  await client.ended
  t.equal(errors.length, 6, 'each bad field threw a TypeError with code HTMX_SSE_INVALID_EVENT')
  t.match(errors[0], /"event"/)
  t.match(errors[1], /"id"/)
  t.match(errors[2], /"id"/)
  t.match(errors[3], /"retry"/)
  t.match(errors[4], /"event" "a,b" must not contain commas or whitespace/)
  t.match(errors[5], /"event"/)
  t.same(client.events.map(e => e.data), ['ok'])
  t.notMatch(client.raw(), /forged|evil/)
})

t.test('const s = await reply.sse() resolves with the stream at once, and s.send() delivers; done resolves at the end', async t => {
  let reason: string | undefined
  const { app, url } = await startApp({}, app => {
    app.get('/s', async (_req, reply) => {
      const s = await reply.sse()
      await s.send('one')
      await s.send({ data: 'two', event: 'second' })
      s.close()
      reason = await s.done
      // Awaiting again is harmless: still the stream, not its end.
      t.equal(await s, s)
    })
  })
  t.teardown(() => app.close())
  const client = await connect(`${url}/s`)
  await client.ended
  t.same(client.events.map(e => [e.event, e.data]), [[undefined, 'one'], ['second', 'two']])
  t.equal(reason, 'server', 'done resolved with the close reason')
})

t.test('a handler that returns the stream gets no "reply was already sent" warning', async t => {
  const warnings: string[] = []
  const { app, url } = await startApp({}, app => {
    app.get('/sync', (_req, reply) => { const s = reply.sse(); void s.send('x').then(() => s.close()); return s })
    app.get('/async', async (_req, reply) => { const s = reply.sse(); void s.send('y').then(() => s.close()); return s })
  }, {
    logger: {
      level: 'warn',
      stream: { write: (line: string) => { warnings.push(line) } }
    }
  })
  t.teardown(() => app.close())
  for (const path of ['/sync', '/async']) {
    const client = await connect(url + path)
    await client.ended
    t.equal(client.events.length, 1, `${path} delivered`)
  }
  t.same(warnings.filter(w => /already sent/i.test(w)), [], 'no warning')
})

t.test('hub streams refuse a user id (it would corrupt Last-Event-ID)', async t => {
  let error: unknown
  const { app, url } = await startApp({}, app => {
    app.get('/s', (_req, reply) => {
      const s = reply.sse({ topics: ['a'] })
      try { void s.send('x', { id: '99' }) } catch (err) { error = err }
      return s
    })
  })
  t.teardown(() => app.close())
  const client = await connect(`${url}/s`)
  await waitUntil(() => error !== undefined)
  t.ok(error instanceof TypeError, 'a TypeError')
  t.match(error, { code: 'HTMX_SSE_INVALID_EVENT', message: /assigns ids/ })
  client.close()
})

t.test('headers set before sse() are kept; hooks run first; 401 from preHandler is a normal reply', async t => {
  const seen: string[] = []
  const { app, url } = await startApp({}, app => {
    app.addHook('onRequest', async (_req, reply) => {
      seen.push('onRequest')
      reply.header('access-control-allow-origin', 'https://example.test')
    })
    app.get('/s', {
      preHandler: async (req, reply) => {
        seen.push('preHandler')
        if (req.headers.authorization !== 'Bearer ok') return await reply.code(401).send({ error: 'unauthorized' })
      }
    }, (_req, reply) => {
      seen.push('handler')
      reply.header('set-cookie', ['a=1; HttpOnly', 'b=2'])
      const stream = reply.sse()
      void stream.send('hi')
      stream.close()
      return stream
    })
  })
  t.teardown(() => app.close())
  const denied = await request(`${url}/s`)
  t.equal(denied.status, 401)
  t.same(JSON.parse(denied.body), { error: 'unauthorized' })
  const client = await connect(`${url}/s`, { headers: { authorization: 'Bearer ok' } })
  await client.ended
  t.equal(client.headers['access-control-allow-origin'], 'https://example.test')
  t.same(client.headers['set-cookie'], ['a=1; HttpOnly', 'b=2'])
  t.same(seen, ['onRequest', 'preHandler', 'onRequest', 'preHandler', 'handler'])
})

t.test('onResponse fires and the request is logged when the stream ends', async t => {
  const lines: Array<Record<string, unknown>> = []
  const responses: number[] = []
  const { app, url } = await startApp({}, app => {
    app.addHook('onResponse', async (_req, reply) => { responses.push(reply.statusCode) })
    app.get('/s', (_req, reply) => {
      const stream = reply.sse()
      setTimeout(() => stream.close(), 20)
      return stream
    })
    app.get('/forever', (_req, reply) => reply.sse())
  }, {
    logger: { level: 'info', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } }
  })
  t.teardown(() => app.close())
  const client = await connect(`${url}/s`)
  await client.ended
  await waitUntil(() => responses.length === 1)
  t.same(responses, [200])
  t.ok(lines.some(l => l.msg === 'request completed'), 'fastify logged the completed request')
  const dropped = await connect(`${url}/forever`)
  dropped.close()
  await waitUntil(() => lines.some(l => l.msg === 'sse stream closed' && l.reason === 'client'), 2000, 'client close log')
  t.pass('a stream the client dropped is logged with its reason')
  await waitUntil(() => responses.length === 2, 2000, 'onResponse for the dropped stream')
  t.same(responses, [200, 200], 'onResponse fired for the dropped stream too')
  t.equal(lines.filter(l => l.msg === 'request completed').length, 2, 'and Fastify logged it as completed, once')
})

t.test('hostile Last-Event-ID is ignored; header and query are both read', async t => {
  const ids: Array<string | undefined> = []
  const { app, url } = await startApp({}, app => {
    app.get('/s', (_req, reply) => {
      const stream = reply.sse()
      ids.push(stream.lastEventId)
      void stream.send(`you said ${stream.lastEventId ?? 'nothing'}`)
      stream.close()
      return stream
    })
  })
  t.teardown(() => app.close())
  for (const headers of [{ 'last-event-id': '42' }, { 'last-event-id': 'x'.repeat(300) }, { 'last-event-id': 'a\tb\u00ff' }]) {
    const c = await connect(`${url}/s`, { headers })
    await c.ended
  }
  const viaQuery = await connect(`${url}/s?lastEventId=77`)
  await viaQuery.ended
  const hostileQuery = await connect(`${url}/s?lastEventId=${encodeURIComponent('1\u0000\r\nx')}`)
  await hostileQuery.ended
  t.same(ids, ['42', undefined, undefined, '77', undefined])
  t.equal(hostileQuery.events[0]!.data, 'you said nothing', 'never echoed')
})

t.test('heartbeat comments on idle streams; false disables them', async t => {
  const { app, url } = await startApp({ heartbeatMs: 30 }, app => { app.get('/s', (_req, reply) => reply.sse()) })
  t.teardown(() => app.close())
  const client = await connect(`${url}/s`)
  await client.waitUntil(() => client.comments.length >= 3, 3000)
  t.ok(client.comments.every(c => c.trim() === 'ping'))
  client.close()

  // The heartbeat is one shared interval that exists only while a stream is
  // open. Watch the intervals the plugin creates while a stream opens: with
  // heartbeatMs false there must be none (a default 15 s heartbeat would be
  // one, and would never beat within a short test).
  const intervals: number[] = []
  const real = globalThis.setInterval
  globalThis.setInterval = ((fn: () => void, ms?: number, ...args: unknown[]) => {
    intervals.push(ms ?? 0)
    return real(fn, ms, ...args)
  }) as typeof setInterval
  t.teardown(() => { globalThis.setInterval = real })
  for (const heartbeatMs of [false, 60_000] as const) {
    const other = await startApp({ heartbeatMs }, app => { app.get('/s', (_req, reply) => reply.sse()) })
    t.teardown(() => other.app.close())
    intervals.length = 0
    const c = await connect(`${other.url}/s`)
    await sleep(20)
    t.same(intervals, heartbeatMs === false ? [] : [60_000], `heartbeatMs ${String(heartbeatMs)}: intervals created ${JSON.stringify(intervals)}`)
    c.close()
  }
  globalThis.setInterval = real
})

t.test('reply.sse(generator): events in order, clean end, finally runs when the client leaves', async t => {
  let finallyRan = false
  let produced = 0
  const { app, url } = await startApp({}, app => {
    app.get('/finite', (_req, reply) => reply.sse(async function * () {
      for (let i = 0; i < 5; i++) yield { event: 'n', data: Promise.resolve(`<i>${i}</i>`), id: String(i) }
    }()))
    app.get('/sync-iterable', (_req, reply) => reply.sse([{ data: 'x' }, { data: 'y', event: 'e' }]))
    app.get('/infinite', (_req, reply) => reply.sse(async function * (signal) {
      try {
        while (!signal.aborted) {
          produced++
          yield { event: 'tick', data: String(produced) }
          await sleep(5)
        }
      } finally {
        finallyRan = true
      }
    }))
  })
  t.teardown(() => app.close())
  const finite = await connect(`${url}/finite`)
  await finite.ended
  t.same(finite.events.map(e => e.data), ['<i>0</i>', '<i>1</i>', '<i>2</i>', '<i>3</i>', '<i>4</i>'])
  t.same(finite.events.map(e => e.id), ['0', '1', '2', '3', '4'])
  const sync = await connect(`${url}/sync-iterable`)
  await sync.ended
  t.same(sync.events.map(e => [e.event, e.data]), [[undefined, 'x'], ['e', 'y']])

  const inf = await connect(`${url}/infinite`)
  await inf.waitFor(5)
  const atClose = produced
  inf.close()
  await waitUntil(() => finallyRan, 2000, 'generator finally')
  t.ok(produced - atClose <= 1, `return() was called at once: ${produced - atClose} value(s) produced after the client left (bound: 1)`)
  const after = produced
  await sleep(50)
  t.equal(produced, after, 'the generator is not pulled after the client left')
})

t.test('an iterable that throws: logged, error event, stream ends, server survives', async t => {
  const logged: string[] = []
  const { app, url } = await startApp({}, app => {
    app.get('/boom', (_req, reply) => reply.sse(async function * () {
      yield { data: 'before' }
      throw new Error('kaboom')
    }))
    app.get('/bad-render', (_req, reply) => {
      const stream = reply.sse()
      void stream.send('fine')
      stream.send(Promise.reject(new Error('render failed'))).catch(() => {})
      return stream
    })
    app.get('/ok', async () => 'still alive')
  }, { logger: { level: 'error', stream: { write: (l: string) => { logged.push(JSON.parse(l).err?.message) } } } })
  t.teardown(() => app.close())
  const c = await connect(`${url}/boom`)
  await c.ended
  t.same(c.events.map(e => [e.event, e.data]), [[undefined, 'before'], ['error', 'stream failed']])
  t.notMatch(c.raw(), /kaboom/, 'the error message is not leaked to the client')
  const r = await connect(`${url}/bad-render`)
  await r.ended
  t.same(r.events.map(e => [e.event, e.data]), [[undefined, 'fine'], ['error', 'stream failed']])
  t.ok(logged.includes('kaboom') && logged.includes('render failed'), 'both failures were logged')
  t.equal((await request(`${url}/ok`)).body, 'still alive')
})

t.test('the eventsource client reconnects with Last-Event-ID', async t => {
  const seenIds: Array<string | undefined> = []
  let n = 0
  const { app, url } = await startApp({ retryMs: 50 }, app => {
    app.get('/s', (req, reply) => {
      const stream = reply.sse()
      seenIds.push(stream.lastEventId)
      const start = stream.lastEventId === undefined ? 0 : Number(stream.lastEventId) + 1
      void stream.send(`event ${start}`, { id: String(start) })
      void stream.send(`event ${start + 1}`, { id: String(start + 1) })
      n++
      if (n < 3) stream.close()
      return stream
    })
  })
  const agent = new Agent()
  t.teardown(async () => { await agent.destroy(); await app.close() })
  const es = new EventSource(`${url}/s`, { fetch: (input, init) => undiciFetch(input, { ...init, dispatcher: agent }) as never })
  const got: string[] = []
  es.onmessage = e => { got.push(e.data) }
  await waitUntil(() => got.length >= 6, 5000, '6 messages over 3 connections')
  es.close()
  t.same(seenIds, [undefined, '1', '3'])
  t.same(got, ['event 0', 'event 1', 'event 2', 'event 3', 'event 4', 'event 5'])
})

t.test('a client that stops reading is evicted past maxBufferedBytes; memory stays bounded', async t => {
  let stream: SseStream | undefined
  const limit = 256 * 1024
  const { app, url } = await startApp({ maxBufferedBytes: limit }, app => {
    app.get('/s', (_req, reply) => {
      stream = reply.sse()
      return stream
    })
  })
  t.teardown(() => app.close())
  const client = await connect(`${url}/s`, { paused: true })
  await waitUntil(() => stream !== undefined)
  const s = stream!
  const chunk = 'x'.repeat(16 * 1024)
  const rssBefore = process.memoryUsage().rss
  let sent = 0
  // A producer that does not wait (timer-driven, the common case): the
  // stream's own bound must stop it.
  while (!s.closed && sent < 20_000) {
    void s.send(chunk)
    sent++
    if (sent % 8 === 0) await new Promise(resolve => setImmediate(resolve))
  }
  t.ok(s.closed, 'the slow stream was closed')
  t.equal(s.closeReason, 'slow')
  t.ok(s.signal.aborted, 'its signal is aborted')
  t.ok(sent < 20_000, `evicted after ${sent} events of 16 KiB`)
  // The kernel's socket buffers take their share before Node buffers anything; bounded either way.
  t.ok(sent * chunk.length < 64 * 1024 * 1024, 'eviction happened within a bounded number of bytes')
  t.ok(process.memoryUsage().rss - rssBefore < 64 * 1024 * 1024, 'server memory stayed bounded')
  t.equal(app.sseHub.stats().evicted, 1)
  client.close()
})

t.test('await send() is backpressured: a producer that awaits never outruns the socket', async t => {
  let stream: SseStream | undefined
  let raw: import('node:http').ServerResponse | undefined
  const { app, url } = await startApp({ maxBufferedBytes: 256 * 1024 }, app => {
    app.get('/s', (_req, reply) => { stream = reply.sse(); raw = reply.raw as import('node:http').ServerResponse; return stream })
  })
  t.teardown(() => app.close())
  const client = await connect(`${url}/s`, { paused: true })
  await waitUntil(() => stream !== undefined)
  const s = stream!
  const chunk = 'y'.repeat(16 * 1024)
  let sent = 0
  let blocked = false
  const producer = (async () => {
    while (sent < 2000 && !s.closed) {
      const p = s.send(chunk)
      const first = await Promise.race([p, sleep(200).then(() => 'blocked')])
      if (first === 'blocked') { blocked = true; await p }
      sent++
    }
  })()
  await waitUntil(() => blocked, 10_000, 'the producer to be held back')
  t.notOk(s.closed, 'a producer that waits is not evicted')
  const unsent = raw!.writableLength
  t.ok(unsent < 256 * 1024, `unsent ${unsent} B stays under maxBufferedBytes`)
  const heldAt = sent
  client.resume()
  await producer
  t.ok(sent === 2000 && heldAt < 2000, `held at ${heldAt}, then finished once the client read`)
  await client.waitFor(2000, 20_000)
  t.equal(client.events.length, 2000)
  client.close()
})

t.test('exact bytes on the wire (undici)', async t => {
  const { app, url } = await startApp({ retryMs: 1000, heartbeatMs: false }, app => {
    app.get('/s', (_req, reply) => reply.sse([
      { event: 'card', id: '1', data: '<div>\n  <b>x</b>\r\n</div>' },
      { data: ' leading space', retry: 500 },
      { data: '' }
    ]))
  })
  const agent = new Agent()
  t.teardown(async () => { await agent.close(); await app.close() })
  const res = await undiciFetch(`${url}/s`, { dispatcher: agent })
  t.equal(res.status, 200)
  t.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8')
  const body = await res.text()
  t.match(body, /^retry: (\d+)\n\n/)
  t.equal(body.replace(/^retry: \d+\n\n/, ''),
    'event: card\nid: 1\ndata: <div>\ndata:   <b>x</b>\ndata: </div>\n\n' +
    'retry: 500\ndata:  leading space\n\n' +
    'data: \n\n')
})
