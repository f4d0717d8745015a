import t from 'tap'
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { startApp } from './helpers/app.js'
import { waitUntil } from './helpers/sse-client.js'

interface Summary { slow: boolean, count: number, unique: number, ordered: boolean, connections: number, resets: number }

t.test('20 of 200 clients stop reading while 10 MB are published: closed, bounded, then healed by replay', async t => {
  const maxBufferedBytes = 1024 * 1024
  const eventSize = 8 * 1024
  const events = 1280 // 10 MiB
  const { app, url } = await startApp({ maxBufferedBytes, history: events + 10, heartbeatMs: false }, app => {
    app.get('/stream', (_req, reply) => reply.sse({ topics: ['load'] }))
  })
  t.teardown(() => app.close())

  const child = fork(fileURLToPath(new URL('./helpers/fanout-clients.mjs', import.meta.url)), [`${url}/stream`, '180', '20', String(events + 1)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  t.teardown(() => { if (child.exitCode === null) child.kill() })
  let progress = { connected: 0, received: 0, receivedFast: 0, minFast: 0 }
  let summary: Summary[] | undefined
  child.on('message', (msg: { type: string, connected: number, received: number, receivedFast: number, minFast: number, summary: Summary[] }) => {
    if (msg.type === 'progress') progress = msg
    if (msg.type === 'done') summary = msg.summary
  })

  await waitUntil(() => app.sseHub.stats().connections === 200, 15_000, '200 subscribers')
  await app.sseHub.publish('load', { event: 'warmup', data: 'go' })
  await waitUntil(() => progress.connected === 200, 15_000, 'every client got the first event (slow ones then stop reading)')

  global.gc?.()
  const baseline = process.memoryUsage()
  let peakHeld = 0
  const sample = (): void => {
    const m = process.memoryUsage()
    peakHeld = Math.max(peakHeld, m.heapUsed + m.arrayBuffers - baseline.heapUsed - baseline.arrayBuffers)
  }
  const payload = 'x'.repeat(eventSize - 40)
  for (let i = 0; i < events; i++) {
    await app.sseHub.publish('load', { event: 'e', data: `${i} ${payload}` })
    if (i % 16 === 15) {
      sample()
      // Publish no faster than every reader (one child process, same 2 cores)
      // parses, so none is ever more than (behind + 16) × 8 KiB = 512 KiB
      // behind, well within maxBufferedBytes whatever the kernel buffers;
      // the slow ones don't read at all, so their backlog still grows past it.
      const behind = 48
      await waitUntil(() => progress.minFast >= i + 2 - behind, 20_000, 'every reader to keep up')
    }
  }
  await waitUntil(() => app.sseHub.stats().evicted >= 20, 20_000, '20 slow consumers evicted')
  sample()
  // The configured history is a fixed cost paid with or without slow
  // clients: each kept event holds its encoded frame (the data string is dropped).
  const historyBytes = events * eventSize
  const bound = maxBufferedBytes * 20 + 20 * 1024 * 1024
  const growth = peakHeld - historyBytes
  t.ok(growth < bound, `server memory beyond the ${(historyBytes / 1048576).toFixed(1)} MiB history peaked at ${(growth / 1048576).toFixed(1)} MiB (bound ${(bound / 1048576).toFixed(1)} MiB)`)
  t.equal(app.sseHub.stats().evicted, 20, 'exactly the 20 slow clients were closed, none of the readers')

  child.send('resume')
  await waitUntil(() => summary !== undefined, 60_000, 'every client to hold every event')
  const fast = summary!.filter(s => !s.slow)
  const slow = summary!.filter(s => s.slow)
  t.equal(fast.length, 180)
  t.ok(fast.every(s => s.count === events + 1 && s.unique === events + 1 && s.ordered && s.connections === 1),
    'readers got every event once, in order, on their first connection')
  t.ok(slow.every(s => s.count === events + 1 && s.unique === events + 1 && s.ordered),
    'slow clients ended with every event exactly once, in order', { slow: slow.filter(s => !(s.count === events + 1 && s.unique === events + 1 && s.ordered)) })
  t.ok(slow.every(s => s.connections >= 2 && s.resets === 0), 'after reconnecting, with replay and no reset')
  t.ok(app.sseHub.stats().replayed > 0)
  child.send('exit')
})
