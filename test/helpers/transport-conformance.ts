/**
 * One hub-transport contract, run against the memory and the Redis
 * transport: Fastify apps with the plugin, subscribers over real sockets
 * (node:http, one connection per request), publishes through app.sseHub.
 * The model-based part lives in transport-model.ts.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import htmxSse from '../../plugin/index.js'
import { parseId } from '../../plugin/transport.js'
import { redisTransport, type RedisTransportOptions } from '../../plugin/transports/redis.js'
import { Redis } from './redis-server.js'
import { connect, waitUntil, type SseClient } from './sse-client.js'

/** One Fastify instance serving `GET /s?topics=a,b` as hub topics. */
export interface HubApp {
  readonly app: FastifyInstance
  readonly port: number
  readonly closed: boolean
  /** app.close(), then the instance's own Redis client is disconnected. Resolves with how long app.close() took. */
  close (): Promise<number>
}

export interface Backend {
  readonly name: 'memory' | 'redis'
  /** Instances that share topics, ids and history (1: in-process). */
  readonly shared: number
  /** A fresh namespace (Redis key prefix) that no other case uses. */
  space (): string
  /** An instance in `space`; instances of one space share events when `shared` > 1. */
  start (space: string, options: { history: number }): Promise<HubApp>
}

/** What app.close() may take, with subscribers connected and publishes in flight. */
export const CLOSE_BOUND_MS = 5000

