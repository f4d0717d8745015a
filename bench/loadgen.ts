// Load generator worker: opens its share of SSE connections with raw node:net
// sockets and counts, checks and times every event. Driven over IPC by run.ts.
import { Histogram } from './lib/hist.js'
import { emptyGroup, type GroupReport, type Progress, type WorkerInit, type WorkerReply, type WorkerRequest } from './lib/messages.js'
import { SseClient } from './lib/sse-client.js'

if (!process.send) throw new Error('loadgen.ts runs as a child of bench/run.ts (needs an IPC channel)')

const CONNECT_RETRIES = 3
const RETRY_DELAY_MS = 200
const RECONNECT_DELAY_MS = 100
/** Hard stop: no worker outlives a scenario by much, whatever the driver does. */
const MAX_LIFETIME_MS = 15 * 60_000

interface Member { client: SseClient, slow: boolean }

const normalHist = new Histogram()
const slowHist = new Histogram()
// Warm-up events (the first `init.warmup` of every client) are timed apart, for every variant alike.
const normalWarm = new Histogram()
const slowWarm = new Histogram()
const members: Member[] = []
const errors: Record<string, number> = {}
let closing = false
let draining = false
const waitingForResume = new Set<SseClient>()

function send (msg: WorkerReply): void {
  process.send!(msg)
}

function countError (reason: string): void {
  errors[reason] = (errors[reason] ?? 0) + 1
}

async function connectAll (init: WorkerInit): Promise<{ ok: number, failed: number, ms: number }> {
  const t0 = performance.now()
  let next = 0
  let ok = 0
  let failed = 0
  const total = init.clients + init.slow
  await new Promise<void>((resolve) => {
    if (total === 0) { resolve(); return }
    const settle = (good: boolean): void => {
      if (good) ok++
      else failed++
      if (ok + failed === total) resolve()
      else startNext()
    }
    const startNext = (): void => {
      if (next >= total) return
      const slow = next >= init.clients
      next++
      let attempts = 0
      let settled = false
      const client = new SseClient({
        port: init.port,
        path: init.path,
        count: init.count,
        hist: slow ? slowHist : normalHist,
        warmup: init.warmup,
        warmHist: slow ? slowWarm : normalWarm,
        onOpen: (c) => {
          if (!settled) { settled = true; settle(true) }
          if (slow && !draining) c.pause()
        },
        onClose: (c, reason) => {
          if (!settled) {
            // Initial connection failed: retry a few times, then give up.
            if (++attempts <= CONNECT_RETRIES && !closing) {
              setTimeout(() => c.connect(), RETRY_DELAY_MS).unref()
            } else {
              countError(reason)
              settled = true
              settle(false)
            }
            return
          }
          onLaterClose(c, reason)
        }
      })
      members.push({ client, slow })
      client.connect()
    }
    for (let i = 0; i < Math.min(init.concurrency, total); i++) startNext()
  })
  return { ok, failed, ms: performance.now() - t0 }
}

/** A connection that had opened ended: reconnect with Last-Event-ID, like EventSource. */
function onLaterClose (c: SseClient, reason: string): void {
  if (closing || c.complete) return
  if (c.reconnects >= maxReconnects) { countError(`gave-up:${reason}`); return }
  if (c.paused) { waitingForResume.add(c); return }
  c.reconnects++
  setTimeout(() => { if (!closing) c.connect() }, RECONNECT_DELAY_MS).unref()
}

let maxReconnects = 20

function group (slow: boolean): GroupReport {
  const r = emptyGroup((slow ? slowHist : normalHist).toJSON(), (slow ? slowWarm : normalWarm).toJSON())
  for (const m of members) {
    if (m.slow !== slow) continue
    const c = m.client
    r.clients++
    if (c.opens === 0) r.neverOpened++
    if (c.open) r.open++
    r.unique += c.unique
    r.duplicates += c.duplicates
    r.outOfOrder += c.outOfOrder
    r.other += c.other
    if (c.complete) r.complete++
    r.reconnects += c.reconnects
    r.bytes += c.bytes
    if (c.lastRecvMs > r.lastRecvMs) r.lastRecvMs = c.lastRecvMs
  }
  if (!slow) r.errors = errors
  return r
}

function progress (): Progress {
  const p: Progress = { unique: 0, complete: 0, open: 0, reconnects: 0 }
  for (const { client } of members) {
    p.unique += client.unique
    if (client.complete) p.complete++
    if (client.open) p.open++
    p.reconnects += client.reconnects
  }
  return p
}

process.on('message', (msg: WorkerRequest) => {
  switch (msg.t) {
    case 'connect':
      maxReconnects = msg.init.maxReconnects
      void connectAll(msg.init).then((r) => send({ t: 'connect', id: msg.id, ...r, errors }))
      break
    case 'progress':
      send({ t: 'progress', id: msg.id, progress: progress() })
      break
    case 'resume':
      draining = true
      for (const { client, slow } of members) if (slow) client.resume()
      for (const c of waitingForResume) onLaterClose(c, 'resumed')
      waitingForResume.clear()
      send({ t: 'resume', id: msg.id })
      break
    case 'report':
      send({ t: 'report', id: msg.id, normal: group(false), slow: group(true) })
      break
    case 'close':
      closing = true
      for (const { client } of members) client.destroy()
      send({ t: 'close', id: msg.id })
      setTimeout(() => process.exit(0), 50)
      break
  }
})

process.on('disconnect', () => process.exit(0))
send({ t: 'ready' })
setTimeout(() => process.exit(2), MAX_LIFETIME_MS).unref()
