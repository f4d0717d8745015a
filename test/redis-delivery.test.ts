/**
 * Redis transport against a real redis-server: two Fastify instances in one
 * process share topics, ids and history; clients over real sockets.
 */
import t, { type Test } from 'tap'
import { parseId, type HubMessage } from '../plugin/transport.js'
import { redisTransport, type RedisTransport, type RedisTransportOptions } from '../plugin/transports/redis.js'
import { fileRedis, hubInstance, openSse, Redis, type HubInstance, type SseClient } from './helpers/redis-server.js'
import { waitUntil } from './helpers/sse-client.js'

const server = fileRedis(t)
const client = server.client

type Instance = HubInstance

const instance = async (t: Test, options: Omit<RedisTransportOptions, 'redis'>): Promise<Instance> => await hubInstance(t, server.url, options)

const sse = async (t: Test, port: number, path: string, headers?: Record<string, string>): Promise<SseClient> => {
  const c = await openSse(port, path, headers)
  t.teardown(() => c.close())
  t.equal(c.status, 200)
  return c
}

const ids = (events: Array<{ id?: string | undefined }>): number[] => events.map(e => Number(e.id))
const increasing = (xs: number[]): boolean => xs.every((x, i) => i === 0 || x > xs[i - 1]!)

/** Publishes a sentinel on `topic` and waits for it: everything published before has arrived, so counts are final. */
async function settle (pub: Instance, topic: string, ...cs: SseClient[]): Promise<void> {
  const id = await pub.app.sseHub.publish(topic, { event: 'sentinel', data: 'end' })
  await Promise.all(cs.map(c => c.waitUntil(e => e.id === id)))
}

t.test('publish on A reaches subscribers on A and B once, in id order, across two topics', async t => {
  const prefix = 'p1'
  const a = await instance(t, { prefix })
  const b = await instance(t, { prefix })
  const bBoth = await sse(t, b.port, '/s?topics=red,blue')
  const bRed = await sse(t, b.port, '/s?topics=red')
  const aBoth = await sse(t, a.port, '/s?topics=blue,red')

  const sent: Array<{ id: string, topic: string, data: string }> = []
  for (let i = 0; i < 60; i++) {
    const topic = i % 3 === 0 ? 'blue' : 'red'
    const data = `<p>${topic} ${i}</p>\nline two`
    // Alternate publishers: ids are still one total order.
    const id = await (i % 2 === 0 ? a : b).app.sseHub.publish(topic, { event: topic, data })
    sent.push({ id, topic, data })
  }
  t.ok(increasing(ids(sent)), 'publish resolves with increasing ids')
  t.ok(sent.every(s => parseId(s.id) !== undefined), 'ids are canonical decimal integers')

  await settle(a, 'red', bBoth, bRed, aBoth)
  for (const [name, c, want] of [
    ['B red+blue', bBoth, sent],
    ['B red', bRed, sent.filter(s => s.topic === 'red')],
    ['A blue+red', aBoth, sent]
  ] as const) {
    const got = c.events.filter(e => e.event !== 'sentinel')
    t.same(got.map(e => [e.id, e.event, e.data]), want.map(s => [s.id, s.topic, s.data]), `${name}: every event once, in order, intact`)
    t.notOk(c.closed, `${name}: still connected`)
  }

  const hist = await b.app.sseHub.history('red', { limit: 5 })
  t.same(hist.map(m => m.id), [...sent.filter(s => s.topic === 'red').map(s => s.id).slice(-4), bRed.events.at(-1)!.id], 'history: newest, oldest first')
  t.equal(await a.app.sseHub.head(), bRed.events.at(-1)!.id, 'head is the newest id')
})

