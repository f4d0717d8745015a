/**
 * FlushScheduler: a large fan-out is flushed in slices that yield to I/O, no
 * mark is lost or reordered across slices, and a long pass rests before the
 * next one only when the loop is saturated (restAboveUtilization), so that
 * its writes carry more events each; a loop with idle time never rests.
 * Counts only: rests are counted, never timed.
 */
import t, { type Test } from 'tap'
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises'
import { FlushScheduler, REST_AFTER_MS, UTILIZATION_WINDOW_MS } from '../plugin/scheduler.js'

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
  scheduler.onSlice(() => { slices++ })
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
  scheduler.onSlice(() => { slices++ })
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
    scheduler.onSlice(() => { slices++ })
    // 1000 × 40 µs = 40 ms of writes, under way while a publish awaits its transport (or not).
    let reply = (): void => {}
    const inFlightPublish = inFlight ? scheduler.publish(async () => await new Promise<void>(resolve => { reply = resolve })) : undefined
    await longCycle(scheduler, 1000, 40)
    reply()
    await inFlightPublish
    return slices
  }
  const held = await slicesOf(true)
  const free = await slicesOf(false)
  t.ok(held >= 40, `in flight: ${held} slices for 40 ms of writes (quarter-millisecond slices)`)
  // Slices are wall time: a busy machine adds some, never a factor of 64.
  t.ok(free * 4 <= held, `nothing in flight: ${free} slices (16 ms slices)`)
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

/**
 * A saturated loop: `n` streams costing `spinUs` each, re-marked as soon as
 * they are written (a producer faster than the writes), for `passes` passes,
 * with no idle time in between. Returns the rests counted along the way.
 */
async function saturate (scheduler: FlushScheduler, passes: number, n: number, spinUs: number): Promise<number> {
  const log: number[] = []
  const streams = Array.from({ length: n }, (_, i) => stream(log, i, spinUs))
  const before = scheduler.rests
  for (let pass = 0; pass < passes; pass++) {
    for (const s of streams) scheduler.mark(s)
    // Between passes, and during any rest, the loop is kept busy: nothing idles it.
    for (let turns = 0; log.length < (pass + 1) * n && turns < 100_000; turns++) {
      spinTurn(2)
      await nextTurn()
    }
  }
  return scheduler.rests - before
}

/** Keeps the loop busy for `ms` (other work on the loop; callers then let one turn pass, so the loop never idles). */
function spinTurn (ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until) { /* other work on the loop */ }
}

/** Marks `n` streams costing `spinUs` each, after the loop idled for two windows: one long pass on a loop with spare time. */
async function lonePass (scheduler: FlushScheduler, n: number, spinUs: number): Promise<void> {
  await sleep(2 * UTILIZATION_WINDOW_MS + 50)
  await longCycle(scheduler, n, spinUs)
}

t.test('a long pass on a loop with spare time never rests', async t => {
  const scheduler = new FlushScheduler()
  for (let i = 0; i < 3; i++) {
    // 2 × REST_AFTER_MS ms of writes, then idle.
    await lonePass(scheduler, 2 * REST_AFTER_MS, 1000)
    t.notOk(scheduler.resting, `pass ${i + 1}: not resting after it`)
  }
  t.equal(scheduler.rests, 0, 'no rest at all')
})

t.test('a saturated loop rests; restAboveUtilization 1 never does', async t => {
  // Passes of 2 × REST_AFTER_MS ms of writes, back to back, for more than two utilization windows.
  const passes = Math.ceil((3 * UTILIZATION_WINDOW_MS) / (2 * REST_AFTER_MS))
  const rested = await saturate(new FlushScheduler({ restAboveUtilization: 0.5 }), passes, 2 * REST_AFTER_MS, 1000)
  t.ok(rested >= 1, `rests while saturated: ${rested} in ${passes} passes`)
  t.equal(await saturate(new FlushScheduler({ restAboveUtilization: 1 }), passes, 2 * REST_AFTER_MS, 1000), 0, 'never with 1')
})

t.test('short passes never rest, even on a saturated loop', async t => {
  const scheduler = new FlushScheduler({ restAboveUtilization: 0.1 })
  // An eighth of REST_AFTER_MS of writes per pass, back to back.
  t.equal(await saturate(scheduler, 100, REST_AFTER_MS / 8, 1000), 0)
})

/** A saturated loop that has just begun a rest (with a small limit, so the rest is long enough to act in). */
async function resting (t: Test): Promise<FlushScheduler> {
  const scheduler = new FlushScheduler({ restAboveUtilization: 0.2 })
  const log: number[] = []
  const streams = Array.from({ length: 2 * REST_AFTER_MS }, (_, i) => stream(log, i, 1000))
  for (let pass = 0; pass < 200 && !scheduler.resting; pass++) {
    for (const s of streams) scheduler.mark(s)
    for (let turns = 0; log.length < (pass + 1) * streams.length && !scheduler.resting && turns < 100_000; turns++) {
      spinTurn(2)
      await nextTurn()
    }
  }
  t.ok(scheduler.resting, 'a rest began')
  return scheduler
}

t.test('frames queued during a rest go out together once it ends: one write per stream, in order', async t => {
  const scheduler = await resting(t)
  const a = new Writer(scheduler)
  const b = new Writer(scheduler)
  for (let frame = 0; frame < 5; frame++) {
    a.enqueue(frame)
    b.enqueue(frame)
  }
  t.same([a.writes, b.writes], [[], []], 'nothing written during the rest')
  for (let i = 0; i < 10_000 && b.writes.length === 0; i++) await sleep(1)
  t.same([a.writes, b.writes], [[[0, 1, 2, 3, 4]], [[0, 1, 2, 3, 4]]], 'one write each, with every frame in order')
})

t.test('a producer faster than the writes ends a rest: 16 frames, or a quarter of the pace bound, fanned out', async t => {
  const frames = await resting(t)
  for (let i = 0; i < 15; i++) frames.fannedOut(10)
  t.ok(frames.resting, '15 small frames waiting: still resting')
  frames.fannedOut(10)
  t.notOk(frames.resting, 'the 16th ends the rest')

  const bytes = await resting(t)
  const w = new Writer(bytes)
  w.enqueue(7)
  // The pace bound is a quarter of maxBufferedBytes (1 MiB by default); a rest ends at a quarter of that.
  bytes.fannedOut(64 * 1024 - 1)
  t.ok(bytes.resting, 'just under 64 KiB waiting: still resting')
  bytes.fannedOut(1)
  t.notOk(bytes.resting, '64 KiB end it')
  for (let i = 0; i < 10_000 && w.writes.length === 0; i++) await nextTurn()
  t.same(w.writes, [[7]], 'written once the rest ended')
})

t.test('a producer publishing in a tight loop yields to I/O once a turn\'s fan-out passes the pace bound', async t => {
  const scheduler = new FlushScheduler({ maxBufferedBytes: 1 << 20 })
  let turns = 0
  let counting = true
  const count = (): void => { if (counting) { turns++; setImmediate(count) } }
  setImmediate(count)
  // 1 KiB per publish: no yield until a quarter of 1 MiB was fanned out in this turn.
  for (let i = 0; i < 255; i++) await scheduler.publish(async () => { scheduler.fannedOut(1024) })
  t.equal(turns, 0, '255 KiB in one turn: the producer never yielded')
  await scheduler.publish(async () => { scheduler.fannedOut(2 * 1024) })
  counting = false
  t.ok(turns >= 1, 'past 256 KiB it yields to I/O before its publish resolves')
})
