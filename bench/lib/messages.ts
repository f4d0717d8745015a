// IPC messages between the driver (bench/run.ts), the servers and the load
// generator workers. Every request carries an `id` echoed by its reply.
import type { HistogramJSON } from './hist.js'

export type PayloadKind = 'text' | 'card'

export interface PublishPlan {
  count: number
  /** 0 = as fast as possible (yielding with setImmediate every `yieldEvery`). */
  intervalMs: number
  size: number
  yieldEvery: number
  kind: PayloadKind
}

export type ServerRequest =
  | { t: 'clients', id: number }
  | { t: 'gc', id: number }
  | { t: 'stats', id: number }
  | { t: 'publish', id: number, plan: PublishPlan }
  | { t: 'exit', id: number }

export interface PublishResult {
  published: number
  errors: number
  /** Wall time of the whole publish phase. */
  ms: number
  /** When publishing began (wall ms, the clock of the payloads' send times). */
  startedAtMs: number
  /** Per publish: render + publish call (+ its promise), in µs. */
  meanPublishUs: number
  p99PublishUs: number
  firstError?: string
  /** Process warnings emitted while the server ran, by name (e.g. MaxListenersExceededWarning). */
  warnings: Record<string, number>
}

export type ServerReply =
  /** pids: other processes doing the server's work (a native child), whose CPU counts as the server's. */
  | { t: 'ready', port: number, variant: string, pids?: number[] }
  | { t: 'clients', id: number, n: number }
  | { t: 'gc', id: number }
  /** elu: the event loop's utilization (0–1) since the previous stats request. */
  | { t: 'stats', id: number, stats: Record<string, number>, elu: number }
  | { t: 'publish', id: number, result: PublishResult }
  | { t: 'exit', id: number }

export interface WorkerInit {
  index: number
  port: number
  path: string
  clients: number
  slow: number
  count: number
  /** The first `warmup` events are timed apart (warm-up), not in the latency histogram. */
  warmup: number
  concurrency: number
  maxReconnects: number
}

export type WorkerRequest =
  | { t: 'connect', id: number, init: WorkerInit }
  | { t: 'progress', id: number }
  | { t: 'resume', id: number }
  | { t: 'report', id: number }
  | { t: 'close', id: number }

export interface GroupReport {
  clients: number
  /** Clients whose connection never opened (not counted as losing events). */
  neverOpened: number
  open: number
  unique: number
  duplicates: number
  outOfOrder: number
  other: number
  complete: number
  reconnects: number
  bytes: number
  /** The latest receipt of a new event by any client (wall ms, as in the payload). */
  lastRecvMs: number
  /** Latencies of events after the warm-up. */
  hist: HistogramJSON
  /** Latencies of the warm-up events. */
  warmHist: HistogramJSON
  errors: Record<string, number>
}

/** A report with nothing counted yet, over these latency histograms (a worker's, or the merge of several). */
export function emptyGroup (hist: HistogramJSON, warmHist: HistogramJSON): GroupReport {
  return { clients: 0, neverOpened: 0, open: 0, unique: 0, duplicates: 0, outOfOrder: 0, other: 0, complete: 0, reconnects: 0, bytes: 0, lastRecvMs: 0, hist, warmHist, errors: {} }
}

export interface Progress { unique: number, complete: number, open: number, reconnects: number }

export type WorkerReply =
  | { t: 'ready' }
  | { t: 'connect', id: number, ok: number, failed: number, ms: number, errors: Record<string, number> }
  | { t: 'progress', id: number, progress: Progress }
  | { t: 'resume', id: number }
  | { t: 'report', id: number, normal: GroupReport, slow: GroupReport }
  | { t: 'close', id: number }