t.test('reconnect to B with Last-Event-ID (header or ?lastEventId=) replays exactly the missed events, then live', async t => {
  const prefix = 'p2'
  const a = await instance(t, { prefix })
  const b = await instance(t, { prefix })
  const first = await sse(t, a.port, '/s?topics=x,y')
  const published: string[] = []
  const pub = async (inst: Instance, n: number, tag: string): Promise<void> => {
    for (let i = 0; i < n; i++) published.push(await inst.app.sseHub.publish(i % 2 === 0 ? 'x' : 'y', { data: `${tag}${i}` }))
  }
  await pub(a, 10, 'a')
  // An unrelated topic in between must not show up.
  await a.app.sseHub.publish('z', { data: 'other' })
  const seen = await first.waitFor(10)
  first.close()
  const lastId = seen.at(-1)!.id
  t.equal(lastId, published[9])

  await pub(b, 7, 'b')
  await pub(a, 5, 'c')
  const missed = published.slice(10)

  const ways: Array<[string, string, Record<string, string>]> = [
    ['header', '/s?topics=x,y', { 'last-event-id': lastId! }],
    ['query', `/s?topics=y,x&lastEventId=${lastId!}`, {}]
  ]
  for (const [how, path, headers] of ways) {
    const c = await sse(t, b.port, path, headers)
    await c.waitFor(missed.length)
    const live = await a.app.sseHub.publish('y', { data: `live-${how}` })
    await c.waitUntil(e => e.id === live)
    t.same(c.events.map(e => e.id), [...missed, live], `${how}: missed events once, in order, then live`)
    t.same(c.events.slice(0, 2).map(e => e.data), ['b0', 'b1'])
    published.push(live)
    missed.push(live)
  }

  // Many reconnects while both instances publish: never a duplicate or a gap.
  const base = published.at(-1)!
  const burst = (async () => {
    const out: string[] = []
    for (let i = 0; i < 200; i++) out.push(await (i % 2 === 0 ? a : b).app.sseHub.publish(i % 3 === 0 ? 'x' : 'y', { data: `burst${i}` }))
    return out
  })()
  const racers: SseClient[] = []
  for (let i = 0; i < 8; i++) {
    racers.push(await sse(t, (i % 2 === 0 ? b : a).port, '/s?topics=x,y', { 'last-event-id': base }))
  }
  const burstIds = await burst
  const tail = await a.app.sseHub.publish('x', { data: 'tail' })
  for (const [i, c] of racers.entries()) {
    await c.waitUntil(e => e.id === tail)
    t.same(c.events.map(e => e.id), [...burstIds, tail], `racer ${i}: exactly the events after its id, no duplicates`)
  }
})

t.test('history trimmed past the client id: reset first, then live; within history: replay', async t => {
  const prefix = 'p3'
  const a = await instance(t, { prefix, history: 5 })
  const b = await instance(t, { prefix, history: 5 })
  const sent: string[] = []
  for (let i = 0; i < 20; i++) sent.push(await a.app.sseHub.publish('h', { data: `h${i}` }))

  const old = await sse(t, b.port, '/s?topics=h', { 'last-event-id': sent[1]! })
  const first = await old.waitFor(1)
  t.equal(first[0]!.event, 'reset', 'reset event first')
  t.equal(first[0]!.id, sent[19], 'reset carries the head id')
  const live = await a.app.sseHub.publish('h', { data: 'after' })
  await old.waitUntil(e => e.id === live)
  t.same(old.events.map(e => e.event ?? 'message'), ['reset', 'message'], 'no stale replay after the reset')

  const recent = await sse(t, b.port, `/s?topics=h&lastEventId=${sent[15]!}`)
  await recent.waitFor(5)
  t.same(recent.events.map(e => e.id), [...sent.slice(16), live], 'inside the kept history: exact replay')

  const justTrimmed = await sse(t, a.port, `/s?topics=h&lastEventId=${sent[14]!}`)
  const [ev] = await justTrimmed.waitFor(1)
  t.equal(ev!.event, 'reset', 'the event after the client id was trimmed: reset')

  for (const bad of ['nope', '99999999999999999', String(Number(live) + 1000)]) {
    const c = await sse(t, b.port, `/s?topics=h&lastEventId=${bad}`)
    const [ev] = await c.waitFor(1)
    t.equal(ev!.event, 'reset', `id ${bad}: reset`)
  }
})

