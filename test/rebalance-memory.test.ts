/**
 * `maxStreamAgeMs` on one instance (in-process hub): a hub stream past its
 * age ends with a `retry:` hint and the end of its connection, the client
 * (the `eventsource` package, which honours both) reconnects with its
 * Last-Event-ID and gets every event exactly once, in order. A one-off
 * `reply.sse()` stream, which nothing could resume, stays open.
 */
import t from 'tap'
import net from 'node:net'
import { Agent, fetch as undiciFetch } from 'undici'
import { EventSource } from 'eventsource'
import type { SseCloseReason, SseStream } from '../plugin/index.js'
import { startApp } from './helpers/app.js'
import { connect, waitUntil } from './helpers/sse-client.js'

const AGE_MS = 1000

/** The payload of a chunked HTTP/1.1 body. */
function dechunk (body: string): string {
  let out = ''
  let at = 0
  for (;;) {
    const eol = body.indexOf('\r\n', at)
    const size = parseInt(body.slice(at, eol), 16)
    if (eol < 0 || !(size > 0)) return out
    out += body.slice(eol + 2, eol + 2 + size)
    at = eol + 2 + size + 2
  }
}

t.test('a hub stream past maxStreamAgeMs ends with a retry hint; the client resumes with nothing lost or repeated', async t => {
  const reasons: SseCloseReason[] = []
  const lastEventIds: Array<string | undefined> = []
  let oneOff: SseStream | undefined
  const { app, url } = await startApp({ maxStreamAgeMs: AGE_MS, retryMs: 100, heartbeatMs: false }, app => {
    app.get('/s', (_request, reply) => {
      const stream = reply.sse({ topics: ['seq'] })
      lastEventIds.push(stream.lastEventId)
      void stream.done.then(reason => reasons.push(reason))
      return stream
    })
    app.get('/one-off', (_request, reply) => {
      oneOff = reply.sse()
      void oneOff.send('started', { event: 'hello' })
      return oneOff
    })
  })
  const agent = new Agent()
  t.teardown(async () => { await agent.destroy(); await app.close() })

  const plain = await connect(`${url}/one-off`)
  t.teardown(() => plain.close())
  const es = new EventSource(`${url}/s`, { fetch: (input, init) => undiciFetch(input, { ...init, dispatcher: agent }) as never })
  t.teardown(() => es.close())
  const got: number[] = []
  es.onmessage = e => { got.push(Number(e.data)) }
  await waitUntil(() => app.sseHub.stats().connections === 1, 5000, 'the client to subscribe')

  // Publish throughout until the client has been through at least two stream ends.
  let n = 0
  const deadline = Date.now() + 15_000
  while (lastEventIds.length < 3 && Date.now() < deadline) {
    await app.sseHub.publish('seq', { data: String(n++) })
    await new Promise(resolve => setTimeout(resolve, 10))
  }
  for (let i = 0; i < 20; i++) await app.sseHub.publish('seq', { data: String(n++) })
  await waitUntil(() => got.length >= n, 5000, `${n} events (have ${got.length})`)
  es.close()

  t.ok(lastEventIds.length >= 3, `the client connected ${lastEventIds.length} times`)
  t.equal(lastEventIds[0], undefined, 'the first connect has no Last-Event-ID')
  t.ok(lastEventIds.slice(1).every(id => id !== undefined), 'every reconnect carried the last id it saw')
  t.ok(reasons.length >= 2 && reasons.slice(0, lastEventIds.length - 1).every(r => r === 'rebalance'), `streams ended by age: ${reasons.join(', ')}`)
  t.same(got, [...Array(n).keys()], `all ${n} events exactly once, in order, across ${lastEventIds.length} connections`)

  t.notOk(plain.isEnded(), 'the one-off reply.sse() stream is still open after several ages')
  t.equal(oneOff?.closed, false)
  t.equal(plain.events.length, 1)
})

t.test('what the client sees at the end: the events, a retry hint, the end of the response, then of its keep-alive connection', async t => {
  const { app, url } = await startApp({ maxStreamAgeMs: AGE_MS, retryMs: 200, heartbeatMs: false }, app => {
    app.get('/s', (_request, reply) => reply.sse({ topics: ['t'] }))
  })
  t.teardown(() => app.close())
  // A raw HTTP/1.1 keep-alive request: the server, not the client, decides whether the connection outlives the response.
  const socket = net.connect(Number(new URL(url).port), '127.0.0.1')
  t.teardown(() => socket.destroy())
  let raw = ''
  socket.setEncoding('utf8').on('data', (chunk: string) => { raw += chunk })
  const closedByServer = new Promise<void>(resolve => socket.once('end', () => resolve()))
  socket.write('GET /s HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n')
  await waitUntil(() => app.sseHub.stats().connections === 1, 5000, 'the client to subscribe')
  const id = await app.sseHub.publish('t', { data: 'one' })
  await Promise.race([closedByServer, new Promise((_resolve, reject) => setTimeout(() => reject(new Error('the server did not end the connection')), 5000))])
  t.match(raw, /^HTTP\/1\.1 200 OK\r\n/)
  t.notMatch(raw, /\r\nconnection: close\r\n/i, 'a keep-alive response: ending the socket is the server\'s doing')
  const body = raw.slice(raw.indexOf('\r\n\r\n') + 4)
  const text = dechunk(body)
  t.match(text, new RegExp(`^retry: \\d+\\n\\nid: ${id}\\ndata: one\\n\\nretry: \\d+\\n\\n$`), 'a hint at the start, the event, a hint at the end')
  t.ok(body.endsWith('\r\n0\r\n\r\n'), 'the response ended cleanly (last chunk)')
  const retries = [...text.matchAll(/retry: (\d+)/g)].map(m => Number(m[1]))
  t.ok(retries.every(r => r >= 160 && r <= 240), `both jittered around retryMs: ${retries.join(', ')}`)
  t.equal(app.sseHub.stats().connections, 0)
})
