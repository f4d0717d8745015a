/**
 * Every error the plugin throws or answers with, made by @fastify/error so
 * callers match on `err.code` (stable) instead of on a message (not).
 * Errors about a caller's own input keep a built-in base class as well
 * (`TypeError`, `RangeError`), so `instanceof TypeError` still holds.
 */
import createError from '@fastify/error'

/** An event field that cannot be written (CR/LF in a name or id, a bad retry, data that is not a string). */
export const SseInvalidEventError = createError('HTMX_SSE_INVALID_EVENT', '%s', 500, TypeError)

/** An event whose encoded frame is larger than `maxBufferedBytes`: no subscriber could ever take it. */
export const SseEventTooLargeError = createError('HTMX_SSE_EVENT_TOO_LARGE', 'SSE event is %d bytes encoded, more than maxBufferedBytes (%d): no subscriber could receive it', 500, RangeError)

/** `reply.sse(arg)` with something that is neither a source nor `{ topics }`. */
export const SseInvalidSourceError = createError('HTMX_SSE_INVALID_SOURCE', 'reply.sse(arg): %s', 500, TypeError)

/** `reply.sse()` on a reply that was already sent. */
export const SseAlreadySentError = createError('HTMX_SSE_ALREADY_SENT', 'reply.sse(): the reply was already sent', 500)

/** A topic list that is not 1–32 valid topic names (answered as a 400 before any stream byte). */
export const SseInvalidTopicsError = createError('HTMX_SSE_INVALID_TOPICS', '%s', 400, TypeError)

/** `authorize` said no (403 before any stream byte). */
export const SseForbiddenError = createError('HTMX_SSE_FORBIDDEN', 'not authorized for these topics', 403)

/** `authorize` did not answer within `authorizeTimeoutMs` (503 with Retry-After). */
export const SseAuthorizeTimeoutError = createError('HTMX_SSE_AUTHORIZE_TIMEOUT', 'authorization did not answer within %d ms', 503)

/** `maxConnections` or `maxConnectionsPerIp` reached (503 with Retry-After). */
export const SseTooManyConnectionsError = createError('HTMX_SSE_TOO_MANY_CONNECTIONS', '%s', 503)

/** A stream requested while the app is closing (503 with Retry-After). */
export const SseShuttingDownError = createError('HTMX_SSE_SHUTTING_DOWN', 'server is shutting down', 503)

/** The reason of an aborted `stream.signal`: the stream ended (`reason` says why). */
export const SseClosedError = createError('HTMX_SSE_CLOSED', 'SSE stream closed (%s)', 500)

/** `publish()` after the app closed, or one that was still waiting for Redis's connection when it closed: not applied. */
export const SseHubClosedError = createError('HTMX_SSE_HUB_CLOSED', 'sseHub is closed', 500)

/**
 * Redis could not be reached in time (or refused the command); the publish was not applied unless the message says "not confirmed".
 * The Redis run store's outage (HTMX_SSE_RUN_STORE_UNAVAILABLE) is a subclass: `instanceof` this holds for both.
 */
export const SseRedisUnavailableError = createError('HTMX_SSE_REDIS_UNAVAILABLE', 'redis unavailable: %s', 503)

/**
 * Redis could not be reached in time (or the connection failed); a write
 * that was "not confirmed" may have been applied just before its deadline.
 * Its own code, which apps may already match; `instanceof
 * errors.SseRedisUnavailableError` holds too, like the transport's outage.
 */
// @fastify/error types its Base as ErrorConstructor; at runtime any constructor works (its prototype is the base).
export const SseRunStoreUnavailableError = createError('HTMX_SSE_RUN_STORE_UNAVAILABLE', 'run store: redis unavailable: %s', 503, SseRedisUnavailableError as unknown as ErrorConstructor)

/** A plugin option (or `reply.live` option) that cannot be used; thrown at registration or at the call. */
export const SseInvalidOptionError = createError('HTMX_SSE_INVALID_OPTION', 'fastify-htmx-sse: option %s %s', 500, TypeError)

