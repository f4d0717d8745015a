/**
 * FlushScheduler: a large fan-out is flushed in slices that yield to I/O, no
 * mark is lost or reordered across slices, and a long cycle rests before the
 * next one (maxWriteShare) so that its writes carry more events each.
 */
import t from 'tap'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { FlushScheduler, REST_AFTER_MS } from '../plugin/scheduler.js'

/** A stream whose flush costs `spinUs` of CPU, like a socket write. */
function stream (log: number[], id: number, spinUs: number): { flush: () => void } {
  return {
    flush: () => {
      const until = performance.now() + spinUs / 1000
      while (performance.now() < until) { /* a write's worth of work */ }
      log.push(id)
    }
  }
}

t.test('a long drain yields between slices; every stream is flushed once, in mark order', async t => {
  const scheduler = new FlushScheduler()
  const log: number[] = []
  let slices = 0
  scheduler.afterFlush(() => { slices++ })
  const streams = Array.from({ length: 3000 }, (_, i) => stream(log, i, 20))
  for (const s of streams) scheduler.mark(s)
  await nextTurn()
  // 3000 × 20 µs is 60 ms of work: the first slice stops after about 4 ms.
  t.ok(log.length > 0 && log.length < 3000, `first slice flushed part of the list (${log.length})`)
  // A stream marked again while the drain is under way is flushed again, after the others.
  const again = stream(log, 0, 0)
  scheduler.mark(again)
  while (log.length < 3001) await nextTurn()
  t.same(log.slice(0, 3000), streams.map((_, i) => i), 'mark order')
  t.equal(log[3000], 0, 'the re-marked stream last')
  t.ok(slices > 1, `several slices (${slices})`)
  await nextTurn()
  await nextTurn()
  t.equal(log.length, 3001, 'nothing flushed twice')
})

t.test('a short drain is one slice in one turn', async t => {
  const scheduler = new FlushScheduler()
  const log: number[] = []
  let slices = 0
  scheduler.afterFlush(() => { slices++ })
  for (let i = 0; i < 100; i++) scheduler.mark(stream(log, i, 0))
  await nextTurn()
  t.equal(log.length, 100)
  t.equal(slices, 1)
})

t.test('streams re-marked while a drain is under way, round after round: each mark flushed exactly once', async t => {
  const scheduler = new FlushScheduler()
  const log: number[] = []
  const streams = Array.from({ length: 2000 }, (_, i) => stream(log, i, 5))
  for (const s of streams) scheduler.mark(s)
  // Re-mark all of them as soon as a round is flushed, 10 rounds.
  let rounds = 0
  const remark = (): void => { for (const s of streams) scheduler.mark(s) }
  while (rounds < 10) {
    await nextTurn()
    if (log.length >= (rounds + 1) * 2000) { rounds++; remark() }
  }
  while (log.length < 22_000) await nextTurn()
  t.equal(log.length, 22_000, 'every mark flushed exactly once')
})

t.test('while a publish is in flight, slices are short: its reply is not held behind them', async t => {
  const slicesOf = async (inFlight: boolean): Promise<number> => {
    const scheduler = new FlushScheduler()
    let slices = 0
    scheduler.afterFlush(() => { slices++ })
    const done = inFlight ? scheduler.publishing() : undefined
    // 1000 × 40 µs = 40 ms of writes.
    await longCycle(scheduler, 1000, 40)
    done?.()
    done?.() // twice is once
    return slices
  }
  const held = await slicesOf(true)
  const free = await slicesOf(false)
  t.ok(held >= 40, `in flight: ${held} slices for 40 ms of writes (quarter-millisecond slices)`)
  t.ok(free <= 5, `nothing in flight: ${free} slices (16 ms slices)`)
})

/** Marks `n` streams, each costing `spinUs`, and waits until they are all flushed: one long cycle. */
async function longCycle (scheduler: FlushScheduler, n: number, spinUs: number): Promise<void> {
  const log: number[] = []
  for (let i = 0; i < n; i++) scheduler.mark(stream(log, i, spinUs))
  while (log.length < n) await nextTurn()
}

