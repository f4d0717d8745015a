/**
 * Issue 11, item 3: a producer publishing in a tight `await` loop is paced
 * (the hub yields to I/O), so readers that keep up are never evicted by one
 * tick's batch. With the in-process transport, `await publish()` never leaves
 * the microtask queue, so on today's code the whole burst lands in one
 * per-socket batch that is far past `maxBufferedBytes`.
 */
import t from 'tap'
import { startApp } from './helpers/app.js'
import { connect, waitUntil } from './helpers/sse-client.js'

t.test('a burst of awaited publishes does not evict readers that keep up', async t => {
  const readers = 20
  const events = 4000
  const maxBufferedBytes = 256 * 1024
  const payload = 'p'.repeat(2000) // ~2 KiB per event: ~8 MiB per reader in one tick, 32× the bound (and past what a loopback socket takes in one write)
  const { app, url } = await startApp({ heartbeatMs: false, maxBufferedBytes, history: events + 10 }, app => {
    app.get('/stream', (_request, reply) => reply.sse({ topics: ['burst'] }))
  })
  t.teardown(() => app.close())
  const clients = await Promise.all([...Array(readers).keys()].map(async () => await connect(`${url}/stream`)))
  t.teardown(() => { for (const c of clients) c.close() })
  await waitUntil(() => app.sseHub.stats().connections === readers, 5000, 'every reader subscribed')

  const ids: string[] = []
  for (let i = 0; i < events; i++) ids.push(await app.sseHub.publish('burst', { event: 'n', data: `${i} ${payload}` }))

  // Every reader reads as fast as it can; wait until each has everything or its stream ended.
  await waitUntil(() => clients.every(c => c.events.length >= events || c.isEnded()), 20_000, 'readers to finish').catch(() => {})
  const stats = app.sseHub.stats()
  const complete = clients.filter(c => c.events.length === events && !c.isEnded()).length
  t.comment(`${stats.evicted} of ${readers} readers evicted; ${complete} received all ${events} events`)
  t.equal(stats.evicted, 0, `no reader evicted by the burst (evicted: ${stats.evicted} of ${readers})`)
  const exact = clients.filter(c =>
    c.events.length === events &&
    c.events.every((e, i) => e.id === ids[i] && e.data.startsWith(`${i} `))).length
  t.equal(exact, readers, `every reader got every event exactly once, in order (${exact} of ${readers})`)
  t.equal(clients.filter(c => c.isEnded()).length, 0, 'and is still connected')
})
