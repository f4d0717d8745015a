// This project: Fastify + fastify-htmx-sse, one hub topic, replay on reconnect,
// slow consumers evicted past maxBufferedBytes.
import Fastify from 'fastify'
import htmxSse from '../../plugin/index.js'
import { listenFastify, runServer } from '../lib/server-harness.js'

const app = Fastify({ logger: false })
await app.register(htmxSse, { heartbeatMs: false, history: 5000, maxBufferedBytes: 1 << 20 })
app.get('/sse', (_request, reply) => reply.sse({ topics: ['bench'] }))

await runServer('ours', {
  listen: async () => await listenFastify(app),
  clients: () => app.sseHub.stats().connections,
  publish: (_seq, data) => app.sseHub.publish('bench', { event: 'tick', data }),
  stats: () => {
    const { published, delivered, replayed, evicted, resets } = app.sseHub.stats()
    return { published, delivered, replayed, evicted, resets }
  },
  close: () => app.close()
})
