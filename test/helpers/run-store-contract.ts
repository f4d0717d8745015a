/**
 * What every RunStore does, run against each implementation (memory here,
 * Redis over a real redis-server in run-store-redis.test.ts).
 */
import type { Test } from 'tap'
import type { RunStore, StoredRun } from '../../routes/run-store.js'

export function aRun (id: string, over: Partial<StoredRun> = {}): StoredRun {
  return { id, kind: 'job', title: `Run ${id}`, status: 'running', owner: 'A', leaseUntil: 10_000, startedAt: 1_000, data: { n: 1 }, ...over }
}

export function runStoreContract (t: Test, make: () => Promise<RunStore>): void {
  t.test('create, get, recent (newest first, per kind)', async t => {
    const store = await make()
    t.same(await store.create(aRun('a', { startedAt: 1 }), 10), { created: true, dropped: [] })
    await store.create(aRun('b', { startedAt: 2 }), 10)
    await store.create(aRun('x', { kind: 'agent', startedAt: 3 }), 10)
    t.same(await store.get('a'), aRun('a', { startedAt: 1 }), 'stored as given')
    t.equal(await store.get('nope'), undefined, 'unknown id')
    t.same((await store.recent('job', 10)).map(r => r.id), ['b', 'a'])
    t.same((await store.recent('job', 1)).map(r => r.id), ['b'], 'limit')
    t.same((await store.recent('agent', 10)).map(r => r.id), ['x'])
    await t.rejects(store.create(aRun('a'), 10), 'an existing id is refused')
  })

  t.test('returned runs are copies', async t => {
    const store = await make()
    const run = aRun('a', { data: { list: [1] } })
    await store.create(run, 10)
    ;(run.data as { list: number[] }).list.push(2)
    const got = await store.get('a')
    t.same(got?.data, { list: [1] }, 'changing the input changes nothing stored')
  })

  t.test('bounded per kind: oldest finished dropped first, never a running one', async t => {
    const store = await make()
    await store.create(aRun('r1', { startedAt: 1 }), 3)
    await store.create(aRun('f1', { startedAt: 2 }), 3)
    await store.create(aRun('f2', { startedAt: 3 }), 3)
    t.ok(await store.update('f1', 'A', { status: 'done', finishedAt: 5 }))
    t.ok(await store.update('f2', 'A', { status: 'failed', finishedAt: 6 }))
    await store.append('f1', 'A', { ignored: 'finished' })
    await store.create(aRun('other', { kind: 'agent', startedAt: 4 }), 1)
    const res = await store.create(aRun('n1', { startedAt: 7 }), 3)
    t.same(res, { created: true, dropped: ['f1'] }, 'the oldest finished went')
    t.equal(await store.get('f1'), undefined)
    t.same(await store.entries('f1'), [], 'with its transcript')
    t.ok(await store.get('other'), 'other kinds are not counted')
    t.ok(await store.update('n1', 'A', { status: 'done', finishedAt: 8 }))
    t.same(await store.create(aRun('n2', { startedAt: 9 }), 3), { created: true, dropped: ['f2'] })
    t.ok(await store.update('n2', 'A', { status: 'running' }))
    t.same(await store.create(aRun('n3', { startedAt: 10 }), 3), { created: true, dropped: ['n1'] })
    t.same(await store.create(aRun('n4', { startedAt: 11 }), 3), { created: false, dropped: [] }, 'full of running runs: refused')
    t.equal(await store.get('n4'), undefined)
    t.same((await store.recent('job', 10)).map(r => r.id), ['n3', 'n2', 'r1'])
  })

  t.test('update and append: only the owner, only while running', async t => {
    const store = await make()
    await store.create(aRun('a'), 10)
    t.ok(await store.update('a', 'A', { data: { n: 2 } }))
    t.same((await store.get('a'))?.data, { n: 2 })
    t.notOk(await store.update('a', 'B', { data: { n: 3 } }), 'another owner')
    t.notOk(await store.append('a', 'B', 'x'), 'another owner appends nothing')
    t.ok(await store.append('a', 'A', { id: 1, ev: { type: 'text', text: 'hi' } }))
    t.ok(await store.append('a', 'A', 'second'))
    t.same(await store.entries('a'), [{ id: 1, ev: { type: 'text', text: 'hi' } }, 'second'], 'in order')
    t.ok(await store.update('a', 'A', { status: 'done', finishedAt: 20 }))
    const done = await store.get('a')
    t.equal(done?.status, 'done')
    t.equal(done?.finishedAt, 20)
    t.same(done?.data, { n: 2 }, 'a patch keeps what it does not name')
    t.notOk(await store.update('a', 'A', { data: { n: 9 } }), 'a finished run is not written')
    t.notOk(await store.append('a', 'A', 'late'))
    t.equal((await store.entries('a')).length, 2)
    t.notOk(await store.update('nope', 'A', {}), 'unknown run')
    t.same(await store.entries('nope'), [])
  })

  t.test('leases: renew, expiry, exactly one interrupt', async t => {
    const store = await make()
    await store.create(aRun('a', { leaseUntil: 100 }), 10)
    await store.create(aRun('b', { leaseUntil: 100, owner: 'B' }), 10)
    await store.create(aRun('c', { leaseUntil: 100, kind: 'agent' }), 10)
    t.same((await store.expired('job', 50)).sort(), [], 'nothing expired yet')
    t.same((await store.expired('job', 150)).sort(), ['a', 'b'])
    t.same(await store.renew('A', ['a', 'b', 'nope'], 500), [], 'no cancel requests')
    t.equal((await store.get('a'))?.leaseUntil, 500, 'renewed')
    t.equal((await store.get('b'))?.leaseUntil, 100, 'not another owner\'s run')
    t.same(await store.expired('job', 150), ['b'])
    t.equal(await store.interrupt('a', 150), undefined, 'a live lease is not interrupted')
    const [first, second] = await Promise.all([store.interrupt('b', 150), store.interrupt('b', 150)])
    t.ok((first === undefined) !== (second === undefined), 'exactly one caller wins')
    const won = first ?? second
    t.equal(won?.status, 'interrupted')
    t.equal(won?.finishedAt, 150)
    t.equal((await store.get('b'))?.status, 'interrupted')
    t.same(await store.expired('job', 1e12), ['a'], 'an interrupted run is not expired again')
    t.notOk(await store.update('b', 'B', { data: { late: true } }), 'its owner, back from the dead, writes nothing')
    t.same(await store.renew('B', ['b'], 1e12), [])
    t.equal((await store.get('b'))?.status, 'interrupted')
    t.same(await store.expired('agent', 1e12), ['c'], 'per kind')
  })

  t.test('cancel requests reach the owner through renew', async t => {
    const store = await make()
    await store.create(aRun('a'), 10)
    t.equal(await store.requestCancel('nope'), undefined)
    const asked = await store.requestCancel('a')
    t.equal(asked?.status, 'running')
    t.equal(asked?.cancelRequested, true)
    t.same(await store.renew('A', ['a'], 20_000), ['a'])
    t.ok(await store.update('a', 'A', { status: 'cancelled', finishedAt: 3 }))
    t.same(await store.renew('A', ['a'], 30_000), [], 'finished: nothing to cancel')
    const after = await store.requestCancel('a')
    t.equal(after?.status, 'cancelled', 'a finished run is returned as it is')
  })
}
