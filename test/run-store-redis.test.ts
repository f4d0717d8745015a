/**
 * RedisRunStore over one real redis-server: the RunStore contract, the same
 * answers as MemoryRunStore for random operation sequences, instances racing
 * for the same change, state read by a new client (a restarted instance),
 * and bounded, clear failures while Redis is down or stalled.
 */
import t from 'tap'
import { deepStrictEqual } from 'node:assert'
import fc from 'fast-check'
import { MemoryRunStore, type RunPatch, type RunStore } from '../runs/store.js'
import { RedisRunStore } from '../runs/store-redis.js'
import { RUN_STATUSES } from '../views/run.js'
import { aRun, ENDED, LONG, runStoreContract } from './helpers/run-store-contract.js'
import { Redis, startRedisServer } from './helpers/redis-server.js'
import { eventually } from './helpers/sse-client.js'

const server = await startRedisServer()
const clients: Redis[] = []
/** A client of its own (another instance); quit at the end. */
function client (options: { keyPrefix?: string, maxRetriesPerRequest?: number | null } = {}): Redis {
  const redis = new Redis(server.url, options)
  redis.on('error', () => {})
  clients.push(redis)
  return redis
}
t.teardown(async () => {
  await Promise.all(clients.map(async c => c.status === 'ready' ? await c.quit().catch(() => c.disconnect()) : c.disconnect()))
  await server.stop()
})

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))
let prefixes = 0
/** Every store on a prefix of its own: tests share the server, never keys. */
const fresh = (): string => `t${++prefixes}`

const shared = client()
runStoreContract(t, async () => new RedisRunStore({ redis: shared, prefix: fresh() }))

type Op =
  | { op: 'create', id: string, kind: string, owner: string, lease: number, data: unknown, max: number }
  | { op: 'get' | 'entries' | 'requestCancel' | 'interrupt', kind: string, id: string }
  | { op: 'recent', kind: string, limit: number }
  | { op: 'update', kind: string, id: string, owner: string, patch: RunPatch }
  | { op: 'append', kind: string, id: string, owner: string, entry: unknown, index: number | undefined }
  | { op: 'renew', kind: string, owner: string, ids: string[], lease: number }
  | { op: 'expired', kind: string }

const id = fc.constantFrom('a', 'b', 'c', 'd', 'e')
const kind = fc.constantFrom('job', 'agent')
const owner = fc.constantFrom('A', 'B')
// Leases that end long before or after "now" in either store's clock: the answers cannot depend on which clock.
const lease = fc.constantFrom(ENDED, LONG)
const time = fc.integer({ min: 0, max: 6 })
const json = fc.jsonValue({ maxDepth: 2 })
// Present-but-undefined fields count: `{ ...run, ...patch }` through JSON removes them.
const patch: fc.Arbitrary<RunPatch> = fc.record({
  status: fc.option(fc.constantFrom(...RUN_STATUSES), { nil: undefined }),
  data: fc.option(json, { nil: undefined }),
  finishedAt: fc.option(time, { nil: undefined })
}, { requiredKeys: [] })
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('create' as const), id, kind, owner, lease, data: json, max: fc.integer({ min: 0, max: 4 }) }),
  fc.record({ op: fc.constant('update' as const), kind, id, owner: fc.constant('A'), patch }),
  fc.record({ op: fc.constantFrom('get' as const, 'entries' as const, 'requestCancel' as const, 'interrupt' as const), kind, id }),
  fc.record({ op: fc.constant('recent' as const), kind, limit: fc.integer({ min: 0, max: 6 }) }),
  fc.record({ op: fc.constant('update' as const), kind, id, owner, patch }),
  fc.record({ op: fc.constant('append' as const), kind, id, owner, entry: json, index: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }) }),
  fc.record({ op: fc.constant('renew' as const), kind, owner, ids: fc.array(id, { maxLength: 4 }), lease }),
  fc.record({ op: fc.constant('expired' as const), kind })
)

/** Times in a store's own clock as what they mean (lease live or ended, a finish at "now"): the two stores' clocks differ by a few ms. */
function clockFree (value: unknown): unknown {
  if (Array.isArray(value)) return value.map(clockFree)
  if (value === null || typeof value !== 'object') return value
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) {
    if (k === 'leaseUntil' && typeof v === 'number') out[k] = v > Date.now() ? 'live' : 'ended'
    else if (k === 'finishedAt' && typeof v === 'number' && v > 1e11) out[k] = 'store now'
    else out[k] = clockFree(v)
  }
  return out
}

async function apply (store: RunStore, o: Op, startedAt: number): Promise<unknown> {
  switch (o.op) {
    case 'create': return await store.create({ id: o.id, kind: o.kind, title: `T ${o.id}`, owner: o.owner, startedAt, data: o.data }, o.max, o.lease)
    case 'get': return clockFree(await store.get(o.kind, o.id))
    case 'entries': return await store.entries(o.kind, o.id)
    case 'requestCancel': return clockFree(await store.requestCancel(o.kind, o.id))
    case 'recent': return clockFree(await store.recent(o.kind, o.limit))
    case 'update': return await store.update(o.kind, o.id, o.owner, o.patch)
    case 'append': return await store.append(o.kind, o.id, o.owner, o.entry, o.index)
    case 'renew': return await store.renew(o.kind, o.owner, o.ids, o.lease)
    // Same set; the order is the store's own (start order here, lease order in Redis).
    case 'expired': return (await store.expired(o.kind)).sort()
    case 'interrupt': return clockFree(await store.interrupt(o.kind, o.id))
  }
}

