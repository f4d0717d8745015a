/**
 * Rebalancing across instances (`maxStreamAgeMs`): two instances on one
 * real redis-server behind a round-robin TCP proxy (node:net, written here:
 * it places each new connection, as an L4 load balancer does), SSE clients
 * that reconnect by themselves (the `eventsource` package: `retry:` and
 * Last-Event-ID), and a publisher publishing a numbered sequence throughout,
 * from every instance in the pool in turn. A third instance then joins the
 * pool: after a few stream ages the clients are spread over all three, and
 * every client got every event exactly once, in order.
 */
import t, { type Test } from 'tap'
import net from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import { Agent, fetch as undiciFetch } from 'undici'
import { EventSource } from 'eventsource'
import htmxSse from '../plugin/index.js'
import { redisTransport } from '../plugin/transports/redis.js'
import { fileRedis } from './helpers/redis-server.js'
import { waitUntil } from './helpers/sse-client.js'

const CLIENTS = 12
const AGE_MS = 1200
const redis = fileRedis(t)

interface Instance {
  readonly name: string
  readonly app: FastifyInstance
  readonly port: number
  /** Stream requests this instance answered (each connect and reconnect). */
  requests: number
}

async function instance (t: Test, name: string): Promise<Instance> {
  const app = Fastify({ logger: false })
  await app.register(htmxSse, {
    secret: 'redis-test-secret-0123456789',
    transport: redisTransport({ redis: redis.client() }),
    maxStreamAgeMs: AGE_MS,
    retryMs: 100,
    heartbeatMs: false
  })
  const self: { requests: number } = { requests: 0 }
  app.get('/s', (_request, reply) => {
    self.requests++
    return reply.sse({ topics: ['seq'] })
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  return Object.assign(self, { name, app, port: (app.server.address() as net.AddressInfo).port })
}

/** A round-robin TCP proxy over a pool that can grow: each new client connection goes to the next instance. */
async function roundRobinProxy (t: Test, pool: Instance[]): Promise<{ port: number, accepted: Map<string, number> }> {
  const sockets = new Set<net.Socket>()
  const accepted = new Map<string, number>()
  let next = 0
  const server = net.createServer(client => {
    const target = pool[next++ % pool.length]!
    accepted.set(target.name, (accepted.get(target.name) ?? 0) + 1)
    const upstream = net.connect(target.port, '127.0.0.1')
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
      s.on('error', () => { client.destroy(); upstream.destroy() })
    }
    // A half-close (the server's FIN after the response) is passed on as one: pipe() ends the other side.
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const s of sockets) s.destroy()
    await new Promise(resolve => server.close(resolve))
  })
  return { port: (server.address() as net.AddressInfo).port, accepted }
}

t.test('streams past maxStreamAgeMs spread over a new instance behind a round-robin proxy; every client gets every event once, in order', async t => {
  const a = await instance(t, 'a')
  const b = await instance(t, 'b')
  const c = await instance(t, 'c')
  const pool = [a, b]
  const all = [a, b, c]
  const proxy = await roundRobinProxy(t, pool)
  const open = (): Record<string, number> => Object.fromEntries(all.map(i => [i.name, i.app.sseHub.stats().connections]))
  const openTotal = (): number => all.reduce((sum, i) => sum + i.app.sseHub.stats().connections, 0)

  const agent = new Agent()
  t.teardown(() => agent.destroy())
  const received: number[][] = []
  const resets: number[] = []
  const sources: EventSource[] = []
  for (let i = 0; i < CLIENTS; i++) {
    const got: number[] = []
    received.push(got)
    resets.push(0)
    const es = new EventSource(`http://127.0.0.1:${proxy.port}/s`, { fetch: (input, init) => undiciFetch(input, { ...init, dispatcher: agent }) as never })
    es.onmessage = e => { got.push(Number(e.data)) }
    es.addEventListener('reset', () => { resets[i]!++ })
    sources.push(es)
  }
  t.teardown(() => { for (const es of sources) es.close() })
  await waitUntil(() => openTotal() === CLIENTS, 10_000, `${CLIENTS} clients subscribed`)

  // The numbered sequence, published throughout from each instance of the pool in turn.
  let n = 0
  const stop = new AbortController()
  const publisher = (async () => {
    while (!stop.signal.aborted) {
      await pool[n % pool.length]!.app.sseHub.publish('seq', { data: String(n) })
      n++
      await new Promise(resolve => setTimeout(resolve, 15))
    }
  })()
  t.teardown(() => stop.abort())

  const requests = (): number => all.reduce((sum, i) => sum + i.requests, 0)
  // One stream age on two instances: every client reconnected at least once.
  await waitUntil(() => requests() >= 2 * CLIENTS, 15_000, 'every client to reconnect once')
  await waitUntil(() => openTotal() === CLIENTS, 10_000, 'every client to be connected')
  const before = open()
  t.comment(`open streams per instance with two in the pool: ${JSON.stringify(before)}`)
  t.equal(before.c, 0, 'the third instance is not in the pool yet')

  pool.push(c)
  const joined = requests()
  // A few more stream ages: every client reconnects at least twice more.
  await waitUntil(() => requests() >= joined + 2 * CLIENTS, 20_000, 'every client to reconnect twice more')
  await waitUntil(() => openTotal() === CLIENTS, 10_000, 'every client to be connected')
  const after = open()
  t.comment(`open streams per instance after the third joined: ${JSON.stringify(after)}; stream requests per instance: ${JSON.stringify(Object.fromEntries(all.map(i => [i.name, i.requests])))}`)

  stop.abort()
  await publisher
  await waitUntil(() => received.every(got => got.length >= n), 10_000, `every client to get all ${n} events`)
  for (const es of sources) es.close()

  for (const i of all) t.ok(after[i.name]! >= 2, `instance ${i.name} serves ${after[i.name]} of ${CLIENTS} streams (even: ${CLIENTS / 3})`)
  const lost = received.map(got => n - new Set(got).size)
  const duplicated = received.map(got => got.length - new Set(got).size)
  t.comment(`${n} events to ${CLIENTS} clients over ${requests()} stream requests: lost ${lost.reduce((x, y) => x + y, 0)}, duplicated ${duplicated.reduce((x, y) => x + y, 0)}, resets ${resets.reduce((x, y) => x + y, 0)}`)
  t.ok(n > 100, `${n} events published`)
  for (let i = 0; i < CLIENTS; i++) {
    t.same(received[i], [...Array(n).keys()], `client ${i}: every event once, in order (lost ${lost[i]}, duplicated ${duplicated[i]})`)
  }
  t.same(resets, Array(CLIENTS).fill(0), 'no client was told to reload')
})
