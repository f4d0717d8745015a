/**
 * Signed topic lists for live pages (like Turbo's signed stream names): the
 * server that renders a page decides which topics it may receive, and the
 * stream route only trusts what it signed. A page cannot ask for another
 * user's `user:42` topic by editing its URL, so per-user topics need no
 * `authorize` function.
 *
 * Token: `v1.<htmx major><expiry, seconds, base 36>.<topics, base64url>.<HMAC-SHA256, base64url>`,
 * signed over everything before the last dot. Secrets rotate: the first signs,
 * every one verifies, so tokens already in open tabs stay valid while a new
 * secret is rolled out.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import { SseInvalidOptionError } from './errors.js'
import { topicsProblem } from './hub.js'

/** A secret, or several (rotation: the first signs, all verify). Strings and Buffers of at least 16 bytes. */
export type LiveSecret = string | Buffer | ReadonlyArray<string | Buffer>

export type HtmxMajor = 2 | 4

export interface LiveClaims {
  readonly topics: readonly string[]
  readonly htmx: HtmxMajor
  /** Expiry, ms since the epoch (whole seconds). */
  readonly expires: number
}

export type VerifyResult =
  | { readonly ok: true, readonly claims: LiveClaims }
  | { readonly ok: false, readonly expired: true, readonly claims: LiveClaims }
  | { readonly ok: false, readonly expired: false, readonly problem: string }

const MIN_SECRET_BYTES = 16
const VERSION = 'v1'
/** Upper bound on a token, far above 32 topics × 64 characters: a longer one is refused unread. */
const MAX_TOKEN_LENGTH = 4096

export function normalizeSecrets (secret: unknown): Buffer[] {
  const list = Array.isArray(secret) ? secret as unknown[] : [secret]
  if (list.length === 0) throw new SseInvalidOptionError('secret', 'must be a string, a Buffer, or a non-empty array of them (the first signs)')
  return list.map((s, i) => {
    const buf = typeof s === 'string' ? Buffer.from(s, 'utf8') : Buffer.isBuffer(s) ? s : undefined
    const which = list.length > 1 ? `secret[${i}]` : 'secret'
    if (buf === undefined) throw new SseInvalidOptionError(which, `must be a string or a Buffer, got ${s === null ? 'null' : typeof s}`)
    if (buf.length < MIN_SECRET_BYTES) throw new SseInvalidOptionError(which, `must be at least ${MIN_SECRET_BYTES} bytes (use a random value, e.g. crypto.randomBytes(32).toString('base64'))`)
    return Buffer.from(buf)
  })
}

function mac (key: Buffer, body: string): Buffer {
  return createHmac('sha256', key).update(body).digest()
}

export function signTopics (secrets: readonly Buffer[], claims: LiveClaims): string {
  const seconds = Math.ceil(claims.expires / 1000)
  const body = `${VERSION}.${claims.htmx}${seconds.toString(36)}.${Buffer.from(claims.topics.join(','), 'utf8').toString('base64url')}`
  return `${body}.${mac(secrets[0]!, body).toString('base64url')}`
}

/** Checks a token's signature first, then its claims; expiry last, so an expired token is still known to be ours. */
export function verifyTopics (secrets: readonly Buffer[], token: unknown, now = Date.now()): VerifyResult {
  if (typeof token !== 'string' || token === '') return { ok: false, expired: false, problem: 'missing live token' }
  if (token.length > MAX_TOKEN_LENGTH) return { ok: false, expired: false, problem: 'live token too long' }
  const dot = token.lastIndexOf('.')
  const body = token.slice(0, dot)
  const given = Buffer.from(token.slice(dot + 1), 'base64url')
  if (dot < 0 || given.length !== 32 || !secrets.some(key => timingSafeEqual(mac(key, body), given))) {
    return { ok: false, expired: false, problem: 'live token signature does not match (tampered, or signed with another secret)' }
  }
  const [version, head, topicsPart, extra] = body.split('.')
  if (version !== VERSION || head === undefined || topicsPart === undefined || extra !== undefined) return { ok: false, expired: false, problem: 'unknown live token format' }
  const htmx = Number(head[0])
  const seconds = parseInt(head.slice(1), 36)
  const topics = Buffer.from(topicsPart, 'base64url').toString('utf8').split(',')
  if ((htmx !== 2 && htmx !== 4) || !Number.isSafeInteger(seconds) || topicsProblem(topics) !== undefined) {
    return { ok: false, expired: false, problem: 'malformed live token' }
  }
  const claims: LiveClaims = { topics, htmx, expires: seconds * 1000 }
  if (claims.expires <= now) return { ok: false, expired: true, claims }
  return { ok: true, claims }
}