t.test('random operation sequences: the same answers as MemoryRunStore, JSON values exactly', async t => {
  await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 40, size: 'max' }), async ops => {
    const memory = new MemoryRunStore()
    const redis = new RedisRunStore({ redis: shared, prefix: fresh() })
    for (const [i, o] of ops.entries()) {
      // Distinct start times: with equal ones the memory store orders by insertion, Redis by id.
      const [m, r] = await Promise.all([memory, redis].map(async s => await apply(s, o, 1000 + i).catch((err: Error) => ({ rejected: err.constructor.name }))))
      deepStrictEqual(r, m, `step ${i} ${JSON.stringify(o)}`)
    }
    for (const k of ['job', 'agent']) {
      deepStrictEqual(clockFree(await redis.recent(k, 100)), clockFree(await memory.recent(k, 100)), `final ${k} runs`)
      deepStrictEqual((await redis.expired(k)).sort(), (await memory.expired(k)).sort(), `final expired ${k} runs`)
      for (const i of ['a', 'b', 'c', 'd', 'e']) deepStrictEqual(await redis.entries(k, i), await memory.entries(k, i), `final transcript of ${k} ${i}`)
    }
  }), { numRuns: 60 })
  t.pass('60 sequences of up to 40 operations agree')
})

t.test('two instances race: exactly one interrupts an expired run; the bound holds', async t => {
  const prefix = fresh()
  const a = new RedisRunStore({ redis: client(), prefix })
  const b = new RedisRunStore({ redis: client(), prefix })
  for (let i = 0; i < 20; i++) await a.create(aRun(`x${i}`, { startedAt: i }), 100, ENDED)
  const pairs = await Promise.all(Array.from({ length: 20 }, async (_, i) => await Promise.all([a.interrupt('job', `x${i}`), b.interrupt('job', `x${i}`)])))
  t.same(pairs.map(p => p.filter(r => r !== undefined).length), Array(20).fill(1), 'one winner for every run')
  const [won] = pairs[0]!.filter(r => r !== undefined)
  t.strictSame(won, { ...aRun('x0', { startedAt: 0 }), status: 'interrupted', leaseUntil: won!.leaseUntil, finishedAt: won!.finishedAt }, 'the winner gets the run its change produced')
  t.ok(won!.finishedAt! > won!.leaseUntil, 'interrupted at Redis\'s now, after the lease')
  t.same(await b.expired('job'), [], 'none left running')

  // A bound of 5 with 2 running: ten creates from two instances at once, three get in.
  const boundPrefix = fresh()
  const c = new RedisRunStore({ redis: client(), prefix: boundPrefix })
  const d = new RedisRunStore({ redis: client(), prefix: boundPrefix })
  for (const r of ['r1', 'r2']) await c.create(aRun(r, { startedAt: 1 }), 5, LONG)
  const results = await Promise.all(Array.from({ length: 10 }, async (_, i) => await (i % 2 === 0 ? c : d).create(aRun(`p${i}`, { startedAt: 10 + i }), 5, LONG)))
  t.equal(results.filter(r => r.created).length, 3, 'exactly the free places are taken')
  t.equal((await d.recent('job', 100)).length, 5, 'never over the bound')

  // Full of finished runs: two creates at once drop two different ones.
  const dropPrefix = fresh()
  const e = new RedisRunStore({ redis: client(), prefix: dropPrefix })
  const f = new RedisRunStore({ redis: client(), prefix: dropPrefix })
  for (let i = 0; i < 3; i++) {
    await e.create(aRun(`f${i}`, { startedAt: i }), 3, LONG)
    await e.update('job', `f${i}`, 'A', { status: 'done', finishedAt: i })
  }
  const both = await Promise.all([e.create(aRun('n1', { startedAt: 10 }), 3, LONG), f.create(aRun('n2', { startedAt: 11 }), 3, LONG)])
  t.ok(both.every(r => r.created), 'both created')
  t.same(both.flatMap(r => r.dropped).sort(), ['f0', 'f1'], 'the two oldest finished went, each once')
})

