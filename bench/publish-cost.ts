// CPU of one awaited publish with no subscribers: the in-process hub against
// the Redis transport on a redis-server started here (loopback, no persistence).
// What the README's "client CPU per awaited publish" figure comes from.
//
//   npx tsx bench/publish-cost.ts [publishes]
import { spawn } from 'node:child_process'
import net from 'node:net'
import Fastify from 'fastify'
import { Redis } from 'ioredis'

// The built package, as users install it (a variable path keeps dist/ out of the type-checked program).
const lib = '../dist/plugin'
const { default: htmxSse } = await import(`${lib}/index.js`) as typeof import('../plugin/index.js')
const { redisTransport } = await import(`${lib}/transports/redis.js`) as typeof import('../plugin/transports/redis.js')

const n = Number(process.argv[2] ?? 5000)
const port = await new Promise<number>(resolve => {
  const srv = net.createServer().listen(0, '127.0.0.1', () => {
    const p = (srv.address() as net.AddressInfo).port
    srv.close(() => resolve(p))
  })
})
const redisServer = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
await new Promise(resolve => setTimeout(resolve, 300))

try {
  for (const mode of ['in-process', 'redis', 'in-process', 'redis']) {
    const redis = new Redis(`redis://127.0.0.1:${port}`)
    const app = Fastify()
    await app.register(htmxSse, mode === 'redis' ? { transport: redisTransport({ redis }), secret: 'bench-secret-0123456789abcdef' } : {})
    await app.ready()
    const data = 'x'.repeat(256)
    for (let i = 0; i < 200; i++) await app.sseHub.publish('t', { data })
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    for (let i = 0; i < n; i++) await app.sseHub.publish('t', { data })
    const cpu = process.cpuUsage(cpu0)
    const wall = performance.now() - t0
    console.log(`${mode.padEnd(10)} ${((wall * 1000) / n).toFixed(1)} µs wall, ${((cpu.user + cpu.system) / n).toFixed(1)} µs CPU (user ${(cpu.user / n).toFixed(1)}, sys ${(cpu.system / n).toFixed(1)}) per publish`)
    await app.close()
    redis.disconnect()
  }
} finally {
  redisServer.kill()
}