t.test('transport unit behaviour: since/history/head, unknown topics, fields', async t => {
  const redis = client()
  const transport = redisTransport({ redis, prefix: 'p4', history: 3 })
  const delivered: Array<{ id: string, topic: string }> = []
  await transport.start(m => delivered.push(m), undefined as never)
  t.teardown(() => transport.close())
  const head0 = await transport.head()
  t.ok(parseId(head0) !== undefined, 'head exists from the start')

  const id1 = await transport.publish('t1', { data: 'one', event: 'e', retry: 1500 })
  const id2 = await transport.publish('t1', { data: '', event: '' })
  t.ok(Number(id1) > Number(head0!) && Number(id2) > Number(id1))

  const since = async (topic: string, id: string): Promise<{ events: HubMessage[], complete: boolean }> => {
    const { events, complete } = await transport.since([topic], id, { limit: 100 })
    return { events, complete }
  }
  const all = await since('t1', head0!)
  t.equal(all.complete, true)
  t.same(all.events.map(m => [m.id, m.topic, m.event, m.data, m.retry]), [[id1, 't1', 'e', 'one', 1500], [id2, 't1', '', '', undefined]], 'fields round-trip, empty strings kept')
  t.same(await since('never-used', head0!), { events: [], complete: true }, 'unknown topic, known id: complete, nothing missed')
  t.same(await since('t1', id2), { events: [], complete: true }, 'up to date')
  t.equal((await since('t1', String(Number(id2) + 1))).complete, false, 'id from the future')
  t.equal((await since('t1', 'abc')).complete, false, 'not an id')
  t.equal((await since('t1', '0')).complete, false, 'before this epoch')
  t.same(await transport.history('t1', 1), [all.events[1]], 'history limit')
  t.same(await transport.history('t1', 0), [])
  t.same(await transport.history('nothing', 10), [])

  for (let i = 0; i < 3; i++) await transport.publish('t1', { data: `more${i}` })
  t.equal((await since('t1', id1)).complete, false, 'trimmed past id1')
  t.equal((await since('t1', id2)).complete, true, 'id2 itself was trimmed, but everything after it is kept: complete')
  t.equal((await transport.history('t1', 10)).length, 3, 'history capped')
  t.equal(await redis.xlen('p4:t:t1'), 3)

  await transport.publish('t1', { data: 'x' })
  const head = await transport.head()
  t.equal(delivered.at(-1)?.id, head, 'live delivery through the firehose, on this instance too')
  t.equal(delivered.length, 6)

  t.throws(() => redisTransport({ redis: {} as Redis }), { code: 'HTMX_SSE_INVALID_OPTION', message: /ioredis client/ })
  t.throws(() => redisTransport({ redis, history: -1 }), { code: 'HTMX_SSE_INVALID_OPTION', message: /history \(redisTransport\) must be an integer/ })
})

t.test('a key of the wrong type is a clear error, not an outage, and burns no id', async t => {
  const redis = client()
  const transport = redisTransport({ redis, prefix: 'p5' })
  const delivered: string[] = []
  await transport.start(m => delivered.push(m.id), undefined as never)
  t.teardown(() => transport.close())
  await redis.set('p5:t:bad', 'not a stream')
  await t.rejects(transport.publish('bad', { data: 'x' }), { code: 'HTMX_SSE_REDIS_ERROR', message: /^redisTransport: publish to topic "bad" failed: .*holds a string/ })
  const before = await transport.head()
  const id = await transport.publish('good', { data: 'y' })
  t.equal(Number(id), Number(before) + 1, 'ids stay contiguous')
  t.equal(await transport.head(), id)
  t.same(delivered, [id])
})

t.test('an event published here is delivered here by the time publish resolves (no second round trip through the live loop)', async t => {
  const redis = client()
  // The live loop's connection answers XREAD 100 ms late, as it does when the
  // event loop is busy fanning out: only publish itself can deliver in time.
  const duplicate = redis.duplicate.bind(redis)
  redis.duplicate = ((...args: Parameters<Redis['duplicate']>) => {
    const sub = duplicate(...args)
    const xread = sub.xread.bind(sub) as (...a: unknown[]) => Promise<unknown>
    ;(sub as unknown as { xread: (...a: unknown[]) => Promise<unknown> }).xread = async (...a) => {
      const reply = await xread(...a)
      await new Promise(resolve => setTimeout(resolve, 100))
      return reply
    }
    return sub
  }) as Redis['duplicate']
  const transport = redisTransport({ redis, prefix: 'p6' })
  const delivered: string[] = []
  await transport.start(m => delivered.push(m.id), undefined as never)
  t.teardown(() => transport.close())
  for (let i = 0; i < 20; i++) {
    const id = await transport.publish('t', { data: `e${i}` })
    t.equal(delivered.at(-1), id, `event ${i} delivered when publish resolves`)
  }
  t.same(delivered.map(Number), [...delivered.map(Number)].sort((a, b) => a - b), 'in id order')
  await new Promise(resolve => setTimeout(resolve, 300))
  t.equal(new Set(delivered).size, 20, 'each once: the live loop skips what publish delivered')
  t.equal(delivered.length, 20)
})

