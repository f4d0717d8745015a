/**
 * The model-based transport test: fast-check generates an action list
 * (publishes awaited or not, from either instance; subscribers joining,
 * leaving, reconnecting with their last or an old id; Redis paused, killed
 * and restarted with or without its data; an instance closed mid-way and
 * replaced), a runner plays it against real apps and real SSE clients, and
 * check.ts judges what every subscriber received against what was applied.
 */
import { rm } from 'node:fs/promises'
import path from 'node:path'
import fc from 'fast-check'
import type { Test } from 'tap'
import { type Applied, checkRun, type Chain, type Conn, lastSeen, type Pub, seenIds } from './transport-check.js'
import { CLOSE_BOUND_MS, type Backend, type HubApp } from './transport-conformance.js'
import { Redis, type RedisServer } from './redis-server.js'
import { connect, type SseClient } from './sse-client.js'

export const TOPICS = ['t0', 't1', 't2'] as const
const SUBS = 4
const HISTORY = 5

export type Action =
  | { kind: 'publish', inst: number, topic: number, awaited: boolean }
  | { kind: 'burst', inst: number, topic: number, n: number }
  | { kind: 'connect', sub: number, inst: number }
  | { kind: 'disconnect', sub: number }
  | { kind: 'reconnect', sub: number, inst: number, from: 'last' | 'old' }
  | { kind: 'wait', ms: number }
  | { kind: 'pause', ms: number }
  | { kind: 'restart', keep: boolean }
  | { kind: 'close', inst: number }

export interface Scenario { topics: number[][], actions: Action[] }

/** Redis faults: the server of the file, the directory its snapshot lives in. */
export interface Faults { server: RedisServer, dir: string, admin: Redis }

export function scenarios (shared: number, faults: boolean, maxActions: number): fc.Arbitrary<Scenario> {
  const inst = fc.nat(shared - 1)
  const sub = fc.nat(SUBS - 1)
  const actions: Array<fc.WeightedArbitrary<Action>> = [
    { weight: 8, arbitrary: fc.record({ kind: fc.constant('publish' as const), inst, topic: fc.nat(TOPICS.length - 1), awaited: fc.boolean() }) },
    // Several at once, none awaited: history (HISTORY per topic) is trimmed while subscribers are away or behind.
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('burst' as const), inst, topic: fc.nat(TOPICS.length - 1), n: fc.integer({ min: 2, max: 8 }) }) },
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('connect' as const), sub, inst }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('disconnect' as const), sub }) },
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('reconnect' as const), sub, inst, from: fc.constantFrom('last' as const, 'old' as const) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 60 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('close' as const), inst }) }
  ]
  if (faults) {
    actions.push(
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('pause' as const), ms: fc.integer({ min: 100, max: 700 }) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const), keep: fc.boolean() }) })
  }
  return fc.record({
    topics: fc.array(fc.subarray([0, 1, 2], { minLength: 1 }), { minLength: SUBS, maxLength: SUBS }),
    actions: fc.array(fc.oneof(...actions), { minLength: Math.min(10, maxActions), maxLength: maxActions, size: 'max' })
  })
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

async function within<T> (p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined
  const r = await Promise.race([p, new Promise<'timeout'>(resolve => { timer = setTimeout(() => resolve('timeout'), ms) })])
  clearTimeout(timer)
  return r
}

/** One run: the apps, the subscribers and what happened to every publish. */
class Run {
  readonly slots: HubApp[] = []
  readonly gens: number[] = []
  readonly pubs: Pub[] = []
  readonly chains: Chain[]
  readonly problems: string[] = []
  /** Firehose contents read just before each kill (Redis): applied, even if the restart then lost them. */
  readonly snapshots = new Map<number, { id: string, topic: string }>()
  /** Every epoch Redis started after losing data (read with the snapshots: an epoch lasts until the next kill at least). */
  readonly losses = { epochs: new Set<string>() }
  #lossy = 0
  readonly #tasks = new Set<Promise<unknown>>()
  readonly #space: string
  #generation = 0
  #pausedUntil = 0
  #reconnects = 0

  constructor (readonly backend: Backend, readonly faults: Faults | undefined, scenario: Scenario) {
    this.#space = backend.space()
    this.chains = scenario.topics.map((t, i) => ({ n: i, topics: t.map(k => TOPICS[k]!), conns: [], wanted: false }))
  }

