// fastify-sse-v2: `reply.sse(message)` pushes into a per-reply pushable that is
// piped (it-to-stream) into the response. No broadcast helper: keep the
// replies in a Set and call `reply.sse()` on each. It assigns no ids.
import { createRequire } from 'node:module'
import Fastify, { type FastifyReply } from 'fastify'
import { listenFastify, runServer } from '../lib/server-harness.js'

// Loaded untyped on purpose: its `reply.sse` type augmentation would clash with
// this project's own `reply.sse` in the shared tsc program.
const require = createRequire(import.meta.url)
const { FastifySSEPlugin } = require('fastify-sse-v2') as {
  FastifySSEPlugin: import('fastify').FastifyPluginAsync<{ retryDelay?: false | number }>
}

interface EventMessage { id?: string, event?: string, data?: string, comment?: string }
type SseFn = (source: EventMessage) => void

const clients = new Set<FastifyReply>()
const app = Fastify({ logger: false })
await app.register(FastifySSEPlugin, { retryDelay: false })

const sseOf = (reply: FastifyReply): SseFn => {
  const r = reply as unknown as { sse: SseFn }
  return r.sse.bind(reply)
}

app.get('/sse', (_request, reply) => {
  sseOf(reply)({ comment: 'connected' }) // hijacks, flushes the head
  clients.add(reply)
  reply.raw.on('close', () => clients.delete(reply))
})

await runServer('fastify-sse-v2', {
  listen: async () => await listenFastify(app),
  clients: () => clients.size,
  publish: (_seq, data) => {
    const msg: EventMessage = { event: 'tick', data }
    for (const reply of clients) (reply as unknown as { sse: SseFn }).sse(msg)
  },
  close: () => app.close()
})
