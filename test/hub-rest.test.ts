/**
 * The hub and the scheduler's rest after a long pass on a saturated loop
 * (restAboveUtilization): frames published during a rest are written
 * together, in order, one write per socket; a producer faster than the writes
 * ends the rest once 16 frames wait. The connections are in-process fakes
 * whose writes cost CPU like a socket's, so a pass over a few thousand of
 * them is long without opening that many sockets. (A loop with spare time
 * never rests: test/pacing-spare-loop.test.ts, over real sockets.) Counts
 * only, never times.
 */
import t, { type Test } from 'tap'
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import type { Connection } from '../plugin/connection.js'
import { createCounters } from '../plugin/counters.js'
import type { Frame } from '../plugin/encode.js'
import { SseHub } from '../plugin/hub.js'
import { FlushScheduler, Heartbeat, REST_AFTER_MS } from '../plugin/scheduler.js'
import { Session } from '../plugin/session.js'
import { MemoryTransport } from '../plugin/transports/memory.js'

const log = { warn () {}, error () {}, info () {}, debug () {} } as unknown as FastifyBaseLogger

/** A connection whose write costs `spinUs` of CPU and records what it was given. */
class FakeConnection implements Connection {
  readonly writes: string[] = []
  constructor (readonly spinUs: number) {}
  write (frame: Frame): void {
    const until = performance.now() + this.spinUs / 1000
    while (performance.now() < until) { /* a socket write's worth of work */ }
    this.writes.push(frame.bytes.toString('utf8'))
  }

  readonly buffered = 0
  onDrain (fn: () => void): void { fn() }
  end (): void {}
  endAndClose (): void {}
  destroy (): void {}
  async closed (): Promise<void> {}
}

async function setup (subscribers: number, spinUs: number, restAboveUtilization: number): Promise<{ hub: SseHub, scheduler: FlushScheduler, conns: FakeConnection[] }> {
  const scheduler = new FlushScheduler({ restAboveUtilization })
  const counters = createCounters()
  const maxBufferedBytes = 1 << 20
  const hub = new SseHub({ transport: new MemoryTransport({ history: 100 }), scheduler, log, maxBufferedBytes, counters })
  await hub.start()
  const ctx = { log, maxBufferedBytes, scheduler, heartbeat: new Heartbeat(false), joiner: hub.joiner, counters, jitteredRetry: () => 1000 }
  const conns: FakeConnection[] = []
  for (let i = 0; i < subscribers; i++) {
    const session = new Session(ctx)
    const conn = new FakeConnection(spinUs)
    session.attach(conn)
    conns.push(conn)
    await hub.subscribe(session, ['t'], undefined)
  }
  return { hub, scheduler, conns }
}

/** The `data:` values of every event in a write. */
const dataOf = (write: string): string[] => [...write.matchAll(/^data: (.*)$/gm)].map(m => m[1]!)

/** The `e…` events of a connection's last write (the warm-up's `w…` left out). */
const newest = (c: FakeConnection): string[] => dataOf(c.writes.at(-1)!).filter(d => d.startsWith('e'))

/** Keeps the loop busy for `ms`: other work on a saturated loop. */
function spin (ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until) { /* other work */ }
}

/**
 * 2000 subscribers whose writes take 2 × REST_AFTER_MS per pass, and a producer
 * publishing faster than that on a loop kept busy in between: saturated, so a
 * long pass is followed by a rest (a long one, with this small limit).
 */
async function resting (t: Test): Promise<Awaited<ReturnType<typeof setup>>> {
  const n = 2000
  const setupDone = await setup(n, (2 * REST_AFTER_MS * 1000) / n, 0.2)
  const { hub, scheduler } = setupDone
  t.teardown(() => hub.close())
  for (let i = 0; i < 1000 && !scheduler.resting; i++) {
    await hub.publish('t', { data: `w${i}` })
    spin(5)
    await nextTurn()
  }
  t.ok(scheduler.resting, 'the saturated loop rests after a long pass')
  return setupDone
}

t.test('events published during a rest reach every socket in one write, in order', async t => {
  const { hub, scheduler, conns } = await resting(t)
  const before = conns.map(c => c.writes.length)
  for (let i = 1; i <= 10; i++) await hub.publish('t', { data: `e${i}` })
  t.ok(scheduler.resting && conns.every((c, i) => c.writes.length === before[i]), 'nothing more written while resting')
  for (let i = 0; i < 100_000 && conns.some((c, j) => c.writes.length === before[j]); i++) await sleep(1)
  const want = Array.from({ length: 10 }, (_, i) => `e${i + 1}`)
  // A socket already written in the pass before the rest may also hold the producer's last warm-up event.
  t.ok(conns.every((c, i) => c.writes.length === before[i]! + 1 && newest(c).join() === want.join()), 'each socket: one more write holding e1..e10 in order')
})

t.test('a producer faster than the writes ends the rest once 16 frames wait', async t => {
  const { hub, scheduler, conns } = await resting(t)
  const before = conns.map(c => c.writes.length)
  for (let i = 1; i <= 15; i++) await hub.publish('t', { data: `e${i}` })
  t.ok(scheduler.resting && conns.every((c, i) => c.writes.length === before[i]), '15 frames waiting: still resting')
  await hub.publish('t', { data: 'e16' })
  t.notOk(scheduler.resting, 'the 16th frame ends the rest')
  for (let i = 0; i < 100_000 && conns.at(-1)!.writes.length === before.at(-1); i++) await nextTurn()
  const want = Array.from({ length: 16 }, (_, i) => `e${i + 1}`)
  t.ok(conns.every((c, i) => c.writes.length === before[i]! + 1 && newest(c).join() === want.join()), 'each socket: one write holding the 16 events in order')
})
