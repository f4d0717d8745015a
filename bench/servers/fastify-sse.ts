// @fastify/sse (official Fastify plugin). It has no broadcast: the documented
// way is one long-lived `reply.sse` context per client, kept in a Set, and a
// `send()` per client per event. It assigns no ids.
import { createRequire } from 'node:module'
import Fastify from 'fastify'
import { listenFastify, runServer } from '../lib/server-harness.js'

// Loaded untyped on purpose: its `reply.sse` type augmentation would clash with
// this project's own `reply.sse` in the shared tsc program.
const require = createRequire(import.meta.url)
const fastifySse = require('@fastify/sse') as import('fastify').FastifyPluginAsync<{ heartbeatInterval?: number }>

interface SseContext {
  keepAlive: () => void
  sendHeaders: (status?: number) => void
  onClose: (cb: () => void) => void
  send: (msg: { id?: string, event?: string, data: unknown }) => Promise<void>
  isConnected: boolean
}

const clients = new Set<SseContext>()
const app = Fastify({ logger: false })
await app.register(fastifySse, { heartbeatInterval: 0 })

app.get('/sse', { sse: { kind: 'only', heartbeat: false, serializer: (d: unknown) => String(d) } } as object, async (_request, reply) => {
  const sse = (reply as unknown as { sse: SseContext }).sse
  sse.keepAlive()
  sse.sendHeaders()
  reply.raw.flushHeaders() // headers are lazy (first send); clients must see them on connect
  clients.add(sse)
  sse.onClose(() => clients.delete(sse))
})

const noop = (): void => {}

await runServer('@fastify/sse', {
  listen: async () => await listenFastify(app),
  clients: () => clients.size,
  publish: (_seq, data) => {
    const msg = { event: 'tick', data }
    for (const sse of clients) sse.send(msg).catch(noop)
  },
  close: () => app.close()
})
