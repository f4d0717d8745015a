/**
 * The `runs` plugin: `app.runs` (start, get, cancel the app's own work
 * functions as stored runs) and their pages, under `path` (default '/runs'):
 *
 * - `GET <path>/:kind/:id`: the run's page (`RunDetail`), live while its
 *   stored status is running (on whichever instance renders it), static
 *   otherwise; with `Accept: application/json`, the run as JSON (`Run`);
 * - `POST <path>/:kind/:id/cancel`: cancels it (form: 303 back to the page;
 *   htmx: 204/202; JSON: 200/202 `{ id, result }`; 409 when it is not
 *   running, 404 when there is no such run).
 *
 * There is no list route: run ids are what let a visitor see and cancel a
 * run, and a list of every run of a kind would hand them to everyone. A page
 * of the app's own lists them (`app.runs.recent(kind)` and `RunList`).
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { SSE_CLOSE_EVENT } from '../views/sse.js'
import { Layout } from '../views/layout.js'
import { RunDetail } from '../views/run.js'
import { SseInvalidOptionError } from '../plugin/errors.js'
import { onlyKnown, REGISTER_KEYS } from '../plugin/options.js'
import { formsAndAccepts, isHtmx, pageScope, wantsJson } from '../plugin/pages.js'
import { KIND, RUN_ID, type Run } from './run.js'
import { RunsService, type RunsServiceOptions } from './service.js'

export interface RunsOptions extends RunsServiceOptions {
  /** Where run pages are served. Default '/runs'. */
  path?: string
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Runs of the app's own work functions (`fastify-htmx-sse/runs`): `app.runs.start(kind, async (run, signal) => …, { title })`. */
    runs: RunsService
  }
}

const params = {
  type: 'object',
  required: ['kind', 'id'],
  properties: { kind: { type: 'string', pattern: KIND.source }, id: { type: 'string', pattern: RUN_ID.source } }
} as const
type Params = { Params: { kind: string, id: string } }

const PATH = /^(\/[A-Za-z0-9._~-]+)+$/

const OPTION_KEYS = Object.keys({ store: 0, owner: 0, maxRuns: 0, leaseMs: 0, sweepMs: 0, path: 0 } satisfies Record<keyof RunsOptions, 0>)

const runsPlugin: FastifyPluginAsync<RunsOptions> = async (app, options) => {
  onlyKnown(options, [...OPTION_KEYS, ...REGISTER_KEYS], 'runs')
  const path = options.path ?? '/runs'
  if (typeof path !== 'string' || !PATH.test(path)) throw new SseInvalidOptionError('path (runs)', `must be a path like '/runs', got ${JSON.stringify(path)}`)
  const service = new RunsService(app.sseHub, app.log, path, options)
  app.decorate('runs', service)
  app.addHook('onClose', async () => await service.close())
  // The pages in a scope of their own: their parsers, hooks and error handler stay there.
  await app.register(async scope => {
    await pageScope(scope)
    await formsAndAccepts(scope)
    scope.get<Params>('/:kind/:id', { schema: { params } }, async (request, reply) => await page(scope, request, reply))
    scope.post<Params>('/:kind/:id/cancel', { schema: { params } }, async (request, reply) => await cancel(scope, request, reply))
  }, { prefix: path })
}

/** 404 in the format asked for. */
function missing (request: FastifyRequest, reply: FastifyReply): unknown {
  if (wantsJson(request)) return reply.code(404).send({ error: 'no such run' })
  return reply.code(404).html(<Layout title='No such run'><main class='app'><p class='card'>No such run (or it was dropped: the store keeps the newest of each kind).</p></main></Layout>)
}

async function page (app: FastifyInstance, request: FastifyRequest<Params>, reply: FastifyReply): Promise<unknown> {
  const { kind, id } = request.params
  if (wantsJson(request)) {
    const run = await app.runs.get(kind, id)
    return run === undefined ? missing(request, reply) : reply.send(json(run))
  }
  // Live first, then the state: whatever is published after its cursor is
  // replayed on connect, and every update is idempotent (the bar and the row
  // are replaced, log entries carry their index), so replaying one the page
  // already shows is harmless. A finished run renders static.
  const live = await reply.live([app.runs.topicOf(kind, id)], { closeOn: SSE_CLOSE_EVENT })
  const run = await app.runs.get(kind, id)
  if (run === undefined) return missing(request, reply)
  return reply.html(
    <Layout title={run.title} live={live}>
      <main class='app stack'>
        <RunDetail run={run} live={live.element} cancel={`${run.url}/cancel`} />
      </main>
    </Layout>
  )
}

/**
 * Of concurrent cancels of one run exactly one is accepted: 200 (JSON; htmx
 * 204) when this instance ran it and the cancel is stored, 202 when it is
 * accepted but not final yet (another instance runs it and stops it at its
 * next renewal, or the store did not answer and it is stored once it does).
 * The others get what a retry would: 409 with the run's status, or "cancel
 * already requested".
 */
async function cancel (app: FastifyInstance, request: FastifyRequest<Params>, reply: FastifyReply): Promise<unknown> {
  const outcome = await app.runs.cancel(request.params.kind, request.params.id)
  if (outcome.result === 'unknown') return reply.code(404).send({ error: 'no such run' })
  if (outcome.result === 'not-running') return reply.code(409).send({ error: `run is ${outcome.run.status}` })
  if (outcome.result === 'already-requested') return reply.code(409).send({ error: 'cancel already requested' })
  const final = outcome.result === 'cancelled'
  if (isHtmx(request.headers)) return reply.code(final ? 204 : 202).send()
  if (wantsJson(request)) return reply.code(final ? 200 : 202).send({ id: outcome.run.id, result: outcome.result })
  return reply.redirect(outcome.run.url, 303)
}

/** The JSON of a run: every field, `null` for what it does not have yet. */
function json (run: Run): Record<string, unknown> {
  const { id, kind, title, status, progress, label, entries, result, error, startedAt, finishedAt, url } = run
  return { id, kind, title, status, progress, label: label ?? null, entries, result: result ?? null, error: error ?? null, startedAt, finishedAt: finishedAt ?? null, url }
}

/**
 * Registers `app.runs` and the run pages. After the core plugin (a clear
 * error otherwise): `await app.register(htmxSse, …); await app.register(runs)`.
 */
export const runs = fp(runsPlugin, { fastify: '5.x', name: 'fastify-htmx-sse/runs', dependencies: ['fastify-htmx-sse'] })