  async startSlot (slot: number): Promise<void> {
    this.slots[slot] = await this.backend.start(this.#space, { history: HISTORY })
    this.gens[slot] = ++this.#generation
  }

  track (p: Promise<unknown>): void {
    const q = p.catch((err: unknown) => { this.problems.push(`harness: ${String(err)}`) }).finally(() => this.#tasks.delete(q))
    this.#tasks.add(q)
  }

  async idle (ms: number): Promise<void> {
    const deadline = Date.now() + ms
    while (this.#tasks.size > 0 && Date.now() < deadline) await within(Promise.race(this.#tasks), 100)
    if (this.#tasks.size > 0) this.problems.push(`${this.#tasks.size} harness tasks (publishes, reconnects) still pending after ${ms} ms`)
  }

  publish (slot: number, topic: string, awaited: boolean): Promise<void> {
    const inst = this.slots[slot]!
    const pub: Pub = { no: this.pubs.length, slot, gen: this.gens[slot]!, topic, awaited, state: 'pending' }
    this.pubs.push(pub)
    return inst.app.sseHub.publish(topic, { data: `p${pub.no}` }).then(id => {
      pub.state = 'ok'
      pub.id = id
    }, (err: Error & { code?: string }) => {
      pub.state = 'err'
      pub.code = err.code
      pub.message = err.message
    })
  }

  /** Opens a connection of `chain` on `slot` (another live one if it is closed); `from`: its Last-Event-ID. */
  async open (chain: Chain, slot: number, from: string | undefined, mode: Conn['mode']): Promise<void> {
    chain.wanted = true
    for (let attempt = 0; chain.wanted; attempt++) {
      if (++this.#reconnects > 400) {
        this.problems.push(`chain ${chain.n}: more than 400 connection attempts in one run`)
        chain.wanted = false
        return
      }
      const target = [slot, ...this.slots.keys()].find(s => this.slots[s] !== undefined && !this.slots[s]!.closed)
      const inst = target === undefined ? undefined : this.slots[target]
      if (inst === undefined || target === undefined) { await sleep(50); continue }
      const conn: Conn = { slot: target, gen: this.gens[target]!, from, mode, openedPub: 0, requestedAt: Date.now(), events: [], final: false, byClient: false }
      const headers = from === undefined ? undefined : { 'last-event-id': from }
      const pending = connect(`http://127.0.0.1:${inst.port}/s?topics=${chain.topics.join(',')}`, { headers })
      let client: SseClient | 'timeout'
      try {
        client = await within(pending, 5000)
      } catch {
        await sleep(50)
        continue
      }
      if (client === 'timeout') {
        pending.then(c => c.close(), () => {})
        this.problems.push(`chain ${chain.n}: no response head from slot ${target} within 5 s`)
        await sleep(50)
        continue
      }
      if (client.status !== 200) { client.close(); await sleep(50); continue }
      if (!chain.wanted) { client.close(); return }
      conn.events = client.events
      // Owed: what was published once the response head arrived (the hub subscribed before writing it).
      conn.openedPub = this.pubs.length
      conn.close = () => { conn.byClient = true; client.close() }
      chain.conns.push(conn)
      chain.current = conn
      this.#follow(chain, conn, client)
      return
    }
  }

  /** A stream the server ended is reconnected from the last id seen, as EventSource does. */
  #follow (chain: Chain, conn: Conn, client: SseClient): void {
    void client.ended.then(() => {
      if (conn.byClient || chain.current !== conn || !chain.wanted) return
      chain.current = undefined
      const last = lastSeen(chain)
      this.track(sleep(20).then(async () => await this.open(chain, conn.slot, last, last === undefined ? 'fresh' : 'last')))
    })
  }

  async act (action: Action): Promise<void> {
    switch (action.kind) {
      case 'publish': {
        const slot = this.#live(action.inst)
        if (slot === undefined) return
        const p = this.publish(slot, TOPICS[action.topic]!, action.awaited)
        if (action.awaited) await within(p, 10_000)
        else this.track(p)
        return
      }
      case 'burst': {
        const slot = this.#live(action.inst)
        if (slot === undefined) return
        for (let i = 0; i < action.n; i++) this.track(this.publish(slot, TOPICS[action.topic]!, false))
        return
      }
      case 'connect': {
        const chain = this.chains[action.sub]!
        if (chain.wanted) return
        const last = lastSeen(chain)
        await this.open(chain, action.inst, last, last === undefined ? 'fresh' : 'last')
        return
      }
      case 'disconnect': {
        const chain = this.chains[action.sub]!
        chain.wanted = false
        chain.current?.close?.()
        chain.current = undefined
        return
      }
      case 'reconnect': {
        const chain = this.chains[action.sub]!
        chain.wanted = false
        chain.current?.close?.()
        chain.current = undefined
        const seen = seenIds(chain)
        const from = action.from === 'old' ? seen[Math.floor(seen.length / 3)] : seen.at(-1)
        await this.open(chain, action.inst, from, from === undefined ? 'fresh' : action.from)
        return
      }
      case 'wait': await sleep(action.ms); return
      case 'pause': {
        await this.faults!.admin.client('PAUSE', action.ms)
        this.#pausedUntil = Math.max(this.#pausedUntil, Date.now() + action.ms)
        return
      }
      case 'restart': await this.#restart(action.keep); return
      case 'close': {
        const slot = action.inst
        const inst = this.slots[slot]!
        const took = await within(inst.close(), CLOSE_BOUND_MS)
        if (took === 'timeout') this.problems.push(`app.close() of slot ${slot} did not return within ${CLOSE_BOUND_MS} ms`)
        await this.startSlot(slot)
      }
    }
  }

  #live (slot: number): number | undefined {
    return [slot, ...this.slots.keys()].find(s => this.slots[s] !== undefined && !this.slots[s]!.closed)
  }

  /** kill -9 with writes paused, so the firehose read first is exactly what Redis applied; `keep`: SAVE first, so it comes back with it. */
  async #restart (keep: boolean): Promise<void> {
    const { server, dir, admin } = this.faults!
    await admin.client('PAUSE', 60_000, 'WRITE')
    await this.#snapshot()
    if (keep) await admin.save()
    await server.kill()
    if (!keep) {
      await rm(path.join(dir, 'dump.rdb'), { force: true })
      this.#lossy++
    }
    await server.start()
    this.#pausedUntil = 0
  }

  async #snapshot (): Promise<void> {
    if (this.faults === undefined) return
    // Before the first restart without data, the epoch is the one the first instance started on an empty Redis.
    const epoch = await this.faults.admin.get(`${this.#space}:epoch`)
    if (epoch !== null && this.#lossy > 0) this.losses.epochs.add(epoch)
    const entries = await this.faults.admin.xrange(`${this.#space}:all`, '-', '+') as Array<[string, string[]]>
    for (const [sid, fields] of entries) {
      const get = (name: string): string | undefined => { const i = fields.indexOf(name); return i >= 0 && i % 2 === 0 ? fields[i + 1] : undefined }
      const data = get('data')
      if (data?.startsWith('p') === true) this.snapshots.set(Number(data.slice(1)), { id: sid.split('-')[0]!, topic: get('topic') ?? '' })
    }
  }

  async applied (): Promise<Applied> {
    const out: Applied = new Map()
    if (this.faults === undefined) {
      for (const p of this.pubs) if (p.state === 'ok') out.set(p.no, { id: p.id!, topic: p.topic })
      return out
    }
    await this.#snapshot()
    for (const [no, e] of this.snapshots) out.set(no, e)
    return out
  }

  /** Ends the faults, brings every subscriber back, publishes a sentinel per topic and waits (bounded) for delivery. */
  async settle (): Promise<void> {
    if (this.#pausedUntil > Date.now()) await sleep(this.#pausedUntil - Date.now())
    await this.faults?.admin.client('UNPAUSE')
    await this.idle(15_000)
    for (const [slot, inst] of this.slots.entries()) if (inst.closed) await this.startSlot(slot)
    for (const chain of this.chains) {
      if (!chain.wanted && chain.conns.length > 0) await this.open(chain, 0, lastSeen(chain), lastSeen(chain) === undefined ? 'fresh' : 'last')
    }
    for (const topic of TOPICS) {
      for (let i = 0; i < 50; i++) {
        await this.publish(0, topic, true)
        if (this.pubs.at(-1)!.state === 'ok') break
        await sleep(100)
      }
    }
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline) {
      await this.idle(5000)
      for (const c of this.chains) if (c.current !== undefined) c.current.final = true
      if (checkRun(this, await this.applied(), this.backend.name, HISTORY).length === 0) break
      for (const c of this.chains) if (c.current !== undefined) c.current.final = false
      await sleep(50)
    }
    for (const c of this.chains) {
      if (c.current !== undefined) c.current.final = true
      else if (c.conns.length > 0) this.problems.push(`chain ${c.n}: not connected at the end`)
    }
  }

  async close (): Promise<void> {
    for (const c of this.chains) { c.wanted = false; c.current?.close?.() }
    for (const [slot, inst] of this.slots.entries()) {
      const took = await within(inst.close(), CLOSE_BOUND_MS)
      if (took === 'timeout') this.problems.push(`final app.close() of slot ${slot} did not return within ${CLOSE_BOUND_MS} ms`)
    }
    await this.idle(5000)
  }
}

export function describeScenario (s: Scenario): string {
  return [`subscriber topics: ${JSON.stringify(s.topics.map(ts => ts.map(k => TOPICS[k])))}`,
    ...s.actions.map((a, i) => `${i}: ${JSON.stringify(a)}`)].join('\n')
}

/** What the runs exercised, so a summary shows the model did reach the cases it is for. */
export interface Tally { runs: number, publishes: number, rejected: number, appliedRejected: number, connections: number, resumes: number, resets: number, events: number, restarts: number, closes: number }

/** Plays one scenario; resolves with the violations (empty: the run conforms). */
export async function play (backend: Backend, faults: Faults | undefined, scenario: Scenario, tally?: Tally): Promise<string[]> {
  const run = new Run(backend, faults, scenario)
  try {
    for (let slot = 0; slot < backend.shared; slot++) await run.startSlot(slot)
    for (const action of scenario.actions) await run.act(action)
    await run.settle()
    const applied = await run.applied()
    if (tally !== undefined) {
      const conns = run.chains.flatMap(c => c.conns)
      tally.runs++
      tally.publishes += run.pubs.length
      tally.rejected += run.pubs.filter(p => p.state === 'err').length
      tally.appliedRejected += run.pubs.filter(p => p.state === 'err' && applied.has(p.no)).length
      tally.connections += conns.length
      tally.resumes += conns.filter(c => c.from !== undefined).length
      tally.resets += conns.filter(c => c.events[0]?.event === 'reset').length
      tally.events += conns.reduce((n, c) => n + c.events.length, 0)
      tally.restarts += scenario.actions.filter(a => a.kind === 'restart').length
      tally.closes += scenario.actions.filter(a => a.kind === 'close').length
    }
    const problems = [...run.problems, ...checkRun(run, applied, backend.name, HISTORY)]
    // What each instance saw, to tell a stuck replay from a stuck live loop when a run fails.
    if (problems.length > 0) run.slots.forEach((inst, slot) => problems.push(`(slot ${slot}, app ${run.gens[slot]!}: ${JSON.stringify({ ...inst.app.sseHub.stats(), topics: undefined })})`))
    return problems
  } finally {
    await run.close()
  }
}

export async function modelTest (t: Test, backend: Backend, faults: Faults | undefined, options: { seed: number, numRuns: number, maxActions: number }): Promise<void> {
  t.comment(`model: seed ${options.seed}, ${options.numRuns} runs of at most ${options.maxActions} actions (replay: CONF_SEED=${options.seed})`)
  let failure: string | undefined
  const tally: Tally = { runs: 0, publishes: 0, rejected: 0, appliedRejected: 0, connections: 0, resumes: 0, resets: 0, events: 0, restarts: 0, closes: 0 }
  await fc.assert(fc.asyncProperty(scenarios(backend.shared, faults !== undefined, options.maxActions), async scenario => {
    const problems = await play(backend, faults, scenario, tally)
    if (problems.length > 0) {
      failure = `${problems.join('\n')}\n--- scenario ---\n${describeScenario(scenario)}`
      throw new Error(failure)
    }
  }), { seed: options.seed, numRuns: options.numRuns, endOnFailure: process.env.CONF_SHRINK !== '1' }).catch((err: unknown) => {
    t.fail(`model (${backend.name}, seed ${options.seed}): ${failure ?? String(err)}`)
    if (process.env.CONF_SHRINK === '1') t.comment(String(err))
  })
  t.comment(`model tally: ${JSON.stringify(tally)}`)
  if (failure === undefined) t.pass(`${options.numRuns} runs conform`)
}