/** A live page's stream URL whose signed topic list is missing, tampered with, or signed with an unknown secret (403 before any byte). */
export const SseInvalidTokenError = createError('HTMX_SSE_INVALID_TOKEN', '%s', 403)

/** An optional peer dependency that a feature needs is not installed (e.g. `systeminformation` for the metrics sampler). */
export const SseMissingPeerError = createError<'HTMX_SSE_MISSING_PEER', 500, [string, string, string, { cause: unknown }?]>('HTMX_SSE_MISSING_PEER', '%s needs the optional peer dependency %s: npm install %s', 500)

/** A component prop that cannot be rendered (a bad id, limit, URL or event name): thrown at render, before any markup. */
export const SseInvalidPropError = createError('HTMX_SSE_INVALID_PROP', '%s', 500, TypeError)

/** Redis answered a command with an error (a key of another type under the prefix, a script error): not an outage. */
export const SseRedisError = createError<'HTMX_SSE_REDIS_ERROR', 500, [string, { cause: unknown }?]>('HTMX_SSE_REDIS_ERROR', '%s', 500)

/** A runner used before its route module bound it to the app (or after close). */
export const SseNotReadyError = createError('HTMX_SSE_NOT_READY', '%s', 500)

/** A `fastify-htmx-sse/testing` wait (`next()`, an iteration step) that saw no matching event in time. */
export const SseTestTimeoutError = createError('HTMX_SSE_TEST_TIMEOUT', '%s', 500)

/** `openStream()` (`fastify-htmx-sse/testing`) on a URL that answered neither a stream nor a page with a connect element. */
export const SseTestStreamError = createError('HTMX_SSE_TEST_STREAM', '%s', 500)

/** A run's kind, title, progress, label, log entry or result that cannot be stored (`runs.start`, `run.progress`, `run.append`): thrown at the call. */
export const SseInvalidRunValueError = createError('HTMX_SSE_INVALID_RUN_VALUE', '%s', 500, TypeError)

/** `run.progress()` or `run.append()` after the run's work function returned or threw: the run is over. */
export const SseRunEndedError = createError('HTMX_SSE_RUN_ENDED', '%s', 500)

/** `runs.start()` when every kept run of its kind is still running (`maxRuns`): answered as a 503. */
export const SseRunsFullError = createError('HTMX_SSE_RUNS_FULL', 'runs: all %d kept runs of kind %s are running', 503)

/** The reason of a run's aborted `signal`: cancelled, the app closing, or the run no longer this instance's (the message says which). */
export const SseRunAbortedError = createError('HTMX_SSE_RUN_ABORTED', 'run %s', 500)

/**
 * What a dynamic import of an optional peer rejected with: the coded error
 * when the package itself is missing, anything else as it was.
 */
export function missingPeer (err: unknown, peer: string, feature: string): unknown {
  const code = (err as { code?: unknown } | null)?.code
  const missing = (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && err instanceof Error && err.message.includes(`'${peer}'`)
  return missing ? new SseMissingPeerError(feature, peer, peer, { cause: err }) : err
}

/** All of the above, by name: `err instanceof errors.SseForbiddenError`, or match `err.code`. */
export const errors = {
  SseInvalidEventError,
  SseEventTooLargeError,
  SseInvalidSourceError,
  SseAlreadySentError,
  SseInvalidTopicsError,
  SseForbiddenError,
  SseAuthorizeTimeoutError,
  SseTooManyConnectionsError,
  SseShuttingDownError,
  SseClosedError,
  SseHubClosedError,
  SseRedisUnavailableError,
  SseInvalidOptionError,
  SseInvalidTokenError,
  SseMissingPeerError,
  SseInvalidPropError,
  SseRedisError,
  SseNotReadyError,
  SseTestTimeoutError,
  SseTestStreamError,
  SseInvalidRunValueError,
  SseRunEndedError,
  SseRunsFullError,
  SseRunAbortedError,
  SseRunStoreUnavailableError
} as const
