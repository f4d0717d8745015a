/**
 * What the LLM SDK adapters share: an error's message as a run's transcript
 * may show it (to anyone who can open the run's page), and their options check.
 */
import { SseInvalidOptionError } from '../plugin/errors.js'

/** A count option (steps, tokens): a whole number ≥ 1, or its default when absent. */
export function countOption (value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (!Number.isInteger(value) || value < 1) throw new SseInvalidOptionError(name, `must be a whole number ≥ 1, got ${String(value)}`)
  return value
}

/** Longest message kept: an error body can be a whole HTML page from a proxy. */
const MAX_MESSAGE = 300

/**
 * Key-like tokens (`sk-…`, `sk-ant-…`, a bearer token): an API's error text
 * can quote part of the key it refused, and a transcript is stored and shown.
 */
const SECRET = /\b(?:sk-[A-Za-z0-9_-]{6,}|Bearer\s+[A-Za-z0-9._~+/=-]+)/g

export function redactSecrets (text: string): string {
  return text.replace(SECRET, '[redacted]')
}

/**
 * An error's message for the transcript: the provider's own explanation and
 * type when it has them (status, type, message), never the request, its URL,
 * headers or body, capped in length.
 */
export function describeError (err: unknown, provider: string): string {
  const e = (typeof err === 'object' && err !== null ? err : {}) as {
    status?: unknown, statusCode?: unknown, type?: unknown, apiMessage?: unknown, message?: unknown
  }
  const status = typeof e.status === 'number' ? e.status : typeof e.statusCode === 'number' ? e.statusCode : undefined
  const type = typeof e.type === 'string' && e.type !== '' ? e.type : undefined
  const message = typeof e.apiMessage === 'string' && e.apiMessage !== ''
    ? e.apiMessage
    : typeof e.message === 'string' && e.message !== '' ? e.message : typeof err === 'string' ? err : 'unknown error'
  const head = [status, type === undefined ? undefined : `(${type})`].filter(x => x !== undefined).join(' ')
  const text = `${provider} error${head === '' ? '' : ` ${head}`}: ${redactSecrets(message)}`
  return text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE - 1)}…` : text
}
