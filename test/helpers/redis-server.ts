/**
 * Test helpers for the Redis transport: a throwaway `redis-server` on a free
 * loopback port (no persistence, so kill -9 loses its data like a crashed
 * cache), and `openSse`, the shared SSE test client with waits shaped for
 * these tests.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import net from 'node:net'
import { Writable } from 'node:stream'
import type { EventSourceMessage } from 'eventsource-parser'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis as Redis5 } from 'ioredis'
import { Redis as Redis6 } from 'ioredis-6'
import type { Test } from 'tap'
import htmxSse from '../../plugin/index.js'
import { redisTransport, type RedisTransportOptions } from '../../plugin/transports/redis.js'
import { connect, waitUntil } from './sse-client.js'
import { freePort } from './process.js'

export interface RedisServer {
  readonly port: number
  readonly url: string
  /** kill -9 (data is lost: no persistence). */
  kill (): Promise<void>
  /** Starts it again on the same port (after kill). */
  start (): Promise<void>
  /** kill -9, then start again on the same port. */
  restart (): Promise<void>
  stop (): Promise<void>
}

async function ping (port: number): Promise<boolean> {
  return await new Promise(resolve => {
    const socket = net.connect(port, '127.0.0.1')
    let buf = ''
    const done = (ok: boolean): void => { socket.destroy(); resolve(ok) }
    socket.setTimeout(1000, () => done(false))
    socket.once('error', () => done(false))
    socket.on('data', d => {
      buf += d.toString()
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'))
    })
    socket.once('connect', () => socket.write('PING\r\n'))
  })
}

/**
 * `dir`: where a `SAVE` writes its snapshot and where a restart loads it from
 * (tests that restart Redis with or without its data); without it, a `SAVE`
 * would write into the current directory.
 */
export async function startRedisServer (options: { dir?: string } = {}): Promise<RedisServer> {
  const port = await freePort()
  let child: ChildProcess | undefined
  let exited: Promise<void> = Promise.resolve()

  const start = async (): Promise<void> => {
    if (child !== undefined) throw new Error('redis-server already running')
    const dir = options.dir === undefined ? [] : ['--dir', options.dir]
    const proc = spawn('redis-server', ['--save', '', '--appendonly', 'no', '--port', String(port), '--bind', '127.0.0.1', ...dir], {
      stdio: ['ignore', 'ignore', 'pipe']
    })
    let stderr = ''
    proc.stderr!.on('data', d => { stderr += d.toString() })
    exited = new Promise(resolve => proc.once('exit', () => resolve()))
    child = proc
    const failed = new Promise<never>((_resolve, reject) => proc.once('error', reject))
    failed.catch(() => {})
    for (let i = 0; i < 200; i++) {
      if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}: ${stderr}`)
      if (await Promise.race([ping(port), failed])) return
      await new Promise(resolve => setTimeout(resolve, 25))
    }
    throw new Error(`redis-server on port ${port} did not answer PING`)
  }

  const kill = async (): Promise<void> => {
    const proc = child
    if (proc === undefined) return
    child = undefined
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
    await exited
  }

  await start()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    start,
    restart: async () => { await kill(); await start() },
    stop: kill
  }
}

export interface SseClient {
  readonly events: EventSourceMessage[]
  /** True once the response ended or the socket closed. */
  readonly closed: boolean
  readonly status: number
  /** Resolves when `events.length >= n`; rejects after `timeoutMs` with what arrived. */
  waitFor (n: number, timeoutMs?: number): Promise<EventSourceMessage[]>
  /** Resolves when an event satisfies `pred`. */
  waitUntil (pred: (e: EventSourceMessage) => boolean, timeoutMs?: number): Promise<EventSourceMessage>
  close (): void
}

/** Opens an SSE stream; resolves once the response head arrived (the hub subscription exists by then). */
export async function openSse (port: number, path: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const c = await connect(`http://127.0.0.1:${port}${path}`, { headers })
  const seen = (): string => `${JSON.stringify(c.events.map(e => [e.id, e.event, e.data]))}${c.isEnded() ? ' (stream closed)' : ''}`
  return {
    events: c.events,
    get closed () { return c.isEnded() },
    status: c.status,
    waitFor: async (n, timeoutMs = 10_000) => {
      await waitUntil(() => c.events.length >= n, timeoutMs, `${n} events on ${path}, got ${seen()}`)
      return c.events.slice(0, n)
    },
    waitUntil: async (pred, timeoutMs = 10_000) => {
      await waitUntil(() => c.events.some(pred), timeoutMs, `a matching event on ${path}; got ${seen()}`)
      return c.events.find(pred)!
    },
    close: () => { c.close() }
  }
}

/**
 * The ioredis client class the Redis tests use: ioredis 5 by default, the
 * current major (6, installed as `ioredis-6`) with `IOREDIS=6`;
 * test/redis-ioredis6.test.ts runs the Redis tests again that way.
 */
export const Redis: typeof Redis5 = process.env.IOREDIS === '6' ? Redis6 as unknown as typeof Redis5 : Redis5
/** The client type (the same API in both majors). */
// eslint-disable-next-line @typescript-eslint/no-redeclare -- the value and its instance type, like a class
export type Redis = Redis5
export const IOREDIS_MAJOR = process.env.IOREDIS === '6' ? 6 : 5

export interface HubInstance {
  app: FastifyInstance
  port: number
  redis: Redis5
  /** Parsed log records (when `logs` was asked for). */
  logs: Array<{ level: number, msg: string }>
}

/**
 * A Fastify app with the plugin on a Redis transport over its own client,
 * serving `GET /s?topics=a,b` as hub topics, listening on a free port; closed
 * (and its client disconnected) at the end of the test.
 */
export async function hubInstance (t: Test, url: string, options: Omit<RedisTransportOptions, 'redis'> = {}, settings: { logs?: boolean } = {}): Promise<HubInstance> {
  const redis = new Redis(url)
  redis.on('error', () => {})
  t.teardown(() => redis.disconnect())
  const logs: HubInstance['logs'] = []
  const stream = new Writable({
    write (chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line !== '') logs.push(JSON.parse(line))
      cb()
    }
  })
  const app = Fastify(settings.logs === true ? { logger: { level: 'info', stream } } : {})
  await app.register(htmxSse, { heartbeatMs: false, secret: 'redis-test-secret-0123456789', transport: redisTransport({ redis, ...options }) })
  app.get('/s', (request, reply) => reply.sse({ topics: String((request.query as { topics: string }).topics).split(',') }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { app, port: (app.server.address() as { port: number }).port, redis, logs }
}

/**
 * One redis-server for a whole test file, started before its first test and
 * stopped after its last, with `client()` for connections it disconnects then.
 */
export function fileRedis (t: Test): { readonly url: string, client: () => Redis } {
  let server: RedisServer | undefined
  const clients: Redis[] = []
  t.before(async () => { server = await startRedisServer() })
  t.teardown(async () => {
    for (const c of clients) c.disconnect()
    await server?.stop()
  })
  return {
    get url () { return server!.url },
    client: () => {
      const c = new Redis(server!.url)
      c.on('error', () => {})
      clients.push(c)
      return c
    }
  }
}
