/**
 * Issue 11, item 7: the in-process hub must keep a bounded number of topics.
 * Today every topic ever published to keeps its history ring forever
 * (20,000 chat rooms cost well over 100 MiB).
 *
 * ASSUMED API (the fix adds it; missing today):
 * - `new MemoryTransport({ maxTopics })`: at most this many topics' histories are kept
 *   (the least recently used idle ones are dropped first);
 * - `transport.topicCount`: how many topics' histories are kept right now.
 */
import t from 'tap'
import v8 from 'node:v8'
import vm from 'node:vm'
import type { MemoryTransportOptions } from '../plugin/index.js'
import { MemoryTransport } from '../plugin/transports/memory.js'
import { startApp } from './helpers/app.js'

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void

function heapUsed (): number {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

t.test('publishing to 20,000 distinct topics keeps a bounded number of them (maxTopics)', async t => {
  const maxTopics = 1000
  const options: MemoryTransportOptions & { maxTopics: number } = { maxTopics } // history: default 1 000
  const transport = new MemoryTransport(options)
  const { app } = await startApp({ transport, heartbeatMs: false })
  t.teardown(() => app.close())

  const topics = 20_000
  const data = 'm'.repeat(200)
  await app.sseHub.publish('warmup', { data })
  const before = heapUsed()
  for (let i = 0; i < topics; i++) await app.sseHub.publish(`chat:room-${i}`, { event: 'message', data })
  const growth = heapUsed() - before
  const kept = (transport as unknown as { topicCount?: unknown }).topicCount
  t.comment(`heap after ${topics} topics: +${(growth / 1048576).toFixed(1)} MiB; topicCount: ${String(kept)}`)

  t.type(kept, 'number', 'transport.topicCount reports how many topics are kept (assumed API)')
  t.ok(typeof kept === 'number' && kept <= maxTopics, `at most maxTopics=${maxTopics} topics kept (got ${String(kept)})`)
  // Generous: maxTopics rings of one short event each are a few MiB.
  const bound = 32 * 1048576
  t.ok(growth < bound, `heap growth ${(growth / 1048576).toFixed(1)} MiB for ${topics} topics stays under ${bound / 1048576} MiB`)
  // The newest topics are still replayable.
  const newest = await app.sseHub.history(`chat:room-${topics - 1}`, { limit: 5 })
  t.equal(newest.length, 1, 'the most recent topic keeps its history')
})
