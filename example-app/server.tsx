/**
 * `npm start`: serves the dashboard on HOST:PORT (default 127.0.0.1:3000).
 * With REDIS_URL set, the hub uses Redis Streams and jobs and agent runs are
 * kept in Redis, so several instances share topics, history and runs (start
 * two on different ports, start a job on one and open it on the other).
 * SSE_SECRET signs the topics of live pages (several instances need the same
 * one; without REDIS_URL a random one per process is fine).
 * ANTHROPIC_API_KEY (or OPENAI_API_KEY) makes the agent panel ask a real
 * model instead of the offline simulator (agents.ts).
 * Logs are pino JSON on stdout, pretty-printed (pino-pretty) when stdout is a
 * terminal; the live log tail reads the JSON either way.
 */
import { hostname } from 'node:os'
import closeWithGrace from 'close-with-grace'
import type { FastifyBaseLogger } from 'fastify'
import type { HubTransport } from '../plugin/transport.js'
import type { RunStore } from '../runs/store.js'
import PinoPretty from 'pino-pretty'
import { agentFromEnv } from './agents.js'
import { buildApp } from './app.js'

const host = process.env.HOST ?? '127.0.0.1'
const port = Number(process.env.PORT ?? 3000)

// The app's logger, once the app exists (Redis is connected before it).
const logger: { current?: FastifyBaseLogger } = {}
const log = (): FastifyBaseLogger | undefined => logger.current

let transport: HubTransport | undefined
let runStore: RunStore | undefined
let closeRedis: (() => Promise<unknown>) | undefined
if (process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '') {
  // Loaded only when asked for: the in-process hub needs neither module.
  const [{ Redis }, { redisTransport }, { RedisRunStore }] = await Promise.all([
    import('ioredis'), import('fastify-htmx-sse/redis'), import('fastify-htmx-sse/runs/redis')
  ])
  const redis = new Redis(process.env.REDIS_URL)
  // ioredis emits 'error' on every failed reconnect; without a listener it
  // prints "Unhandled error event" each time. One line per outage instead.
  let down = false
  redis.on('error', (err: Error) => {
    if (down) return
    down = true
    log()?.warn({ err: err.message }, 'redis: connection lost; retrying in the background')
  })
  redis.on('ready', () => {
    if (!down) return
    down = false
    log()?.info('redis: connected again')
  })
  transport = redisTransport({ redis })
  runStore = new RedisRunStore({ redis })
  closeRedis = async () => await redis.quit().catch(() => redis.disconnect())
}

// With a shared transport, per-instance panels (metrics, logs, hub stats) get
// their own topics, so each page shows the figures of the instance it is on.
const instance = transport === undefined ? undefined : `${hostname().replace(/[^A-Za-z0-9_.-]/g, '-')}-${port}`
// The logger's destination is the live log tail (it parses the JSON lines); what
// it echoes to the terminal may be prettified.
const echoLogs = process.stdout.isTTY ? PinoPretty({ colorize: true, sync: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' }) : true
// HTMX=4: every page loads htmx 4.0.x and its hx-sse extension; default htmx 2.0.x + htmx-ext-sse.
const htmxEnv = process.env.HTMX ?? '2'
if (htmxEnv !== '2' && htmxEnv !== '4') {
  console.error(`HTMX must be 2 or 4, got ${JSON.stringify(htmxEnv)}`)
  process.exit(1)
}
const htmx = htmxEnv === '4' ? 4 : 2
const secret = process.env.SSE_SECRET === '' ? undefined : process.env.SSE_SECRET
if (transport !== undefined && secret === undefined) {
  // Each instance must verify the pages the others signed: a random secret each would not.
  console.error('REDIS_URL needs SSE_SECRET (the same random value, at least 16 bytes, on every instance), e.g. SSE_SECRET=$(openssl rand -base64 32)')
  await closeRedis?.()
  process.exit(1)
}
// ANTHROPIC_API_KEY or OPENAI_API_KEY: the agent panel asks a real model (see agents.ts); the simulator otherwise.
const agent = await agentFromEnv()
const { app } = await buildApp({ transport, runStore, logLevel: process.env.LOG_LEVEL ?? 'info', instance, echoLogs, htmx, secret, agent: agent?.source })
logger.current = app.log
app.log.info(`agent: ${agent?.label ?? 'the offline simulator (set ANTHROPIC_API_KEY or OPENAI_API_KEY for a real model)'}`)

// SIGINT/SIGTERM (and an uncaught error): close the app (streams end with a
// retry hint), then Redis; past the grace delay, exit anyway. A second signal exits at once.
closeWithGrace({ delay: 10_000, logger: app.log }, async ({ signal, err }) => {
  if (err !== undefined) app.log.error({ err }, 'shutting down after an error')
  else app.log.info({ signal }, 'shutting down')
  await app.close()
  await closeRedis?.()
})

try {
  await app.listen({ host, port })
  app.log.info(`dashboard at http://${host}:${port}/ (htmx ${htmx}${transport === undefined ? '' : ', Redis hub'})`)
} catch (err) {
  app.log.error({ err }, 'could not start')
  await closeRedis?.()
  process.exit(1)
}
