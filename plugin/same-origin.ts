/**
 * Cross-site request forgery guard for state-changing requests (anything but
 * GET, HEAD, OPTIONS): a browser request from another site (an attacker's
 * auto-submitted form, a `no-cors` fetch) carries `Sec-Fetch-Site:
 * cross-site` or an `Origin` that is not ours, and is refused with a 403
 * before its body is read. Requests without either header (curl, scripts,
 * old browsers on same-origin forms) are not browser cross-site requests
 * and pass. No token, no cookie: every browser htmx runs in sends these headers.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

export interface SameOriginOptions {
  /** Other origins allowed to post (e.g. `https://admin.example.com`), exactly as browsers send them. */
  trustedOrigins?: readonly string[]
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])
const SAME = new Set(['same-origin', 'none'])

/** Why a request is a cross-origin state-changing one, or undefined when it may go on. */
export function crossOriginProblem (request: FastifyRequest, trusted: readonly string[] = []): string | undefined {
  if (SAFE_METHODS.has(request.method)) return undefined
  const site = request.headers['sec-fetch-site']
  if (typeof site === 'string' && !SAME.has(site)) return `Sec-Fetch-Site: ${site}`
  const origin = request.headers.origin
  if (origin === undefined) return undefined
  if (trusted.includes(origin)) return undefined
  if (origin === 'null') return 'an opaque origin'
  let parsed: URL
  try { parsed = new URL(origin) } catch { return 'a malformed Origin' }
  const own = `${request.protocol}://${request.host}`
  return parsed.origin === own ? undefined : 'another origin'
}

/** An `onRequest` hook that refuses cross-origin state-changing requests with a 403. */
export function sameOriginHook (options: SameOriginOptions = {}): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  const trusted = options.trustedOrigins ?? []
  return async (request, reply) => {
    const problem = crossOriginProblem(request, trusted)
    if (problem === undefined) return
    request.log.warn({ origin: request.headers.origin, site: request.headers['sec-fetch-site'] }, 'refused a cross-origin state-changing request')
    await reply.code(403).send({ statusCode: 403, error: 'Forbidden', message: `cross-origin request refused (${problem})` })
  }
}

/**
 * The guard for a whole app (or the scope it is registered in, with
 * `encapsulate`): `await app.register(sameOrigin)`. The route modules apply
 * it to their own routes already.
 */
export const sameOrigin = fp<SameOriginOptions>(async (app, options) => {
  app.addHook('onRequest', sameOriginHook(options))
}, { fastify: '5.x', name: 'fastify-htmx-sse/routes/same-origin' })

export type SameOriginPlugin = FastifyPluginAsync<SameOriginOptions>
