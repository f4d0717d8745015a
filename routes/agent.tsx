/**
 * Agent-style streams: text tokens, tool calls whose cards are updated out of
 * band when their result arrives, and errors as an error card. The source is
 * an `AgentSource` (plug in a real LLM); a deterministic offline simulator is
 * bundled (both in agent-runner.tsx, with the runner this module wires).
 * Every update is an unnamed event of out-of-band fragments (the format
 * htmx 2 and htmx 4 both apply); a run ends with the named `done`.
 * Two ways to stream a run:
 *  - per connection: `GET /stream?prompt=` → `reply.sse(signal => …)`; the run
 *    stops when the client leaves;
 *  - through the hub: `POST /runs` starts a run on its own topic
 *    (`agent:<id>`), so only the visitor who asked sees it (prompts are
 *    private; the topic is signed into that visitor's page) and its page
 *    `GET /runs/:id` renders its stored transcript and continues live, on any
 *    instance sharing the run store. htmx 4: the POST answers with the run's
 *    stream itself; htmx 2: with the run's live connect element. */
import { AgentError, AgentPanel } from '../views/agent.js'
import { Update } from '../views/fragments.js'
import { SSE_CLOSE_EVENT } from '../views/sse.js'
import { agentEvents, AgentRunner, AgentRunSnapshot, AgentRunsFullError, DONE_EVENT, RUN_ID, type AgentSource } from '../runs/agent-runner.js'
import type { RunStore } from '../runs/store.js'
// `app.runs` (the runs plugin's declaration merging).
import type {} from '../runs/plugin.js'
import { acceptForms, htmxScripts, isHtmx, RoutePage, routeModule, trimFields, wantsJson } from './util.js'

export interface AgentRoutesOptions {
  source?: AgentSource
  /** Topic of run `id` is `${topicPrefix}${id}`. Default 'agent:'. */
  topicPrefix?: string
  /** Where runs are kept (ignored with `runner`). Default: the runs plugin's store when it is registered (`app.runs.store`), else in this process. */
  store?: RunStore
  runner?: AgentRunner
}

/** The prompt of a run, checked after it is trimmed (querystring of the per-connection routes, body of `POST /runs`). */
const promptSchema = {
  type: 'object',
  required: ['prompt'],
  properties: { prompt: { type: 'string', minLength: 1, maxLength: 500 } }
} as const
const PROMPT_ERROR = 'prompt must be 1-500 characters'
/** The schema, trimmed first, invalid input left to the handler (which answers 400 or 422 in its own format). */
const promptRoute = { attachValidation: true, preValidation: trimFields('prompt') }
const runParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: RUN_ID.source } } } as const

const promptError = <p class='form-error' role='alert'>Write a prompt (at most 500 characters).</p>

/**
 * `GET /` standalone page (the same panel as the dashboard's), `GET /stream?prompt=`
 * one run over its own connection (stops when the client leaves),
 * `POST /runs` start a hub run (htmx 4: answered with its stream; htmx 2: with
 * its live connect element; JSON: 202 `{ id, url }`; plain form: 303 to its
 * page), `GET /runs/:id` a run's page (live while it runs).
 */
export const agentRoutes = routeModule<AgentRoutesOptions>('agent', async (app, options) => {
  const htmx = app.htmxSse.htmx
  const base = app.prefix
  // With the runs plugin registered, agent runs share its store unless told otherwise.
  const store = options.store ?? (app.hasDecorator('runs') ? app.runs.store : undefined)
  const runner = options.runner ?? new AgentRunner({ topicPrefix: options.topicPrefix, source: options.source, store })
  runner.hrefOf ??= id => `${base}/runs/${id}`
  const href = runner.hrefOf
  const source = options.source ?? runner.source
  runner.bind(app.sseHub, app.log)
  app.addHook('onClose', async () => await runner.close())
  await acceptForms(app)
  // The form swaps nothing itself (htmx 4: the answer is a stream); an htmx 2 answer is markup for its target.
  const markup: Record<string, string> = htmx === 2 ? { 'hx-reswap': 'innerHTML' } : {}

  app.get<{ Querystring: { prompt: string } }>('/stream', { ...promptRoute, schema: { querystring: promptSchema } }, (request, reply) => {
    if (request.validationError !== undefined) return reply.code(400).send({ error: PROMPT_ERROR })
    const { prompt } = request.query
    return reply.sse(signal => agentEvents(source, prompt, signal, { slotId: runner.slotId }))
  })

  app.post<{ Body: { prompt: string } }>('/runs', { ...promptRoute, schema: { body: promptSchema } }, async (request, reply) => {
    if (request.validationError !== undefined) {
      return wantsJson(request) ? reply.code(422).send({ error: PROMPT_ERROR }) : reply.code(422).headers(markup).html(promptError)
    }
    const { prompt } = request.body
    const runId = runner.newId()
    if (isHtmx(request.headers) && !wantsJson(request)) {
      if (htmx === 4) {
        // One request: the answer is the run's own stream, subscribed before the run starts.
        const stream = await reply.sse({ topics: [runner.topicOf(runId)], lastEventId: await app.sseHub.head() })
        await runner.start(prompt, runId).catch(async (err: unknown) => {
          // Too late for a status code: the error as the stream's content, then close.
          await stream.send(<Update id={runner.slotId}><AgentError message='Not started' detail={err instanceof Error ? err.message : String(err)} /></Update>)
          await stream.send(DONE_EVENT)
          stream.close()
        })
        return stream
      }
      // Before the run starts: its first event comes after the page's cursor.
      const live = await reply.live([runner.topicOf(runId)], { closeOn: SSE_CLOSE_EVENT })
      try {
        await runner.start(prompt, runId)
      } catch (err) {
        if (err instanceof AgentRunsFullError) return reply.code(503).header('retry-after', '5').send({ error: err.message })
        throw err
      }
      return reply.headers(markup).html(<>{live.element}</>)
    }
    try {
      await runner.start(prompt, runId)
    } catch (err) {
      if (err instanceof AgentRunsFullError) return reply.code(503).header('retry-after', '5').send({ error: err.message })
      throw err
    }
    const url = href(runId)
    if (wantsJson(request)) return reply.code(202).header('location', url).send({ id: runId, url })
    return reply.redirect(url, 303)
  })

  app.get<{ Params: { id: string } }>('/runs/:id', { schema: { params: runParams } }, async (request, reply) => {
    const view = await runner.view(request.params.id)
    if (view === undefined) return reply.code(404).html(<RoutePage title='Agent run'><main class='app'><p>No such run (the store keeps the newest {runner.maxRuns}).</p></main></RoutePage>)
    const { run } = view
    // Text chunks are appended, not idempotent: the page continues exactly
    // after the last entry it shows (read, with the head, before the entries).
    const live = await reply.live([runner.topicOf(request.params.id)], { closeOn: SSE_CLOSE_EVENT, since: view.cursor })
    return reply.html(
      <RoutePage title='Agent run' live={live}>
        <header class='app'><h1>Agent run</h1><a class='small' href={`${base}/`}>new run</a></header>
        <main class='app stack'>
          <section class='card agent-card'>
            <div id={runner.slotId} class='agent-slot'><AgentRunSnapshot run={run} /></div>
            {view.live ? live.element : ''}
          </section>
        </main>
      </RoutePage>
    )
  })

  app.get('/', async (_request, reply) => reply.html(
    <RoutePage title='Agent' live={htmxScripts(app)}>
      <header class='app'><h1>Agent</h1></header>
      <main class='app stack'>
        <AgentPanel action={`${base}/runs`} slotId={runner.slotId} />
      </main>
    </RoutePage>
  ))
})
