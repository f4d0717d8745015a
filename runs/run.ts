/**
 * The model of a run of the user's own function (`app.runs.start`): what
 * pages and scripts see (`Run`), what the work function gets (`RunContext`),
 * what is stored, and the checks every value passes before it is stored.
 * Values that cannot be stored are coded errors at the call that made them,
 * never something dropped or mangled on the way to the store (a `Map` that
 * JSON turns into `{}`, a NaN that turns into null).
 */
import type { RunStatus, StoredRun } from './store.js'
import { SseInvalidRunValueError } from '../plugin/errors.js'

/** A run as pages and scripts see it (the JSON API answers with exactly this). */
export interface Run {
  readonly id: string
  /** What the app named it when it started it ('report'). */
  readonly kind: string
  readonly title: string
  readonly status: RunStatus
  /** The last fraction reported, 0..1 (1 once the work returned). */
  readonly progress: number
  /** The label of the last `progress` call that gave one. */
  readonly label?: string | undefined
  /** What `run.append` added, oldest first: strings, or JSON values. */
  readonly entries: readonly unknown[]
  /** What the work function returned (status 'done'). */
  readonly result?: unknown
  /** Why it failed (status 'failed'): the message of what the work function threw. */
  readonly error?: string | undefined
  /** Milliseconds since the epoch. */
  readonly startedAt: number
  readonly finishedAt?: number | undefined
  /** Its page (the same URL with `Accept: application/json` answers this object). */
  readonly url: string
}

/** What a work function gets as its first argument (`signal`, the second, aborts on cancel, shutdown, or a lost lease). */
export interface RunContext {
  readonly id: string
  readonly kind: string
  /** The run's page. */
  readonly url: string
  /**
   * Reports progress: `fraction` from 0 to 1, and a label ("Step 2 of 5";
   * omitted: the previous label stays). Resolves once stored and published.
   * Calls made faster than the store takes them are coalesced: the latest
   * wins, and every call resolves when it (or a later one) is stored.
   */
  progress: (fraction: number, label?: string) => Promise<void>
  /** Adds a line to the run's log: a string, or a JSON value. Resolves once stored and published, in call order. */
  append: (entry: unknown) => Promise<void>
}

/** What a run of this module keeps in `StoredRun.data`. */
export interface RunData {
  progress: number
  label?: string
  result?: unknown
  error?: string
}

/** Kinds are names the app chose, kept short and safe in topics, URLs and store keys. */
export const KIND = /^[a-z][a-z0-9_-]{0,31}$/
/** Run ids (16 hex digits) and the ids of runs kept by earlier versions. */
export const RUN_ID = /^[\w-]{1,48}$/
export const MAX_TITLE = 200
export const MAX_LABEL = 200
/** A run's log is bounded: past this, `append` throws (a page renders every entry). */
export const MAX_ENTRIES = 1_000
/** Bytes of JSON per log entry. */
export const MAX_ENTRY_BYTES = 16 * 1024
/** Bytes of JSON of a result. */
export const MAX_RESULT_BYTES = 64 * 1024
const MAX_DEPTH = 32

/**
 * The store kind of a run kind: runs of this module live beside other
 * runners' (agent runs) in one store, and a URL naming another runner's kind
 * ('agent') can never reach those: the store answers it as unknown.
 */
export const storeKind = (kind: string): string => `fn:${kind}`

function invalid (message: string): never {
  throw new SseInvalidRunValueError(message)
}

export function checkKind (kind: unknown): string {
  if (typeof kind !== 'string' || !KIND.test(kind)) invalid(`runs: kind ${JSON.stringify(kind)?.slice(0, 40) ?? String(kind)} must match ${String(KIND)} (lowercase letters, digits, '-' and '_', at most 32)`)
  return kind
}

/** A title: its control characters become spaces; empty means the kind. */
export function checkTitle (title: unknown, kind: string): string {
  if (title === undefined) return kind
  if (typeof title !== 'string') invalid(`runs: title must be a string, got ${typeof title}`)
  // eslint-disable-next-line no-control-regex -- control characters are exactly what it replaces
  const clean = title.replace(/[\u0000-\u001f\u007f]/g, ' ').trim()
  if ([...clean].length > MAX_TITLE) invalid(`runs: title is ${[...clean].length} characters, at most ${MAX_TITLE}`)
  return clean === '' ? kind : clean
}

export function checkFraction (fraction: unknown): number {
  if (typeof fraction !== 'number' || !(fraction >= 0 && fraction <= 1)) invalid(`run.progress: fraction must be a number from 0 to 1, got ${typeof fraction === 'number' ? String(fraction) : typeof fraction}`)
  return fraction
}

export function checkLabel (label: unknown): string | undefined {
  if (label === undefined) return undefined
  if (typeof label !== 'string') invalid(`run.progress: label must be a string, got ${typeof label}`)
  if ([...label].length > MAX_LABEL) invalid(`run.progress: label is ${[...label].length} characters, at most ${MAX_LABEL}`)
  return label
}

/**
 * The JSON text of `value`, when JSON keeps it exactly: null, booleans,
 * finite numbers, strings, arrays and plain objects of those. Anything JSON
 * would drop or change (undefined in an array, NaN, a Date, a Map, a class
 * instance, a function, a cycle) is an error naming where it is.
 */
export function jsonOf (value: unknown, what: string, maxBytes: number): string {
  checkJson(value, what, 0, new Set())
  const text = JSON.stringify(value)
  const bytes = Buffer.byteLength(text)
  if (bytes > maxBytes) invalid(`${what} is ${bytes} bytes of JSON, at most ${maxBytes}`)
  return text
}

function checkJson (value: unknown, at: string, depth: number, seen: Set<object>): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) invalid(`${at}: ${String(value)} is not JSON`)
    return
  }
  if (typeof value !== 'object') invalid(`${at}: a ${typeof value} is not JSON`)
  if (depth >= MAX_DEPTH) invalid(`${at}: nested more than ${MAX_DEPTH} deep`)
  if (seen.has(value)) invalid(`${at}: a cycle is not JSON`)
  seen.add(value)
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      if (item === undefined) invalid(`${at}[${i}]: undefined is not JSON (it would be stored as null)`)
      checkJson(item, `${at}[${i}]`, depth + 1, seen)
    })
  } else {
    const proto = Object.getPrototypeOf(value) as unknown
    if (proto !== Object.prototype && proto !== null) {
      const name = (value as { constructor?: { name?: string } }).constructor?.name ?? 'object'
      invalid(`${at}: a ${name} is not plain JSON${value instanceof Date ? ' (store date.toISOString())' : ''}`)
    }
    for (const [key, item] of Object.entries(value)) {
      // A property JSON leaves out is one the caller chose not to set.
      if (item !== undefined) checkJson(item, `${at}.${key}`, depth + 1, seen)
    }
  }
  seen.delete(value)
}

/** A stored run (with its log) as pages see it. */
export function runOf (stored: StoredRun, kind: string, entries: readonly unknown[], url: string): Run {
  const data = (stored.data ?? { progress: 0 }) as RunData
  return {
    id: stored.id,
    kind,
    title: stored.title,
    status: stored.status,
    progress: typeof data.progress === 'number' ? data.progress : 0,
    label: data.label,
    entries,
    result: data.result,
    error: data.error,
    startedAt: stored.startedAt,
    finishedAt: stored.finishedAt,
    url
  }
}
