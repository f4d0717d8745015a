/**
 * Checks of what a Redis user (the hub's transport, the run store) is given:
 * an ioredis client it can use, and its own options. One message format for
 * both, under HTMX_SSE_INVALID_OPTION.
 */
import type { Redis } from 'ioredis'
import { SseInvalidOptionError } from '../errors.js'

/** Who is being configured, for the messages: `owner` names it (`redisTransport`), `noun` says what it is (`transport`). */
export interface RedisUser {
  owner: string
  noun: string
}

/**
 * The client, if it is one the call layer can use: an ioredis client (it
 * runs scripts, signals 'ready' and can be duplicated), without `keyPrefix`:
 * ioredis adds it to the keys it knows of, not to the keys a script builds
 * from its arguments, so some keys would carry it and others not. The
 * user's own `prefix` option names every key instead.
 */
export function checkClient (redis: unknown, user: RedisUser): Redis {
  const r = redis as Partial<Redis> | null
  if (r === null || typeof r !== 'object' || typeof r.evalsha !== 'function' || typeof r.eval !== 'function' ||
      typeof r.once !== 'function' || typeof r.duplicate !== 'function') {
    throw new SseInvalidOptionError(`redis (${user.owner})`, 'must be an ioredis client (new Redis(url))')
  }
  if (typeof r.options?.keyPrefix === 'string' && r.options.keyPrefix !== '') {
    throw new SseInvalidOptionError(`redis (${user.owner})`, `is an ioredis client with keyPrefix set; use the ${user.noun} option prefix instead`)
  }
  return r as Redis
}

export function prefixOption (user: RedisUser, value: unknown, fallback: string): string {
  const prefix = value ?? fallback
  if (typeof prefix !== 'string' || prefix === '' || /\s/.test(prefix)) throw new SseInvalidOptionError(`prefix (${user.owner})`, 'must be a non-empty string without spaces')
  return prefix
}

export function intOption (user: RedisUser, name: string, value: number | undefined, fallback: number, min = 0): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < min) throw new SseInvalidOptionError(`${name} (${user.owner})`, `must be an integer >= ${min}, got ${String(value)}`)
  return value
}