t.test('a new client (a restarted instance) reads what was stored', async t => {
  const prefix = fresh()
  const first = new RedisRunStore({ redis: client(), prefix })
  const data = { list: [], empty: {}, nested: { s: 'é <b> "q" \u2028', n: [0.1, -3, 1e21, 2 ** 60] }, nil: null }
  await first.create(aRun('kept', { data, startedAt: 5 }), 10, LONG)
  await first.create(aRun('other', { startedAt: 6 }), 10, ENDED)
  t.ok(await first.append('job', 'kept', 'A', { id: 7, ev: { type: 'text', text: 'hi' } }))
  t.ok(await first.append('job', 'kept', 'A', []))
  t.ok(await first.update('job', 'kept', 'A', { status: 'done', finishedAt: 99 }))
  t.ok(await first.update('job', 'other', 'A', { data: undefined }), 'a patch to undefined removes the field')

  const second = new RedisRunStore({ redis: client(), prefix })
  const kept = await second.get('job', 'kept')
  t.strictSame(kept, { ...aRun('kept', { data, startedAt: 5 }), status: 'done', leaseUntil: kept?.leaseUntil, finishedAt: 99 }, 'JSON round-trips exactly: empty arrays stay arrays, numbers as JSON.parse reads them')
  const { data: _gone, ...withoutData } = aRun('other', { startedAt: 6 })
  const other = await second.get('job', 'other')
  t.strictSame(other, { ...withoutData, status: 'running', leaseUntil: other?.leaseUntil })
  t.strictSame(await second.entries('job', 'kept'), [{ id: 7, ev: { type: 'text', text: 'hi' } }, []])
  t.same((await second.recent('job', 5)).map(r => r.id), ['other', 'kept'])
  t.same(await second.expired('job'), ['other'], 'the lease index came along')
})

t.test('options: a client with keyPrefix, a bad prefix or timeout are refused at construction', async t => {
  const code = 'HTMX_SSE_INVALID_OPTION'
  t.throws(() => new RedisRunStore({ redis: client({ keyPrefix: 'x:' }) }), { code, message: /keyPrefix set; use the store option prefix/ })
  t.throws(() => new RedisRunStore({ redis: shared, prefix: '' }), { code, message: /prefix/ })
  t.throws(() => new RedisRunStore({ redis: shared, commandTimeoutMs: 0 }), { code, message: /commandTimeoutMs/ })
  t.throws(() => new RedisRunStore({ redis: {} as Redis }), { code, message: /must be an ioredis client/ })
})

t.test('an existing id and a key of the wrong type are errors of their own, not outages', async t => {
  const prefix = fresh()
  const store = new RedisRunStore({ redis: shared, prefix })
  await store.create(aRun('a'), 10, LONG)
  const exists = await store.create(aRun('a'), 10, LONG).catch((err: Error & { code?: string }) => err)
  t.match(exists, { code: 'HTMX_SSE_INVALID_OPTION', message: /id \(RunStore.create\) is taken by another run/ })
  await shared.set(`${prefix}:k:agent`, 'not a zset')
  await t.rejects(store.create(aRun('b', { kind: 'agent' }), 10, LONG), { code: 'HTMX_SSE_REDIS_ERROR', message: /^RedisRunStore: create run "b" failed: WRONGTYPE/ })
})

t.test('Redis stalled: a write that timed out is not applied when Redis catches up', async t => {
  const store = new RedisRunStore({ redis: client(), prefix: fresh(), commandTimeoutMs: 300 })
  await store.create(aRun('s'), 10, LONG) // a write's reply tells the store Redis's clock
  const admin = client()
  await admin.call('CLIENT', 'PAUSE', '1000', 'ALL')
  await t.rejects(store.update('job', 's', 'A', { status: 'done' }), {
    message: /^run store: redis unavailable: update run "s" not confirmed within 300 ms/,
    code: 'HTMX_SSE_RUN_STORE_UNAVAILABLE'
  })
  await sleep(1000)
  t.equal((await store.get('job', 's'))?.status, 'running', 'Redis refused it: it arrived after its deadline')
})

t.test('Redis down: calls reject within a bound with a clear error; the store works again after', async t => {
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })

  // maxRetriesPerRequest null: ioredis itself would keep these commands forever.
  const store = new RedisRunStore({ redis: client({ maxRetriesPerRequest: null }), prefix: fresh(), commandTimeoutMs: 300 })
  await store.create(aRun('o'), 10, LONG)
  await server.kill()
  for (const [what, call] of [['get', () => store.get('job', 'o')], ['update', () => store.update('job', 'o', 'A', { data: 2 })]] as const) {
    const started = Date.now()
    const outcome = await Promise.race([call().then(() => 'resolved', (err: unknown) => err), sleep(5000).then(() => 'no answer')])
    t.match(outcome, { message: /^run store: redis unavailable: /, code: 'HTMX_SSE_RUN_STORE_UNAVAILABLE' }, `${what}: clear error`)
    t.ok(Date.now() - started < 5000, `${what}: within the bound`)
  }
  await server.start()
  // The reconnect takes ioredis's backoff; no persistence, so Redis came back empty.
  const back = await eventually('create once Redis is back', async () => await store.create(aRun('after', { startedAt: 2 }), 10, LONG))
  t.same(back, { created: true, dropped: [] })
  t.equal(await store.get('job', 'o'), undefined, 'what Redis lost is gone')
  t.ok(await store.update('job', 'after', 'A', { status: 'done', finishedAt: 3 }), 'writes work again')
  t.same(unhandled, [], 'no unhandled rejection')
})
