/**
 * The one validator of options: the plugin's, `reply.live`'s and the memory
 * transport's. Every problem is an `SseInvalidOptionError`
 * (`HTMX_SSE_INVALID_OPTION`, a TypeError) whose message reads
 * `fastify-htmx-sse: option <name> <problem>`, so a user matches one code
 * and reads one format whichever option it was.
 *
 * Each check takes the option's name as the user knows it (with where it
 * belongs when that is not the plugin, e.g. `ttlMs (reply.live)`), the
 * value given, and the default for `undefined`.
 */
import { SseInvalidOptionError } from './errors.js'

export function invalidOption (name: string, problem: string): Error {
  return new SseInvalidOptionError(name, problem)
}

/** How a bad value reads in a message: strings quoted, objects by kind, never their contents. */
export function shown (value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)
  if (value === null || typeof value !== 'object') return typeof value === 'function' ? 'a function' : String(value)
  return Array.isArray(value) ? 'an array' : 'an object'
}

/** What Fastify's `register` itself takes; a plugin sees them among its options. */
export const REGISTER_KEYS = ['prefix', 'logLevel', 'logSerializers'] as const

/**
 * Refuses keys that are not options: a misspelt or misplaced option would
 * otherwise be dropped without a word. `where` names the call for the message.
 */
export function onlyKnown (options: unknown, known: readonly string[], where: string): void {
  if (options === undefined) return
  if (options === null || typeof options !== 'object') throw invalidOption(where, `must be an object, got ${shown(options)}`)
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue
    const lower = key.toLowerCase()
    // A different case or a missing (or extra) tail: `HeartbeatMs`, `heartbeat`, `maxTopic`.
    const near = known.find(k => k.toLowerCase() === lower) ?? known.find(k => lower.length >= 4 && (k.toLowerCase().startsWith(lower) || lower.startsWith(k.toLowerCase())))
    throw invalidOption(`${key}${where === 'options' ? '' : ` (${where})`}`, `is not an option${near === undefined ? '' : ` (did you mean ${near}?)`}; the options are ${known.join(', ')}`)
  }
}

/** A number > 0 (Infinity included: "no limit"). */
export function positiveNumber (name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !(value > 0)) throw invalidOption(name, `must be a positive number, got ${shown(value)}`)
  return value
}

/** A finite number of milliseconds, at least `min`. */
export function duration (name: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || !(value >= min)) throw invalidOption(name, `must be a number of ms >= ${min}, got ${shown(value)}`)
  return value
}

/** Like `duration`, with no default (the feature is off without it) and at most what a timer can wait (about 24.8 days). */
export function optionalDuration (name: string, value: unknown, min: number): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !(value >= min && value <= MAX_TIMER_MS)) throw invalidOption(name, `must be a number of ms from ${min} to ${MAX_TIMER_MS}, got ${shown(value)}`)
  return value
}

/** Node's timers fire at once, with a warning, past this. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** A safe integer, at least `min`. */
export function integer (name: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) throw invalidOption(name, `must be an integer >= ${min}, got ${shown(value)}`)
  return value
}

/** A number in (0, 1]. */
export function share (name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !(value > 0 && value <= 1)) throw invalidOption(name, `must be a number in (0, 1], got ${shown(value)}`)
  return value
}

export function oneOf<T extends string | number> (name: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback
  if (!allowed.includes(value as T)) throw invalidOption(name, `must be ${allowed.join(' or ')}, got ${shown(value)}`)
  return value as T
}

export function boolean (name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') throw invalidOption(name, `must be true or false, got ${shown(value)}`)
  return value
}

export function optionalFunction<F extends (...args: never[]) => unknown> (name: string, value: unknown): F | undefined {
  if (value !== undefined && typeof value !== 'function') throw invalidOption(name, `must be a function, got ${shown(value)}`)
  return value as F | undefined
}

/** An absolute URL path the plugin registers a route on. */
export function urlPath (name: string, value: unknown, fallback: string): string {
  if (value === undefined) return fallback
  if (typeof value !== 'string' || !/^\/[\w\-./]*[\w-]$/.test(value) || value.includes('//')) {
    throw invalidOption(name, `must be an absolute URL path like ${fallback}, got ${shown(value)}`)
  }
  return value
}

/** A route the plugin serves at a path, or `false` for one the app serves (or does without). */
export function urlPathOrFalse (name: string, value: unknown, fallback: string): string | false {
  return value === false ? false : urlPath(name, value, fallback)
}

/** An object with every method a contract names (a transport, a store). */
export function withMethods<T> (name: string, value: unknown, methods: readonly string[]): T {
  const missing = value === null || typeof value !== 'object'
    ? methods
    : methods.filter(m => typeof (value as Record<string, unknown>)[m] !== 'function')
  if (missing.length > 0) throw invalidOption(name, `must be an object with methods ${methods.join(', ')} (missing ${missing.join(', ')}), got ${shown(value)}`)
  return value as T
}
