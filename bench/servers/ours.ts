// This project: Fastify + fastify-htmx-sse, one hub topic, replay on reconnect,
// slow consumers evicted past maxBufferedBytes. With BENCH_REDIS_URL set (the
// ours-redis variants), the hub runs on the Redis transport: ids, history and
// fan-out between instances go through that redis-server.
import Fastify from 'fastify'
import type { HubTransport } from '../../plugin/transport.js'
import { listenFastify, runServer } from '../lib/server-harness.js'

// The built package (dist/, as users install it; the driver builds it first),
// or the TypeScript sources through tsx with BENCH_SOURCE=1. tsx keeps
// function names by defining `name` on every closure, which costs a few
// hundred bytes per connection that the built package does not have.
// BENCH_PLUGIN_DIST (the baseline variants): another build's plugin directory, e.g. an older commit's.
const built = process.env.BENCH_SOURCE !== '1'
const lib = process.env.BENCH_PLUGIN_DIST ?? (built ? '../../dist/plugin' : '../../plugin')
const { default: htmxSse } = await import(`${lib}/index.js`) as typeof import('../../plugin/index.js')

const HISTORY = 5000
const redisUrl = process.env.BENCH_REDIS_URL
let transport: HubTransport | undefined
let closeRedis = async (): Promise<void> => {}
if (redisUrl !== undefined && redisUrl !== '') {
  const { Redis } = await import('ioredis')
  const { redisTransport } = await import(`${lib}/transports/redis.js`) as typeof import('../../plugin/transports/redis.js')
  const redis = new Redis(redisUrl, { lazyConnect: false })
  transport = redisTransport({ redis, history: HISTORY })
  closeRedis = async () => { redis.disconnect() }
}

const app = Fastify({ logger: false })
// BENCH_OURS_OPTIONS (JSON, e.g. the ours-norest variant's): more plugin options; unset, the defaults.
const extra = JSON.parse(process.env.BENCH_OURS_OPTIONS ?? '{}') as Record<string, unknown>
await app.register(htmxSse, {
  heartbeatMs: false,
  maxBufferedBytes: 1 << 20,
  // The transport keeps the history; the plugin's option is the default transport's.
  // A shared transport needs the secret every instance signs live pages with.
  ...(transport ? { transport, secret: 'bench-secret-0123456789abcdef' } : { history: HISTORY }),
  ...extra
})
app.get('/sse', (_request, reply) => reply.sse({ topics: ['bench'] }))

await runServer(process.env.BENCH_VARIANT ?? 'ours', {
  listen: async () => await listenFastify(app),
  clients: () => app.sseHub.stats().connections,
  publish: (_seq, data) => app.sseHub.publish('bench', { event: 'tick', data }),
  stats: () => {
    const { published, delivered, replayed, evicted, resets, writes } = app.sseHub.stats()
    return { published, delivered, replayed, evicted, resets, writes }
  },
  close: async () => { await app.close(); await closeRedis() }
})
