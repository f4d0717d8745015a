/**
 * FlushScheduler: a large fan-out is flushed in slices that yield to I/O, and
 * no mark is lost or reordered across slices.
 */
import t from 'tap'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { FlushScheduler, HOLD_MS } from '../plugin/scheduler.js'

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

t.test('hold: frames wait for a publish in flight, go out on release, and never wait past HOLD_MS for one that does not come back', async t => {
  const scheduler = new FlushScheduler()
  const log: number[] = []
  const release = scheduler.hold()
  scheduler.mark(stream(log, 1, 0))
  await nextTurn()
  await nextTurn()
  t.same(log, [], 'held while the publish is in flight')
  release()
  release() // twice is once
  await nextTurn()
  t.same(log, [1], 'out on release')

  // Nothing held: a lone frame goes out in the next turn.
  scheduler.mark(stream(log, 2, 0))
  await nextTurn()
  t.same(log, [1, 2])

  // A hold that is never released delays frames, but not for good.
  const stuck = scheduler.hold()
  scheduler.mark(stream(log, 3, 0))
  await nextTurn()
  t.same(log, [1, 2], 'held')
  await new Promise(resolve => setTimeout(resolve, HOLD_MS + 20))
  t.same(log, [1, 2, 3], 'out after HOLD_MS although still held')
  stuck()
})
