/**
 * The invariant of the model-based transport test, judged after a run
 * against what was applied (Redis: its firehose, read before every kill and
 * at the end; memory: the publishes that resolved):
 * - per subscriber connection, the events are real (applied, on its topics),
 *   strictly increasing, after its Last-Event-ID, and without a gap; a
 *   `reset` may come before a gap, after which none is missing from its id
 *   on. A reset that opens a resumed connection says history no longer
 *   reached its id (judged on memory, where the run shows the history); any
 *   other reset (on a fresh connection, or after events) says Redis lost data
 *   and must be explained by one of its restarts without data (see
 *   epochExplains);
 * - a connection still open at the end received everything applied since;
 * - a publish resolved with the id it was applied at, or rejected with a
 *   coded error that says "not confirmed" if it was applied after all.
 */
import type { EventSourceMessage } from 'eventsource-parser'

export interface Pub {
  no: number
  slot: number
  /** Which app (of the slot's successive ones) it was published on. */
  gen: number
  topic: string
  awaited: boolean
  state: 'pending' | 'ok' | 'err'
  id?: string
  code?: string | undefined
  message?: string
}

export interface Conn {
  slot: number
  gen: number
  /** The Last-Event-ID it was opened with. */
  from: string | undefined
  mode: 'fresh' | 'last' | 'old'
  /** Publishes called before its response head arrived: a fresh connection owes none of them. */
  openedPub: number
  /** Date.now() when the request was sent. */
  requestedAt: number
  events: EventSourceMessage[]
  /** Still open when the run settled: it must hold everything applied on its topics. */
  final: boolean
  byClient: boolean
  close?: () => void
}

export interface Chain {
  n: number
  topics: string[]
  conns: Conn[]
  /** The client wants to be connected (it reconnects when the server ends its stream). */
  wanted: boolean
  current?: Conn | undefined
}

/** Publish number → the id and topic it was applied with. */
export type Applied = Map<number, { id: string, topic: string }>

/**
 * What a run knows of Redis losing data: the epoch ids Redis started (its
 * epoch key, read before every kill and at the end); memory: none.
 */
export interface Losses { epochs: ReadonlySet<string> }

/**
 * How far after the start of an epoch (in Redis's clock) a transport may
 * still place the loss in its own clock. The transport converts with a clock
 * offset it learned from replies, known to within half a round trip; this is
 * a generous bound on that error, not a figure of how fast anything runs.
 */
const EPOCH_CLOCK_SLACK_MS = 250

/**
 * Is a `reset` carrying `id`, sent live to a connection, explained by Redis
 * losing data? Lost events are gone for good and nobody recorded when Redis
 * lost them; the first script that runs afterwards starts a new epoch from
 * Redis's clock in µs (never below it), and the reset carries that epoch. A
 * connection opened before the loss may have missed lost events: a reset is
 * warranted. One opened after the loss but before the epoch started cannot be
 * told apart from it by anyone (the loss time is unknown), so a reset is
 * accepted too. One opened after the epoch started could not have missed a
 * lost event: a reset there is spurious. Redis runs on this host, so its
 * clock is ours.
 */
function epochExplains (losses: Losses, conn: Conn, id: string | undefined): boolean {
  if (id === undefined || !losses.epochs.has(id)) return false
  return conn.requestedAt < Number(id) / 1000 + EPOCH_CLOCK_SLACK_MS
}

export function seenIds (chain: Chain): string[] {
  return chain.conns.flatMap(c => c.events.flatMap(e => e.id === undefined || e.id === '' ? [] : [e.id]))
}

export function lastSeen (chain: Chain): string | undefined {
  return seenIds(chain).at(-1)
}

const LIST_MAX = 12
const list = (xs: Array<string | number>): string => xs.length <= LIST_MAX ? xs.join(' ') : `${xs.slice(0, LIST_MAX).join(' ')} … (${xs.length})`
const brief = (events: EventSourceMessage[]): string => list(events.map(e => e.event === 'reset' ? `reset@${e.id ?? ''}` : `${e.id ?? ''}:${e.data}`))

function checkPubs (pubs: Pub[], applied: Applied): string[] {
  const out: string[] = []
  for (const p of pubs) {
    const a = applied.get(p.no)
    const what = `publish p${p.no} (slot ${p.slot}, ${p.topic}, ${p.awaited ? 'awaited' : 'not awaited'})`
    if (p.state === 'pending') out.push(`${what}: neither resolved nor rejected by the end of the run`)
    else if (p.state === 'ok' && (a?.id !== p.id || a?.topic !== p.topic)) out.push(`${what}: resolved with id ${p.id ?? ''}, but it was applied as ${a === undefined ? 'nothing' : `${a.id} on ${a.topic}`}`)
    else if (p.state === 'err') {
      if (p.code?.startsWith('HTMX_SSE_') !== true) out.push(`${what}: rejected without a plugin error code (code ${String(p.code)}): ${p.message ?? ''}`)
      if (a !== undefined && p.message?.includes('not confirmed') !== true) out.push(`${what}: rejected (${String(p.code)}: ${p.message ?? ''}) but it was applied at id ${a.id}`)
    }
  }
  return out
}

