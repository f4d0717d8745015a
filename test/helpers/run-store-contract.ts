/**
 * What every RunStore does, run against each implementation (memory here,
 * Redis over a real redis-server in run-store-redis.test.ts).
 */
import type { Test } from 'tap'
import type { NewRun, RunStore, StoredRun } from '../../runs/store.js'

export function aRun (id: string, over: Partial<NewRun> = {}): NewRun {
  return { id, kind: 'job', title: `Run ${id}`, owner: 'A', startedAt: 1_000, data: { n: 1 }, ...over }
}

/** A lease that never ends during a test, and one that ended before it was granted (no waiting on a clock). */
export const LONG = 3_600_000
export const ENDED = -60_000

/** `run` as the store shows it once created: running, its lease in the store's clock. */
function asStored (run: NewRun): Omit<StoredRun, 'leaseUntil'> {
  return { ...run, status: 'running' }
}

export function runStoreContract (t: Test, make: () => Promise<RunStore>): void {
  t.test('create, get, recent (newest first, per kind)', async t => {
    const store = await make()
    t.same(await store.create(aRun('a', { startedAt: 1 }), 10, LONG), { created: true, dropped: [] })
    await store.create(aRun('b', { startedAt: 2 }), 10, LONG)
    await store.create(aRun('x', { kind: 'agent', startedAt: 3 }), 10, LONG)
    const a = await store.get('job', 'a')
    t.match(a, asStored(aRun('a', { startedAt: 1 })), 'stored as given, running')
    t.ok(a !== undefined && a.leaseUntil > 0 && Number.isFinite(a.leaseUntil), 'its lease end, in the store\'s clock')
    t.equal(await store.get('job', 'nope'), undefined, 'unknown id')
    t.same((await store.recent('job', 10)).map(r => r.id), ['b', 'a'])
    t.same((await store.recent('job', 1)).map(r => r.id), ['b'], 'limit')
    t.same((await store.recent('agent', 10)).map(r => r.id), ['x'])
    await t.rejects(store.create(aRun('a'), 10, LONG), 'an existing id is refused')
  })

  t.test('returned runs are copies', async t => {
    const store = await make()
    const run = aRun('a', { data: { list: [1] } })
    await store.create(run, 10, LONG)
    ;(run.data as { list: number[] }).list.push(2)
    const got = await store.get('job', 'a')
    t.same(got?.data, { list: [1] }, 'changing the input changes nothing stored')
  })

  t.test('bounded per kind: oldest finished dropped first, never a running one', async t => {
    const store = await make()
    await store.create(aRun('r1', { startedAt: 1 }), 3, LONG)
    await store.create(aRun('f1', { startedAt: 2 }), 3, LONG)
    await store.create(aRun('f2', { startedAt: 3 }), 3, LONG)
    t.ok(await store.update('job', 'f1', 'A', { status: 'done', finishedAt: 5 }))
    t.ok(await store.update('job', 'f2', 'A', { status: 'failed', finishedAt: 6 }))
    await store.append('job', 'f1', 'A', { ignored: 'finished' })
    await store.create(aRun('other', { kind: 'agent', startedAt: 4 }), 1, LONG)
    const res = await store.create(aRun('n1', { startedAt: 7 }), 3, LONG)
    t.same(res, { created: true, dropped: ['f1'] }, 'the oldest finished went')
    t.equal(await store.get('job', 'f1'), undefined)
    t.same(await store.entries('job', 'f1'), [], 'with its transcript')
    t.ok(await store.get('agent', 'other'), 'other kinds are not counted')
    t.ok(await store.update('job', 'n1', 'A', { status: 'done', finishedAt: 8 }))
    t.same(await store.create(aRun('n2', { startedAt: 9 }), 3, LONG), { created: true, dropped: ['f2'] })
    t.ok(await store.update('job', 'n2', 'A', { status: 'running' }))
    t.same(await store.create(aRun('n3', { startedAt: 10 }), 3, LONG), { created: true, dropped: ['n1'] })
    t.same(await store.create(aRun('n4', { startedAt: 11 }), 3, LONG), { created: false, dropped: [] }, 'full of running runs: refused')
    t.equal(await store.get('job', 'n4'), undefined)
    t.same((await store.recent('job', 10)).map(r => r.id), ['n3', 'n2', 'r1'])
  })

  t.test('update and append: only the owner, only while running', async t => {
    const store = await make()
    await store.create(aRun('a'), 10, LONG)
    t.ok(await store.update('job', 'a', 'A', { data: { n: 2 } }))
    t.same((await store.get('job', 'a'))?.data, { n: 2 })
    t.notOk(await store.update('job', 'a', 'B', { data: { n: 3 } }), 'another owner')
    t.notOk(await store.append('job', 'a', 'B', 'x'), 'another owner appends nothing')
    t.ok(await store.append('job', 'a', 'A', { id: 1, ev: { type: 'text', text: 'hi' } }))
    t.ok(await store.append('job', 'a', 'A', 'second'))
    t.same(await store.entries('job', 'a'), [{ id: 1, ev: { type: 'text', text: 'hi' } }, 'second'], 'in order')
    t.ok(await store.update('job', 'a', 'A', { status: 'done', finishedAt: 20 }))
    const done = await store.get('job', 'a')
    t.equal(done?.status, 'done')
    t.equal(done?.finishedAt, 20)
    t.same(done?.data, { n: 2 }, 'a patch keeps what it does not name')
    t.notOk(await store.update('job', 'a', 'A', { data: { n: 9 } }), 'a finished run is not written')
    t.notOk(await store.append('job', 'a', 'A', 'late'))
    t.equal((await store.entries('job', 'a')).length, 2)
    t.notOk(await store.update('job', 'nope', 'A', {}), 'unknown run')
    t.same(await store.entries('job', 'nope'), [])
  })

  t.test('append with an index is safe to retry: an attempt that landed is not doubled', async t => {
    const store = await make()
    await store.create(aRun('a'), 10, LONG)
    t.ok(await store.append('job', 'a', 'A', 'first', 0))
    t.ok(await store.append('job', 'a', 'A', 'first', 0), 'the retry of entry 0 answers true…')
    t.ok(await store.append('job', 'a', 'A', 'second', 1))
    t.same(await store.entries('job', 'a'), ['first', 'second'], '…without writing it twice')
    t.notOk(await store.append('job', 'a', 'B', 'x', 5), 'still only the owner')
  })

  t.test('leases: durations from the store\'s now, expiry by its clock, exactly one interrupt', async t => {
    const store = await make()
    await store.create(aRun('a'), 10, ENDED)
    await store.create(aRun('b', { owner: 'B' }), 10, ENDED)
    await store.create(aRun('c', { kind: 'agent' }), 10, ENDED)
    await store.create(aRun('live'), 10, LONG)
    t.same((await store.expired('job')).sort(), ['a', 'b'], 'ended leases, not the live one')
    t.same(await store.renew('job', 'A', ['a', 'b', 'live', 'nope'], LONG), [], 'no cancel requests')
    const a = await store.get('job', 'a')
    t.ok(a !== undefined && a.leaseUntil > (await store.get('job', 'b'))!.leaseUntil + LONG / 2, 'renewed from now')
    t.same(await store.expired('job'), ['b'], 'not another owner\'s run')
    t.equal(await store.interrupt('job', 'a'), undefined, 'a live lease is not interrupted')
    t.equal(await store.interrupt('job', 'live'), undefined)
    t.equal(await store.interrupt('agent', 'b'), undefined, 'nor a run named with another kind')
    const [first, second] = await Promise.all([store.interrupt('job', 'b'), store.interrupt('job', 'b')])
    t.ok((first === undefined) !== (second === undefined), 'exactly one caller wins')
    const won = first ?? second
    t.equal(won?.status, 'interrupted')
    t.ok(won?.finishedAt !== undefined && won.finishedAt > won.leaseUntil, 'at the store\'s now, after its lease ended')
    t.equal((await store.get('job', 'b'))?.status, 'interrupted')
    t.same(await store.renew('job', 'A', ['a'], ENDED), [], 'a renewal can also shorten a lease')
    t.same(await store.expired('job'), ['a'], 'an interrupted run is not expired again')
    t.notOk(await store.update('job', 'b', 'B', { data: { late: true } }), 'its owner, back from the dead, writes nothing')
    t.same(await store.renew('job', 'B', ['b'], LONG), [])
    t.equal((await store.get('job', 'b'))?.status, 'interrupted')
    t.same(await store.expired('agent'), ['c'], 'per kind')
  })

  t.test('cancel requests reach the owner through renew; exactly one request is the first', async t => {
    const store = await make()
    await store.create(aRun('a'), 10, LONG)
    t.equal(await store.requestCancel('job', 'nope'), undefined)
    const [one, two] = await Promise.all([store.requestCancel('job', 'a'), store.requestCancel('job', 'a')])
    t.equal(one?.run.status, 'running')
    t.equal(one?.run.cancelRequested, true)
    t.same([one?.first, two?.first].sort(), [false, true], 'one of two concurrent requests set it')
    t.same(await store.renew('job', 'A', ['a'], LONG), ['a'])
    t.ok(await store.update('job', 'a', 'A', { status: 'cancelled', finishedAt: 3 }))
    t.same(await store.renew('job', 'A', ['a'], LONG), [], 'finished: nothing to cancel')
    const after = await store.requestCancel('job', 'a')
    t.equal(after?.run.status, 'cancelled', 'a finished run is returned as it is')
    t.equal(after?.first, false)
  })

  t.test('every by-id call checks the kind: a run of another kind is unknown and unchanged', async t => {
    const store = await make()
    await store.create(aRun('x', { kind: 'agent' }), 10, ENDED)
    await store.append('agent', 'x', 'A', 'entry')
    t.equal(await store.requestCancel('job', 'x'), undefined, 'a job cancel does not find an agent run')
    t.equal(await store.get('job', 'x'), undefined)
    t.same(await store.entries('job', 'x'), [])
    t.notOk(await store.update('job', 'x', 'A', { status: 'done' }))
    t.notOk(await store.append('job', 'x', 'A', 'other'))
    t.same(await store.renew('job', 'A', ['x'], LONG), [])
    t.equal(await store.interrupt('job', 'x'), undefined)
    const x = await store.get('agent', 'x')
    t.equal(x?.status, 'running', 'still running')
    t.equal(x?.cancelRequested, undefined, 'with no cancel request')
    t.same(await store.entries('agent', 'x'), ['entry'])
    t.same(await store.expired('agent'), ['x'], 'its lease was not renewed')
    t.same(await store.renew('agent', 'A', ['x'], LONG), [], 'named with its own kind, it is found')
    t.same(await store.expired('agent'), [])
  })
}