t.test('two instances publishing at once: every subscriber on both gets every event once, in id order', async t => {
  const prefix = 'p7'
  const a = await instance(t, { prefix })
  const b = await instance(t, { prefix })
  const onA = await sse(t, a.port, '/s?topics=c')
  const onB = await sse(t, b.port, '/s?topics=c')
  const published = await Promise.all(Array.from({ length: 200 }, async (_, i) =>
    await (i % 2 === 0 ? a : b).app.sseHub.publish('c', { data: `m${i}` })))
  await settle(a, 'c', onA, onB)
  const want = [...published].map(Number).sort((x, y) => x - y)
  for (const [name, c] of [['A', onA], ['B', onB]] as const) {
    const got = ids(c.events.filter(e => e.event !== 'sentinel'))
    t.same(got, want, `${name}: all ${want.length} events once, in id order`)
  }
})

/** A client whose `duplicate()` (the live loop's connection) counts XREAD calls and can answer them late. */
function countingClient (delayMs = 0): { redis: Redis, xreads: () => number } {
  const redis = client()
  let calls = 0
  const duplicate = redis.duplicate.bind(redis)
  redis.duplicate = ((...args: Parameters<Redis['duplicate']>) => {
    const sub = duplicate(...args)
    const xread = sub.xread.bind(sub) as (...a: unknown[]) => Promise<unknown>
    ;(sub as unknown as { xread: (...a: unknown[]) => Promise<unknown> }).xread = async (...a) => {
      calls++
      const reply = await xread(...a)
      if (delayMs > 0) await new Promise(resolve => setTimeout(resolve, delayMs))
      return reply
    }
    return sub
  }) as Redis['duplicate']
  return { redis, xreads: () => calls }
}

/** Transports A (its live loop counted, answering `delayMs` late) and B on one Redis; what A delivers, by id. */
async function twoTransports (t: Test, prefix: string, delayMs: number): Promise<{ a: ReturnType<typeof countingClient>, ta: RedisTransport, tb: RedisTransport, onA: number[] }> {
  const a = countingClient(delayMs)
  const ta = redisTransport({ redis: a.redis, prefix })
  const tb = redisTransport({ redis: client(), prefix })
  const onA: number[] = []
  await ta.start(m => onA.push(Number(m.id)), undefined as never)
  await tb.start(() => {}, undefined as never)
  t.teardown(async () => { await ta.close(); await tb.close() })
  return { a, ta, tb, onA }
}

t.test('an instance that keeps publishing reads no XREAD per publish; other instances\' events come with its publish replies, in id order', async t => {
  const { a, ta, tb, onA } = await twoTransports(t, 'p8', 0)
  const before = a.xreads()
  const published: string[] = []
  const fromB = (async () => {
    for (let i = 0; i < 60; i++) {
      published.push(await tb.publish('t', { data: `b${i}` }))
      await new Promise(resolve => setTimeout(resolve, 1))
    }
  })()
  for (let i = 0; i < 300; i++) published.push(await ta.publish('t', { data: `a${i}` }))
  await fromB
  await waitUntil(() => onA.length >= 360, 10_000, 'A to deliver all 360 events')
  t.same(onA, published.map(Number).sort((x, y) => x - y), 'A delivered every event of both instances once, in id order')
  t.ok(a.xreads() - before < 60, `A's live loop read ${a.xreads() - before} times for 300 publishes of its own (bound 60)`)
})

t.test('more events from other instances than one publish reply carries: the loop delivers the rest, in order, once', async t => {
  // A's live loop answers 200 ms late, so A's publish reply finds 600 of B's events it has not delivered.
  const { ta, tb, onA } = await twoTransports(t, 'p9', 200)
  const published: string[] = []
  for (let i = 0; i < 600; i++) published.push(await tb.publish('t', { data: `b${i}` }))
  published.push(await ta.publish('t', { data: 'a0' }))
  await waitUntil(() => onA.length >= 601, 10_000, 'A to deliver all 601 events')
  await new Promise(resolve => setTimeout(resolve, 300))
  t.same(onA, published.map(Number), 'every event once, in id order, its own last')
})
