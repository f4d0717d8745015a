/**
 * Small validation and escaping helpers shared by the view components.
 *
 * Everything here throws a `TypeError` that names the offending prop, so a bad
 * value fails loudly at render time instead of producing markup htmx silently
 * ignores (or a browser happily executes).
 */

/** A `class` prop: a string, or a list whose falsy items are dropped. */
import { escapeHtml } from '@kitajs/html'
import { eventNameProblem } from '../plugin/encode.js'
import { SseInvalidPropError } from '../plugin/errors.js'

export type ClassValue = string | ReadonlyArray<string | false | null | undefined>

/** Joins class values into one attribute value (empty parts dropped). */
export function cx (...parts: Array<ClassValue | false | null | undefined>): string {
  const out: string[] = []
  for (const part of parts) {
    if (!part) continue
    if (typeof part === 'string') out.push(part)
    else for (const p of part) if (p) out.push(p)
  }
  return out.join(' ')
}

/**
 * Validates an SSE event name used in `sse-swap` / `sse-close` / `hx-sse:close`:
 * the plugin's own rule (`eventNameProblem`), so a name a view accepts is one
 * `send()` and `publish()` accept, and the other way round. htmx splits
 * `sse-swap` on commas and trims, and the wire format cannot carry CR/LF.
 */
export function assertEventName (name: unknown, prop: string): string {
  const problem = eventNameProblem(name)
  if (problem !== undefined) throw new SseInvalidPropError(`${prop}: SSE event name ${problem}`)
  return name as string
}

/**
 * Checks a prop typed as a literal union at render: a JS caller or a cast can
 * pass anything, and these values go into class names, text or tag names.
 */
export function oneOf<T extends string> (value: unknown, allowed: readonly T[], prop: string): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new SseInvalidPropError(`${prop}: ${JSON.stringify(String(value)).slice(0, 40)} is not one of ${allowed.join(', ')}`)
  }
  return value as T
}

/** Validates a list of event names (non-empty) and joins them for `sse-swap`. */
export function eventList (names: string | readonly string[], prop: string): string {
  const list = typeof names === 'string' ? [names] : names
  if (list.length === 0) throw new SseInvalidPropError(`${prop}: at least one SSE event name is required`)
  return list.map((n) => assertEventName(n, prop)).join(',')
}

const DOM_ID = /^[A-Za-z][A-Za-z0-9_-]*$/

/**
 * Validates an element id that htmx will use as a CSS selector (`#id`) for an
 * out-of-band swap. htmx builds the selector without escaping, so anything
 * beyond letters, digits, `-` and `_` (starting with a letter) would either
 * throw inside htmx or select the wrong element.
 */
export function assertDomId (id: unknown, prop: string): string {
  if (typeof id !== 'string' || !DOM_ID.test(id)) {
    throw new SseInvalidPropError(`${prop}: ${JSON.stringify(id)} is not a valid target id (letters, digits, '-' and '_', starting with a letter)`)
  }
  return id
}

// eslint-disable-next-line no-control-regex -- control characters are exactly what it rejects
const CONTROL_OR_SPACE = /[\u0000-\u0020\u007f]/
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/

/**
 * Accepts only http(s) absolute URLs and relative URLs (path, `?query`, `#hash`,
 * protocol-relative). `javascript:`, `data:`, `vbscript:` and any other scheme
 * throw. Whitespace and control characters are rejected outright because
 * browsers strip them while parsing (`java\tscript:` is `javascript:`).
 */
export function assertSafeUrl (url: unknown, prop: string): string {
  if (typeof url !== 'string' || url.length === 0) {
    throw new SseInvalidPropError(`${prop}: URL must be a non-empty string`)
  }
  if (CONTROL_OR_SPACE.test(url)) {
    throw new SseInvalidPropError(`${prop}: URL must not contain whitespace or control characters (percent-encode them)`)
  }
  const scheme = SCHEME.exec(url)?.[1]?.toLowerCase()
  if (scheme !== undefined && scheme !== 'http' && scheme !== 'https') {
    throw new SseInvalidPropError(`${prop}: only http(s) and relative URLs are allowed, got scheme ${JSON.stringify(scheme + ':')}`)
  }
  return url
}

/**
 * Prepares a validated URL for an attribute value. @kitajs/html escapes `"` in
 * attributes but not `&`; without this, `&#106;avascript:` would pass the
 * scheme check and be decoded by the browser into `javascript:`, and query
 * separators would be parsed as character references. `<`, `"`, `'` are escaped too.
 */
export function urlAttr (url: unknown, prop: string): string {
  return escapeHtml(assertSafeUrl(url, prop))
}

/**
 * Adds query parameters to a (possibly relative) URL without changing its
 * other parts. Existing parameters of the same name are replaced.
 */
export function withQuery (url: string, params: Record<string, string | undefined>): string {
  const hashAt = url.indexOf('#')
  const hash = hashAt === -1 ? '' : url.slice(hashAt)
  const noHash = hashAt === -1 ? url : url.slice(0, hashAt)
  const queryAt = noHash.indexOf('?')
  const path = queryAt === -1 ? noHash : noHash.slice(0, queryAt)
  const search = new URLSearchParams(queryAt === -1 ? '' : noHash.slice(queryAt + 1))
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined) search.set(key, value)
  }
  const query = search.toString()
  return path + (query ? '?' + query : '') + hash
}

/** Clamps to [min, max]; non-finite input becomes `min`. */
export function clamp (value: number, min: number, max: number): number {
  if (!Number.isFinite(value)) return min
  return Math.min(max, Math.max(min, value))
}

/** Normalises a `Date | number` (ms since epoch) to a valid Date, or undefined. */
export function toDate (at: Date | number): Date | undefined {
  const d = at instanceof Date ? at : new Date(at)
  return Number.isNaN(d.getTime()) ? undefined : d
}

/** ISO timestamp for `datetime` attributes ('' for invalid dates). */
export function isoTime (at: Date | number): string {
  return toDate(at)?.toISOString() ?? ''
}

/** `HH:MM:SS` in UTC, for compact display ('--:--:--' for invalid dates). */
export function clockTime (at: Date | number): string {
  return toDate(at)?.toISOString().slice(11, 19) ?? '--:--:--'
}

/** Formats a number with fixed precision; non-finite values render as an em dash. */
export function formatNumber (value: number, precision = 1): string {
  if (!Number.isFinite(value)) return '—'
  return value.toFixed(clamp(Math.trunc(precision), 0, 10))
}

/** Appends the doctype to rendered HTML, preserving async rendering. */
export function withDoctype (html: JSX.Element): JSX.Element {
  return typeof html === 'string' ? '<!doctype html>' + html : html.then((h) => '<!doctype html>' + h)
}

/**
 * Escapes a user-controlled attribute value completely (`&`, `<`, `"`, `'`).
 * @kitajs/html only escapes `"` in attributes, which is enough to stay inside the
 * quotes, but leaves `<script` visible in the markup and lets `&…;` references through.
 * The result contains no `"`, so @kitajs/html passes it unchanged (no double escaping).
 */
export function escAttr (value: string): string
export function escAttr (value: string | undefined): string | undefined
export function escAttr (value: string | undefined): string | undefined {
  return value === undefined ? undefined : escapeHtml(value)
}
