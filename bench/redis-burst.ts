/**
 * The Redis burst (issue: "the Redis hub transport must be lossless under
 * bursts"): `--clients` SSE subscribers (default 1 000) in two child
 * processes on one topic of one Fastify instance using the Redis transport on
 * a fresh redis-server; `--events` publishes (default 2 000) of `--size` bytes
 * (default 256), one per setImmediate, none awaited before the next is issued.
 * Reports, per run: publishes rejected, events lost (accepted but never
 * received, summed over subscribers), duplicates, resets, latency p50/p99
 * (publish call to receipt), hub stats().published when the last publish was
 * issued and at the end,
 * redis-server CPU seconds (from /proc) and wall time.
 *
 *   npx tsx --conditions=htmx-sse-source bench/redis-burst.ts [--runs=3] [--clients=1000] [--events=2000] [--size=256]
 */
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import htmxSse from '../plugin/index.js'
import { redisTransport } from '../plugin/transports/redis.js'
import { cpuSeconds } from './lib/proc.js'
import { startRedis } from './lib/redis-server.js'

const args = new Map(process.argv.slice(2).map(a => a.replace(/^--/, '').split('=') as [string, string]))
const RUNS = Number(args.get('runs') ?? 1)
const CLIENTS = Number(args.get('clients') ?? 1000)
const EVENTS = Number(args.get('events') ?? 2000)
const SIZE = Number(args.get('size') ?? 256)
const CHILD = fileURLToPath(new URL('./lib/burst-clients.mjs', import.meta.url))

interface Progress { type: 'progress', connected: number, received: number, lastReceipt: number }
interface Report { type: 'report', lost: number, duplicates: number, unordered: number, resets: number, closed: number, clientsMissing: number, latencies: number[], rejectedButDelivered: number }

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))
const pct = (xs: number[], p: number): number => xs.length === 0 ? NaN : xs[Math.min(xs.length - 1, Math.floor(xs.length * p))]!

async function run (n: number): Promise<Record<string, unknown>> {
  const server = await startRedis()
  const redis = new Redis(server.url)
  redis.on('error', () => {})
  const app = Fastify()
  await app.register(htmxSse, { heartbeatMs: false, secret: 'bench-secret-0123456789abcdef', transport: redisTransport({ redis }) })
  app.get('/s', (_request, reply) => reply.sse({ topics: ['burst'] }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/s`

  const children: ChildProcess[] = []
  const progress = new Map<ChildProcess, Progress>()
  for (const share of [Math.ceil(CLIENTS / 2), Math.floor(CLIENTS / 2)]) {
    const child = fork(CHILD, [url, String(share), '10'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    child.on('message', (m: Progress | Report) => { if (m.type === 'progress') progress.set(child, m) })
    children.push(child)
  }
  const total = (key: 'connected' | 'received'): number => [...progress.values()].reduce((s, p) => s + p[key], 0)
  for (let i = 0; i < 600 && total('connected') < CLIENTS; i++) await sleep(50)
  if (total('connected') < CLIENTS) throw new Error(`only ${total('connected')} of ${CLIENTS} subscribers connected`)

  const cpu0 = cpuSeconds(server.pid)
  const started = performance.now()
  const pending: Array<Promise<string>> = []
  const pad = 'x'.repeat(SIZE)
  for (let i = 0; i < EVENTS; i++) {
    const head = `t=${Date.now()};${i};`
    pending.push(app.sseHub.publish('burst', { data: head + pad.slice(head.length) }))
    await new Promise(resolve => setImmediate(resolve))
  }
  const issued = app.sseHub.stats().published
  const settled = await Promise.allSettled(pending)
  const accepted = settled.flatMap(r => r.status === 'fulfilled' ? [Number(r.value)] : [])
  const rejected = settled.length - accepted.length
  // Done when every subscriber has every accepted event, or nothing arrived for 5 s.
  const want = accepted.length * CLIENTS
  for (let i = 0; i < 1200; i++) {
    if (total('received') >= want) break
    const last = Math.max(...[...progress.values()].map(p => p.lastReceipt))
    if (Date.now() - last > 5000) break
    await sleep(50)
  }
  const wall = performance.now() - started
  const redisCpu = cpuSeconds(server.pid) - cpu0
  const reports = await Promise.all(children.map(child => new Promise<Report>(resolve => {
    child.on('message', (m: Progress | Report) => { if (m.type === 'report') resolve(m) })
    child.send({ type: 'check', ids: accepted })
  })))
  const published = app.sseHub.stats().published
  for (const child of children) child.send({ type: 'exit' })
  await app.close()
  redis.disconnect()
  await server.stop()
  const latencies = reports.flatMap(r => r.latencies).sort((a, b) => a - b)
  const sum = (k: 'lost' | 'duplicates' | 'unordered' | 'resets' | 'closed' | 'clientsMissing'): number => reports.reduce((s, r) => s + r[k], 0)
  return {
    run: n + 1,
    rejected,
    rejectedButDelivered: Math.max(...reports.map(r => r.rejectedButDelivered)),
    accepted: accepted.length,
    lostEvents: sum('lost'),
    subscribersMissing: sum('clientsMissing'),
    lostShare: `${(100 * sum('lost') / Math.max(1, want)).toFixed(1)} %`,
    duplicates: sum('duplicates'),
    unordered: sum('unordered'),
    resets: sum('resets'),
    closed: sum('closed'),
    p50ms: pct(latencies, 0.5),
    p99ms: pct(latencies, 0.99),
    publishedWhenIssued: issued,
    statsPublished: published,
    redisCpuS: Number(redisCpu.toFixed(2)),
    wallMs: Math.round(wall)
  }
}

const rows: Array<Record<string, unknown>> = []
for (let i = 0; i < RUNS; i++) {
  const row = await run(i)
  rows.push(row)
  console.log(JSON.stringify(row))
}
console.table(rows)
