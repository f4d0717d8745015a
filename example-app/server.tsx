/**
 * `npm start`: serves the dashboard on HOST:PORT (default 127.0.0.1:3000).
 * With REDIS_URL set, the hub uses Redis Streams so several instances share
 * topics and history (start two on different ports and post a notification).
 */
import { hostname } from 'node:os'
import type { HubTransport } from 'fastify-htmx-sse'
import { buildApp } from './app.js'

const host = process.env.HOST ?? '127.0.0.1'
const port = Number(process.env.PORT ?? 3000)

let transport: HubTransport | undefined
let closeRedis: (() => Promise<unknown>) | undefined
if (process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '') {
  // Loaded only when asked for: the in-process hub needs neither module.
  const [{ Redis }, { redisTransport }] = await Promise.all([import('ioredis'), import('fastify-htmx-sse/redis')])
  const redis = new Redis(process.env.REDIS_URL)
  transport = redisTransport({ redis })
  closeRedis = async () => await redis.quit()
}

// With a shared transport, per-instance panels (metrics, logs, hub stats) get
// their own topics, so each page shows the figures of the instance it is on.
const instance = transport === undefined ? undefined : `${hostname().replace(/[^A-Za-z0-9_.-]/g, '-')}-${port}`
const { app } = await buildApp({ transport, logLevel: process.env.LOG_LEVEL ?? 'info', instance })

let closing = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    if (closing) return
    closing = true
    app.log.info({ signal }, 'shutting down')
    const force = setTimeout(() => process.exit(1), 10_000)
    force.unref()
    app.close()
      .then(async () => await closeRedis?.())
      .then(() => process.exit(0), (err: unknown) => {
        console.error(err)
        process.exit(1)
      })
  })
}

try {
  await app.listen({ host, port })
  app.log.info(`dashboard at http://${host}:${port}/${transport === undefined ? '' : ' (Redis hub)'}`)
} catch (err) {
  app.log.error({ err }, 'could not start')
  await closeRedis?.()
  process.exit(1)
}