/** Is a `reset` on a memory connection resuming from `from` warranted? Only if history no longer reached back to it. */
function resetWarranted (pubs: Pub[], conn: Conn, topics: string[], history: number): boolean {
  const from = Number(conn.from)
  const era = pubs.find(p => p.state === 'ok' && p.id === conn.from)?.gen
  if (era === undefined || era !== conn.gen || !Number.isSafeInteger(from)) return true
  return topics.some(topic => {
    const ids = pubs.filter(p => p.state === 'ok' && p.gen === era && p.topic === topic).map(p => Number(p.id)).sort((a, b) => a - b)
    const newestTrimmed = ids.length > history ? ids[ids.length - history - 1]! : -1
    return from < newestTrimmed
  })
}

function checkConn (label: string, conn: Conn, topics: string[], onTopics: Array<{ no: number, id: number }>, applied: Applied, pubs: Pub[], backend: string, history: number, losses: Losses): string[] {
  const out: string[] = []
  const say = (problem: string): void => { out.push(`${label}: ${problem}; received [${brief(conn.events)}]`) }
  // Segments: the events before the first reset, then those after each reset.
  const segments: Array<{ reset?: EventSourceMessage, events: EventSourceMessage[] }> = [{ events: [] }]
  conn.events.forEach((e, i) => {
    if (e.event !== 'reset') { segments.at(-1)!.events.push(e); return }
    segments.push({ reset: e, events: [] })
    if (i === 0 && conn.from !== undefined) {
      if (backend === 'memory' && !resetWarranted(pubs, conn, topics, history)) say(`a reset although history still reached back to ${conn.from}`)
    } else if (!epochExplains(losses, conn, e.id)) {
      say(`${i === 0 ? 'a reset on a connection without Last-Event-ID' : `a reset after other events (position ${i})`} that no loss of Redis data explains (reset@${e.id ?? ''}, epochs ${[...losses.epochs].join(' ') || 'none'})`)
    }
  })
  if (segments[0]!.events.length === 0 && segments.length > 1) segments.shift()
  let prev = conn.from === undefined ? -Infinity : Number(conn.from)
  for (const [i, e] of conn.events.entries()) {
    if (e.event === 'reset') {
      // An opening reset replaces the Last-Event-ID, whatever it was (even one from the future); a later one must not go back.
      if (i > 0 && Number(e.id) < prev) { say(`reset@${e.id ?? ''} goes back before ${prev}`); return out }
      prev = Number(e.id)
      continue
    }
    const no = /^p(\d+)$/.exec(e.data)?.[1]
    const a = no === undefined ? undefined : applied.get(Number(no))
    if (a === undefined) { say(`event ${e.id ?? ''}:${e.data} was never applied`); return out }
    if (a.id !== e.id || !topics.includes(a.topic)) { say(`event ${e.id ?? ''}:${e.data} is p${no ?? ''} applied as ${a.id} on ${a.topic}`); return out }
    if (Number(e.id) <= prev) { say(`id ${e.id} not after ${prev} (a duplicate or out of order)`); return out }
    prev = Number(e.id)
  }
  segments.forEach((segment, k) => {
    // Events the next reset covers may be missing at the end of a segment; never in its middle.
    const last = k === segments.length - 1
    const gotIds = segment.events.map(e => Number(e.id))
    const base = segment.reset !== undefined ? Number(segment.reset.id) : conn.from === undefined ? undefined : Number(conn.from)
    let expected: number[]
    if (base !== undefined) {
      expected = onTopics.filter(x => x.id > base).map(x => x.id)
    } else {
      const start = gotIds[0]
      const owed = onTopics.filter(x => x.no >= conn.openedPub)
      if (start === undefined) {
        if (last && conn.final && owed.length > 0) say(`nothing received, but publishes after it connected were applied: ${list(owed.map(x => x.id))}`)
        return
      }
      const early = owed.filter(x => x.id < start)
      if (early.length > 0) say(`missed ${list(early.map(x => x.id))}, published after it connected, before its first event`)
      expected = onTopics.filter(x => x.id >= start).map(x => x.id)
    }
    const at = gotIds.findIndex((id, i) => id !== expected[i])
    if (at >= 0) {
      const missed = expected.filter(id => id < gotIds[at]! && !gotIds.includes(id))
      say(`a gap: at position ${at}${segment.reset === undefined ? '' : ` after reset@${segment.reset.id ?? ''}`} got ${gotIds[at]!}, expected ${expected[at] ?? 'nothing'}${missed.length > 0 ? ` (missed ${list(missed)})` : ''}`)
    } else if (last && conn.final && gotIds.length < expected.length) {
      say(`still open at the end but missing ${list(expected.slice(gotIds.length))}`)
    }
  })
  return out
}

export function checkRun (run: { pubs: Pub[], chains: Chain[], losses: Losses }, applied: Applied, backend: string, history: number): string[] {
  const out = checkPubs(run.pubs, applied)
  for (const chain of run.chains) {
    const onTopics = [...applied].filter(([, a]) => chain.topics.includes(a.topic)).map(([no, a]) => ({ no, id: Number(a.id) })).sort((x, y) => x.id - y.id)
    chain.conns.forEach((conn, k) => {
      const label = `subscriber ${chain.n} [${chain.topics.join(',')}] connection ${k} (slot ${conn.slot}/app ${conn.gen}, ${conn.mode}${conn.from === undefined ? '' : ` from ${conn.from}`})`
      out.push(...checkConn(label, conn, chain.topics, onTopics, applied, run.pubs, backend, history, run.losses))
    })
  }
  return out
}
