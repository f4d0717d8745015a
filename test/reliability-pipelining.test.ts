/**
 * Issue 11, item 1: HTTP/1.1 pipelining must not leak streams. A client that
 * pipelines two SSE requests on one socket and drops the socket once the
 * first response head arrived must leave nothing counted behind: the second
 * (queued) stream has to be released with the socket, or after a few such
 * clients `maxConnections` answers 503 to everyone.
 */
import t from 'tap'
import net from 'node:net'
import type { FastifyInstance } from 'fastify'
import { startApp } from './helpers/app.js'
import { connect, waitUntil } from './helpers/sse-client.js'

const hubRoute = (app: FastifyInstance): void => {
  app.get('/stream', (_request, reply) => reply.sse({ topics: ['a'] }))
}

/**
 * One raw client: both requests in ONE write (true pipelining), then the
 * socket is destroyed as soon as the first response head has arrived.
 * Resolves with the status line of that first response.
 */
function pipelinedPair (port: number, path = '/stream'): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    const req = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`
    let buf = ''
    let done = false
    const finish = (status: string): void => {
      if (done) return
      done = true
      socket.destroy()
      resolve(status)
    }
    socket.once('error', err => { if (!done) { done = true; reject(err) } })
    socket.once('connect', () => { socket.write(req + req) })
    socket.on('data', (chunk: Buffer) => {
      buf += chunk.toString('latin1')
      if (buf.includes('\r\n\r\n')) finish(buf.slice(0, buf.indexOf('\r\n')))
    })
    socket.once('close', () => finish(buf.slice(0, Math.max(0, buf.indexOf('\r\n')))))
  })
}

async function pipelinedClients (port: number, count: number, concurrency = 50): Promise<string[]> {
  const statuses: string[] = []
  for (let i = 0; i < count; i += concurrency) {
    const batch = await Promise.all([...Array(Math.min(concurrency, count - i)).keys()].map(() => pipelinedPair(port)))
    statuses.push(...batch)
  }
  return statuses
}

/** Waits (generously) for a condition; returns whether it held, so the assertion can show the figure. */
async function eventually (predicate: () => boolean, timeoutMs = 5000): Promise<boolean> {
  try {
    await waitUntil(predicate, timeoutMs)
    return true
  } catch {
    return predicate()
  }
}

t.test('1,000 pipelined pairs on sockets the client dropped leave no hub connection counted', async t => {
  const { app, url } = await startApp({ heartbeatMs: false }, hubRoute)
  t.teardown(() => app.close())
  const port = Number(new URL(url).port)
  const pairs = 1000
  const statuses = await pipelinedClients(port, pairs)
  t.equal(statuses.filter(s => s === 'HTTP/1.1 200 OK').length, pairs, 'every first response started (200 head) before the client left')
  const drained = await eventually(() => app.sseHub.stats().connections === 0)
  const left = app.sseHub.stats().connections
  t.ok(drained, `stats().connections back to 0 after ${pairs} pipelined pairs (left: ${left})`)
  t.equal(left, 0, 'no pipelined stream stays counted once its socket is gone')
  t.same(app.sseHub.stats().topics, {}, 'and no topic keeps a subscriber')
})

t.test('with maxConnections, dropped pipelined clients do not lock everyone out', async t => {
  const maxConnections = 20
  const { app, url } = await startApp({ heartbeatMs: false, maxConnections }, hubRoute)
  t.teardown(() => app.close())
  const port = Number(new URL(url).port)
  // One client at a time: never more than a couple of streams are really open
  // at once, far below the limit.
  for (let i = 0; i < maxConnections * 3; i++) await pipelinedPair(port)
  const drained = await eventually(() => app.sseHub.stats().connections === 0)
  t.ok(drained, `no stream left counted after ${maxConnections * 3} dropped pipelined clients (connections: ${app.sseHub.stats().connections})`)
  // Fresh, well-behaved clients up to the limit must all get in.
  const fresh = await Promise.all([...Array(maxConnections).keys()].map(async () => await connect(`${url}/stream`)))
  const ok = fresh.filter(c => c.status === 200).length
  t.equal(ok, maxConnections, `${maxConnections} fresh clients (= maxConnections) all get 200 (got ${ok} × 200, ${fresh.length - ok} × 503)`)
  for (const c of fresh) c.close()
})
