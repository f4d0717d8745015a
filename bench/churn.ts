/**
 * Connection churn: 10,000 connect/disconnect cycles against one app (hub
 * topics, heartbeat on), then the server's memory after a forced GC compared
 * with before. The counts (subscriptions, streams, timers) are asserted in
 * test/hub.test.tsx; the memory is measured here, not in a timed test.
 *
 *   node --expose-gc --import tsx bench/churn.ts [cycles=10000] [concurrency=100]
 */
import http from 'node:http'
import Fastify from 'fastify'
import htmxSse from '../plugin/index.js'

const cycles = Number(process.argv[2] ?? 10_000)
const concurrency = Number(process.argv[3] ?? 100)
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('run with node --expose-gc')

function settle (): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, 200))
}

async function memory (): Promise<{ rss: number, heap: number, external: number }> {
  for (let i = 0; i < 3; i++) { gc!(); await settle() }
  const m = process.memoryUsage()
  return { rss: m.rss, heap: m.heapUsed, external: m.external + m.arrayBuffers }
}

function cycle (url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, res => {
      res.once('data', () => { req.destroy(); res.destroy() })
      res.once('close', () => resolve())
    })
    req.on('error', reject)
  })
}

const app = Fastify({ logger: false })
await app.register(htmxSse, { heartbeatMs: 1000 })
app.get('/s', (request, reply) => reply.sse({ topics: ['a', `b${(request.query as { n?: string }).n ?? 0}`] }))
await app.listen({ host: '127.0.0.1', port: 0 })
const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/s`

// Warm up code paths and pools so the baseline is not the cold process.
await Promise.all(Array.from({ length: concurrency }, (_, i) => cycle(`${url}?n=${i % 7}`)))
const before = await memory()
const started = Date.now()
let done = 0
await Promise.all(Array.from({ length: concurrency }, async (_, w) => {
  for (let i = w; i < cycles; i += concurrency) {
    await cycle(`${url}?n=${i % 7}`)
    done++
  }
}))
const seconds = (Date.now() - started) / 1000
await settle()
const after = await memory()
const stats = app.sseHub.stats()
const mib = (n: number): string => (n / 1048576).toFixed(2)
console.log(`${done} connect/disconnect cycles in ${seconds.toFixed(1)} s (${concurrency} at a time)`)
console.log(`open hub connections after: ${stats.connections}; topics with subscribers: ${Object.keys(stats.topics).length}`)
console.log(`RSS ${mib(before.rss)} → ${mib(after.rss)} MiB; heap used ${mib(before.heap)} → ${mib(after.heap)} MiB (Δ ${mib(after.heap - before.heap)}); external ${mib(before.external)} → ${mib(after.external)} MiB`)
await app.close()
