/**
 * What the package's own page-serving plugins share (the route modules in
 * routes/ and the run pages of `fastify-htmx-sse/runs`): their scope's
 * `reply.html()`, form bodies and content negotiation, the cross-origin guard
 * on state-changing requests, and a clean 503 for "try again" errors.
 */
import fastifyAccepts from '@fastify/accepts'
import fastifyFormbody from '@fastify/formbody'
import { fastifyKitaHtml } from '@kitajs/fastify-html-plugin'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { sameOriginHook } from './same-origin.js'

/**
 * Sets up a page-serving scope: `reply.html()` (unless the app has it), the
 * same-origin guard (forms of other sites must not change state here: CSRF),
 * and the 503 handler.
 */
export async function pageScope (app: FastifyInstance): Promise<void> {
  if (!app.hasReplyDecorator('html')) await app.register(fastifyKitaHtml)
  app.addHook('onRequest', sameOriginHook())
  app.setErrorHandler(unavailableHandler)
}

/** Urlencoded bodies (`@fastify/formbody`, 16 KiB) and `request.accepts()` (`@fastify/accepts`), in this scope unless the app already has them. */
export async function formsAndAccepts (app: FastifyInstance): Promise<void> {
  if (!app.hasContentTypeParser('application/x-www-form-urlencoded')) await app.register(fastifyFormbody, { bodyLimit: 16 * 1024 })
  if (!app.hasRequestDecorator('accepts')) await app.register(fastifyAccepts)
}

/**
 * A 503 from the hub (Redis unavailable, connection limits, shutdown) or the
 * run store (unreachable) is a clean "try again" with Retry-After, not the
 * internal message; every other error goes on to the app's error handler.
 */
export function unavailableHandler (this: FastifyInstance, err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  // The run store's outage (RedisRunStore) is the same kind of "try again".
  if (err.statusCode !== 503 && err.code !== 'HTMX_SSE_RUN_STORE_UNAVAILABLE') throw err
  if (reply.getHeader('retry-after') === undefined) reply.header('retry-after', '2')
  request.log.warn({ code: err.code, reason: err.message }, 'service unavailable')
  void reply.code(503).send({ statusCode: 503, error: 'Service Unavailable', message: 'temporarily unavailable, try again in a moment' })
}

/**
 * Whether to answer JSON: when the client prefers `application/json` to
 * `text/html` in `Accept`. A client that takes both alike (a wildcard Accept,
 * or none, as curl and fetch send) gets the format it posted: JSON for a JSON
 * body, HTML for a form or no body.
 */
export function wantsJson (request: FastifyRequest): boolean {
  const sentJson = request.headers['content-type']?.startsWith('application/json') === true
  return request.accepts().type(sentJson ? ['json', 'html'] : ['html', 'json']) === 'json'
}

/** True for requests made by htmx (`HX-Request: true`). */
export function isHtmx (headers: Record<string, unknown>): boolean {
  return headers['hx-request'] === 'true'
}