async function listen (app: FastifyInstance, close: () => void): Promise<HubApp> {
  app.get('/s', (request, reply) => reply.sse({ topics: String((request.query as { topics: string }).topics).split(',') }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  let closed = false
  return {
    app,
    port: (app.server.address() as { port: number }).port,
    get closed () { return closed },
    close: async () => {
      if (closed) return 0
      closed = true
      const started = Date.now()
      await app.close()
      const took = Date.now() - started
      close()
      return took
    }
  }
}

export function memoryBackend (): Backend {
  return {
    name: 'memory',
    shared: 1,
    space: () => 'memory',
    start: async (_space, { history }) => {
      const app = Fastify()
      await app.register(htmxSse, { heartbeatMs: false, history })
      return await listen(app, () => {})
    }
  }
}

export function redisBackend (url: string, options: Omit<RedisTransportOptions, 'redis' | 'prefix' | 'history'> = {}): Backend {
  let spaces = 0
  return {
    name: 'redis',
    shared: 2,
    space: () => `conf${++spaces}-${process.pid}`,
    start: async (space, { history }) => {
      // Each instance has its own client, as separate processes would.
      const redis = new Redis(url)
      redis.on('error', () => {})
      const app = Fastify()
      await app.register(htmxSse, { heartbeatMs: false, secret: 'redis-test-secret-0123456789', transport: redisTransport({ redis, prefix: space, history, ...options }) })
      return await listen(app, () => redis.disconnect())
    }
  }
}

export async function subscribe (t: Test, inst: HubApp, topics: string[], lastEventId?: string, via: 'header' | 'query' = 'header'): Promise<SseClient> {
  const query = via === 'query' && lastEventId !== undefined ? `&lastEventId=${encodeURIComponent(lastEventId)}` : ''
  const headers = via === 'header' && lastEventId !== undefined ? { 'last-event-id': lastEventId } : undefined
  const c = await connect(`http://127.0.0.1:${inst.port}/s?topics=${topics.join(',')}${query}`, { headers })
  t.teardown(() => c.close())
  return c
}

const seen = (c: SseClient): string => JSON.stringify(c.events.map(e => [e.id, e.event ?? 'message', e.data]))

/** Waits (bounded) until the client received the event with `id`. */
export async function receives (c: SseClient, id: string, timeoutMs = 10_000): Promise<void> {
  await waitUntil(() => c.events.some(e => e.id === id), timeoutMs, `event ${id}; got ${seen(c)}${c.isEnded() ? ' (closed)' : ''}`)
}

async function firstEvent (c: SseClient): Promise<void> {
  await waitUntil(() => c.events.length > 0, 10_000, `a first event; got ${seen(c)}${c.isEnded() ? ' (closed)' : ''}`)
}

type Sent = { id: string, topic: string, data: string }
const shape = (events: Array<{ id?: string | undefined, event?: string | undefined, data: string }>): string[][] => events.map(e => [e.id ?? '', e.event ?? 'message', e.data])
const sentShape = (sent: Sent[]): string[][] => sent.map(s => [s.id, 'message', s.data])

export function transportContract (t: Test, backend: Backend): void {
  const apps: HubApp[] = []
  t.teardown(async () => { for (const a of apps) await a.close() })
  const start = async (space: string, history = 100): Promise<HubApp> => {
    const a = await backend.start(space, { history })
    apps.push(a)
    return a
  }
  /** One instance, or two sharing a space (Redis): the second is where subscribers connect, so replay and live cross instances. */
  const pair = async (history = 100): Promise<[HubApp, HubApp]> => {
    const space = backend.space()
    const pub = await start(space, history)
    return [pub, backend.shared > 1 ? await start(space, history) : pub]
  }
  const publish = async (a: HubApp, topic: string, data = `${topic}-${Math.random().toString(36).slice(2, 8)}`): Promise<Sent> =>
    ({ id: await a.app.sseHub.publish(topic, { data }), topic, data })

  t.test(`${backend.name}: ids are canonical and increase across topics and instances`, async t => {
    const [a, b] = await pair()
    const ids: string[] = []
    for (let i = 0; i < 12; i++) ids.push((await publish(i % 2 === 0 ? a : b, ['x', 'y', 'z'][i % 3]!)).id)
    t.ok(ids.every(id => parseId(id) !== undefined), `canonical: ${ids.join(' ')}`)
    t.ok(ids.every((id, i) => i === 0 || Number(id) > Number(ids[i - 1])), 'strictly increasing in publish order')
    t.equal(await b.app.sseHub.head(), ids.at(-1), 'head is the newest id, on either instance')
  })

  t.test(`${backend.name}: replay after an id is exactly the missed events of the subscribed topics, in order, then live`, async t => {
    const [a, b] = await pair()
    const sent: Sent[] = []
    for (const topic of ['a', 'b', 'a', 'c', 'a', 'b']) sent.push(await publish(a, topic))
    const onA = sent.filter(s => s.topic === 'a')
    for (const via of ['header', 'query'] as const) {
      const c = await subscribe(t, b, ['a'], onA[0]!.id, via)
      t.equal(c.status, 200)
      const live = await publish(a, 'a')
      await receives(c, live.id)
      t.same(shape(c.events), sentShape([...onA.slice(1), live]), `${via}: the missed events of 'a', then the live one`)
      onA.push(live)
      c.close()
    }
  })

  t.test(`${backend.name}: multi-topic replay is merged in id order`, async t => {
    const [a, b] = await pair()
    const sent: Sent[] = []
    for (const topic of ['a', 'b', 'a', 'c', 'b', 'b', 'a', 'c']) sent.push(await publish(a, topic))
    const c = await subscribe(t, b, ['b', 'a'], sent[0]!.id)
    const live = await publish(a, 'b')
    await receives(c, live.id)
    t.same(shape(c.events), sentShape([...sent.slice(1).filter(s => s.topic !== 'c'), live]))
  })

  t.test(`${backend.name}: history boundary: the newest trimmed id still replays, one older gets one reset, then live`, async t => {
    const history = 3
    const [a, b] = await pair(history)
    const sent: Sent[] = []
    for (let i = 0; i < 6; i++) sent.push(await publish(a, 'h'))
    // Ids 3..5 are kept; 2 is the newest trimmed: a client that saw it missed only kept ones.
    const exact = await subscribe(t, b, ['h'], sent[2]!.id)
    const old = await subscribe(t, b, ['h'], sent[1]!.id)
    // The reset carries the head when the replay runs: wait for it, or a live event could become that head.
    await firstEvent(old)
    const live = await publish(a, 'h')
    await receives(exact, live.id)
    await receives(old, live.id)
    t.same(shape(exact.events), sentShape([...sent.slice(3), live]), 'complete replay from the newest trimmed id')
    t.same(shape(old.events), [[sent[5]!.id, 'reset', old.events[0]?.data ?? ''], ...sentShape([live])], 'one reset carrying the head, nothing replayed, then live')
    t.equal(old.events.filter(e => e.event === 'reset').length, 1)
    // A client resuming from the reset's id is where it should be: no second reset.
    const again = await subscribe(t, b, ['h'], old.events[0]!.id)
    const next = await publish(a, 'h')
    await receives(again, next.id)
    t.same(shape(again.events), sentShape([live, next]), 'resume from the reset id: exactly what came after it')
  })

  t.test(`${backend.name}: an id from the future or garbage gets reset (never a 400), an unreadable one is ignored`, async t => {
    const [a, b] = await pair()
    const first = await publish(a, 'f')
    const future = String(Number(first.id) + 1_000_000)
    const clients = {
      future: await subscribe(t, b, ['f'], future),
      garbage: await subscribe(t, b, ['f'], 'not-an-id'),
      negative: await subscribe(t, b, ['f'], '-1'),
      leadingZero: await subscribe(t, b, ['f'], `0${first.id}`),
      // %01 is not a printable id: dropped, so this is a fresh connection.
      unreadable: await subscribe(t, b, ['f'], '\u0001', 'query')
    }
    for (const [name, c] of Object.entries(clients)) if (name !== 'unreadable') await firstEvent(c)
    const live = await publish(a, 'f')
    for (const [name, c] of Object.entries(clients)) {
      t.equal(c.status, 200, `${name}: 200`)
      await receives(c, live.id)
      const want = name === 'unreadable' ? sentShape([live]) : [[first.id, 'reset', c.events[0]?.data ?? ''], ...sentShape([live])]
      t.same(shape(c.events), want, name)
    }
  })

  t.test(`${backend.name}: subscribers on every instance get every event once, in one order`, async t => {
    const [a, b] = await pair()
    const subs = [await subscribe(t, a, ['p', 'q']), await subscribe(t, b, ['q', 'p']), await subscribe(t, b, ['q'])]
    // Not awaited one by one: publishes from both instances overlap.
    const sent = await Promise.all(Array.from({ length: 30 }, (_, i) => publish(i % 2 === 0 ? a : b, i % 3 === 0 ? 'q' : 'p', `d${i}`)))
    sent.sort((x, y) => Number(x.id) - Number(y.id))
    const last = sent.at(-1)!
    const lastQ = sent.filter(s => s.topic === 'q').at(-1)!
    await receives(subs[0]!, last.id)
    await receives(subs[1]!, last.id)
    await receives(subs[2]!, lastQ.id)
    t.same(shape(subs[0]!.events), sentShape(sent), 'instance A: all, in id order')
    t.same(shape(subs[1]!.events), sentShape(sent), 'instance B: the same order')
    t.same(shape(subs[2]!.events), sentShape(sent.filter(s => s.topic === 'q')), 'one topic: only its events')
  })

  t.test(`${backend.name}: app.close() is prompt with subscribers connected and publishes in flight`, async t => {
    const [a, b] = await pair()
    const c = await subscribe(t, a, ['z'])
    const d = await subscribe(t, b, ['z'])
    const first = await publish(b, 'z')
    await receives(c, first.id)
    const inFlight = Array.from({ length: 20 }, (_, i) => a.app.sseHub.publish('z', { data: `late${i}` }).then(
      id => ({ id }), (err: { code?: string }) => ({ code: err.code ?? `uncoded: ${String(err)}` })))
    const took = await a.close()
    t.ok(took < CLOSE_BOUND_MS, `app.close() returned within ${CLOSE_BOUND_MS} ms`)
    await waitUntil(() => c.isEnded(), 5000, 'the stream on the closed instance to end')
    const outcomes = await Promise.all(inFlight)
    t.same(outcomes.filter(o => 'code' in o && !String(o.code).startsWith('HTMX_SSE_')), [], 'an in-flight publish resolves or rejects with a coded error')
    if (b !== a) {
      await receives(d, first.id)
      t.notOk(d.isEnded(), 'the other instance keeps its subscribers')
    }
  })
}
