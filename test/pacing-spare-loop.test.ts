/**
 * The plugin with its defaults, over real sockets (the clients in a child
 * process, so reading them costs the server's loop nothing): a long pass
 * over the sockets on a loop with spare time is not followed by a rest, so
 * the next events are not held back. Counts only, never times: a rest would
 * show as the next two events leaving together in one write per socket.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import htmxSse from '../plugin/index.js'

/** Longer than two of the scheduler's utilization windows (UTILIZATION_WINDOW_MS): the loop's recent past is idle. */
const IDLE_MS = 600

/** Opens `n` SSE connections from a child process (so reading them costs this loop nothing) and keeps reading. */
async function clients (port: number, n: number): Promise<() => Promise<void>> {
  const script = `
    const net = require('node:net')
    const [port, n] = process.argv.slice(1).map(Number)
    let open = 0
    for (let i = 0; i < n; i++) {
      const s = net.connect(port, '127.0.0.1', () => s.write('GET /sse HTTP/1.1\\r\\nHost: x\\r\\nAccept: text/event-stream\\r\\n\\r\\n'))
      s.once('data', () => { if (++open === n) process.stdout.write('open\\n') })
      s.on('data', () => {})
      s.on('error', () => {})
    }
    process.on('disconnect', () => process.exit(0))`
  const child = spawn(process.execPath, ['-e', script, String(port), String(n)], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] })
  const opened = await Promise.race([
    once(child.stdout!, 'data').then(() => true),
    sleep(60_000, undefined, { ref: false }).then(() => false),
    once(child, 'exit').then(() => false)
  ])
  if (!opened) child.kill('SIGKILL')
  return async () => {
    if (child.exitCode === null) {
      child.kill('SIGKILL')
      await once(child, 'exit')
    }
  }
}

t.test('the plugin with its defaults: a long pass on a loop with spare time is not followed by a rest', async t => {
  // Enough sockets that one pass takes more than REST_AFTER_MS of writes on this kind of machine.
  const n = 4000
  const app = Fastify()
  await app.register(htmxSse, { heartbeatMs: false })
  app.get('/sse', (_request, reply) => reply.sse({ topics: ['t'] }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const stop = await clients((app.server.address() as { port: number }).port, n)
  // The clients go first: closing the app then has no stream left to end.
  t.teardown(async () => {
    await stop()
    await app.close()
  })
  for (let i = 0; i < 6000 && app.sseHub.stats().connections < n; i++) await sleep(10)
  t.equal(app.sseHub.stats().connections, n, 'every client subscribed')
  const deliveredBy = async (count: number): Promise<void> => {
    for (let i = 0; i < 60_000 && app.sseHub.stats().delivered < count; i++) await sleep(1)
  }
  // Idle for two utilization windows, then one event: one long pass on a loop with spare time.
  await sleep(IDLE_MS)
  await app.sseHub.publish('t', { data: 'e1' })
  for (let i = 0; i < 1_000_000 && app.sseHub.stats().delivered < n; i++) await nextTurn()
  t.equal(app.sseHub.stats().delivered, n, 'e1 written to every socket')
  // Right after the pass: e2, and e3 one turn later. Had the pass been followed
  // by a rest, both would wait for its end and leave in one write per socket;
  // without one, e2's pass has begun when e3 comes, so its first slice wrote e2 alone.
  const writes = app.sseHub.stats().writes
  await app.sseHub.publish('t', { data: 'e2' })
  await nextTurn()
  await app.sseHub.publish('t', { data: 'e3' })
  await deliveredBy(3 * n)
  t.equal(app.sseHub.stats().delivered, 3 * n, 'e2 and e3 written to every socket')
  const more = app.sseHub.stats().writes - writes
  t.ok(more > n, `e2 and e3 took ${more} writes for ${n} sockets: not all held back together`)
})
