/**
 * Issue 11, item 2: one event larger than `maxBufferedBytes` must never start
 * an evict → reconnect → replay → evict loop. The fix may either refuse it at
 * publish (assumed: an Error whose `code` is 'HTMX_SSE_EVENT_TOO_LARGE', and
 * nothing is stored) or deliver it once; either way evictions stay bounded
 * and a later small event reaches every subscriber.
 */
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { startApp } from './helpers/app.js'
import { connect, waitUntil, type SseClient } from './helpers/sse-client.js'

/** Like an EventSource: reconnects whenever the stream ends, sending the last id it saw. */
class ReconnectingClient {
  readonly ids: string[] = []
  readonly events: Array<{ id: string | undefined, event: string | undefined, size: number }> = []
  connections = 0
  #lastId: string | undefined
  #current: SseClient | undefined
  #stopped = false
  readonly done: Promise<void>

  constructor (readonly url: string, lastId: string | undefined) {
    this.#lastId = lastId
    this.done = this.#run()
  }

  async #run (): Promise<void> {
    while (!this.#stopped) {
      let c: SseClient
      try {
        c = await connect(this.url, { headers: this.#lastId === undefined ? {} : { 'last-event-id': this.#lastId } })
      } catch {
        await sleep(20)
        continue
      }
      this.#current = c
      this.connections++
      let seen = 0
      const take = (): void => {
        for (; seen < c.events.length; seen++) {
          const e = c.events[seen]!
          this.events.push({ id: e.id, event: e.event, size: e.data.length })
          if (e.id !== undefined) { this.#lastId = e.id; this.ids.push(e.id) }
        }
      }
      const timer = setInterval(take, 5)
      await c.ended
      clearInterval(timer)
      take()
      if (this.#stopped) break
      await sleep(20) // the retry delay a browser would wait
    }
  }

  async stop (): Promise<void> {
    this.#stopped = true
    this.#current?.close()
    await this.done
  }
}

t.test('an event larger than maxBufferedBytes: refused at publish or delivered once, never an eviction loop', async t => {
  const subscribers = 5
  const { app, url } = await startApp({ heartbeatMs: false, retryMs: 50 }, app => { // default maxBufferedBytes: 1 MiB
    app.get('/stream', (_request, reply) => reply.sse({ topics: ['big'] }))
  })
  const first = await app.sseHub.publish('big', { event: 'small', data: 'before' })
  const clients = [...Array(subscribers).keys()].map(() => new ReconnectingClient(`${url}/stream`, first))
  t.teardown(async () => {
    await Promise.all(clients.map(async c => await c.stop()))
    await app.close()
  })
  await waitUntil(() => app.sseHub.stats().connections === subscribers, 5000, 'every subscriber connected')

  const big = 'x'.repeat(10 * 1024 * 1024) // 10 MB, ten times the default bound
  let refused: unknown
  let bigId: string | undefined
  try {
    bigId = await app.sseHub.publish('big', { event: 'big', data: big })
  } catch (err) {
    refused = err
  }
  const after = await app.sseHub.publish('big', { event: 'small', data: 'after' })

  // Generous wait: a working hub delivers this within milliseconds.
  const healed = await waitUntil(() => clients.every(c => c.ids.includes(after)), 8000, 'the small event on every subscriber')
    .then(() => true, () => false)
  const stats = app.sseHub.stats()
  const got = clients.filter(c => c.ids.includes(after)).length
  t.comment(`evicted ${stats.evicted} times, ${clients.reduce((n, c) => n + c.connections, 0)} connections, ${got}/${subscribers} got the later event; publish ${refused === undefined ? `resolved with ${bigId}` : `rejected: ${String(refused)}`}`)

  if (refused !== undefined) {
    t.match(refused, { code: 'HTMX_SSE_EVENT_TOO_LARGE' }, 'refused with a clear error code')
    t.ok(refused instanceof Error, 'an Error')
    const kept = await app.sseHub.history('big', { limit: 10 })
    t.same(kept.map(m => m.event), ['small', 'small'], 'nothing of the refused event is stored')
  } else {
    t.ok(clients.every(c => c.events.filter(e => e.event === 'big').length === 1),
      'delivered to every subscriber exactly once', { bigCounts: clients.map(c => c.events.filter(e => e.event === 'big').length) })
  }
  t.ok(healed, `a later small event reaches every subscriber (${got}/${subscribers})`)
  t.ok(stats.evicted <= subscribers, `evictions stay bounded: ${stats.evicted} (bound: ${subscribers}, one per subscriber)`)
})