/** Like a Session: marks itself on its first pending frame, writes everything pending in one write. */
class Writer {
  pending: number[] = []
  readonly writes: number[][] = []
  constructor (readonly scheduler: FlushScheduler) {}
  enqueue (frame: number): void {
    if (this.pending.length === 0) this.scheduler.mark(this)
    this.pending.push(frame)
  }

  flush (): void {
    if (this.pending.length > 0) this.writes.push(this.pending)
    this.pending = []
  }
}

t.test('a cycle longer than REST_AFTER_MS rests: frames queued meanwhile go out together, one write per stream', async t => {
  // A tiny share makes the rest seconds long, so nothing below races its timer.
  const scheduler = new FlushScheduler({ maxWriteShare: 0.001 })
  await longCycle(scheduler, 2 * REST_AFTER_MS, 1000) // 2 × REST_AFTER_MS ms of writes
  const a = new Writer(scheduler)
  const b = new Writer(scheduler)
  for (let frame = 0; frame < 5; frame++) {
    a.enqueue(frame)
    b.enqueue(frame)
    await nextTurn()
    await nextTurn()
  }
  t.ok(scheduler.resting, 'resting after the long cycle')
  t.same([a.writes, b.writes], [[], []], 'nothing written during the rest')
  scheduler.endRest()
  while (b.writes.length === 0) await nextTurn()
  t.same([a.writes, b.writes], [[[0, 1, 2, 3, 4]], [[0, 1, 2, 3, 4]]], 'one write each, with every frame in order')
  t.notOk(scheduler.resting)
})

t.test('nextTurn (a producer pacing itself) ends a rest', async t => {
  const scheduler = new FlushScheduler({ maxWriteShare: 0.001 })
  await longCycle(scheduler, 2 * REST_AFTER_MS, 1000)
  const w = new Writer(scheduler)
  w.enqueue(7)
  await nextTurn()
  t.ok(scheduler.resting)
  t.same(w.writes, [])
  await scheduler.nextTurn()
  await nextTurn()
  t.same(w.writes, [[7]], 'written without waiting for the rest')
})

t.test('short cycles never rest, and maxWriteShare 1 never rests', async t => {
  const rests = async (scheduler: FlushScheduler, n: number, spinUs: number): Promise<boolean> => {
    await longCycle(scheduler, n, spinUs)
    const w = new Writer(scheduler)
    w.enqueue(1)
    const resting = scheduler.resting
    await nextTurn()
    await nextTurn()
    return resting || w.writes.length === 0
  }
  // Half of REST_AFTER_MS of writes, with the smallest share.
  t.notOk(await rests(new FlushScheduler({ maxWriteShare: 0.001 }), REST_AFTER_MS / 2, 1000), 'a short cycle: no rest')
  t.notOk(await rests(new FlushScheduler({ maxWriteShare: 1 }), 2 * REST_AFTER_MS, 1000), 'share 1: no rest after a long cycle')
})

t.test('the rest lasts until the writes took at most their share of the time since the cycle began', async t => {
  const scheduler = new FlushScheduler({ maxWriteShare: 0.5 })
  const work = 2 * REST_AFTER_MS // ms of writes, at least
  const began = performance.now()
  await longCycle(scheduler, work, 1000)
  const w = new Writer(scheduler)
  w.enqueue(1)
  while (w.writes.length === 0) await new Promise(resolve => setTimeout(resolve, 1))
  // A lower bound only: timers never fire early, and a busy machine only makes it later.
  t.ok(performance.now() - began >= 2 * work, `next write ${(performance.now() - began).toFixed(0)} ms after the cycle began (≥ ${2 * work})`)
})

t.test('fan-out work outside the flush counts against the share: during a rest it extends the rest', async t => {
  const scheduler = new FlushScheduler({ maxWriteShare: 0.5 })
  const work = 2 * REST_AFTER_MS // ms of writes, at least
  const began = performance.now()
  await longCycle(scheduler, work, 1000)
  // The hub queueing frames for 20 ms more, during the rest: 40 ms more rest at share 0.5.
  scheduler.fanoutWork(20)
  const w = new Writer(scheduler)
  w.enqueue(1)
  while (w.writes.length === 0) await new Promise(resolve => setTimeout(resolve, 1))
  t.ok(performance.now() - began >= 2 * (work + 20), `next write ${(performance.now() - began).toFixed(0)} ms after the cycle began (≥ ${2 * (work + 20)})`)
})
