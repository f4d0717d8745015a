/**
 * Agent-style streams: text tokens, tool calls whose cards are updated out of
 * band when their result arrives, and errors as an error card. The source is
 * an `AgentSource` (plug in a real LLM); a deterministic offline simulator is
 * bundled (both in agent-runner.tsx, with the runner this module wires).
 * Every update is an unnamed event of out-of-band fragments (the format
 * htmx 2 and htmx 4 both apply); a run ends with the named `done`.
 * Two ways to stream a run:
 *  - per connection: `GET /stream?prompt=` → `reply.sse(signal => …)`; the run
 *    stops when the client leaves (the standalone page uses this);
 *  - through the hub: `POST /runs` starts a run on its own topic
 *    (`agent:<id>`), so only the visitor who asked sees it (prompts are
 *    private) and its page `GET /runs/:id` renders its stored transcript and
 *    continues live, on any instance sharing the run store. htmx 4: the
 *    POST answers with the run's stream itself; htmx 2: with a connect
 *    element for `GET /runs/:id/stream`.
 */
import { AgentError } from '../views/agent.js'
import { Oob, SSE_CLOSE_EVENT } from '../views/sse.js'
import { agentEvents, AgentRunner, AgentRunSnapshot, AgentRunsFullError, DONE_EVENT, RUN_ID, type AgentSource } from './agent-runner.js'
import type { RunStore } from './run-store.js'
import { acceptForms, htmxOf, isHtmx, pageCursor, PageConnect, RoutePage, routeModule, trimFields, wantsJson, type HtmxOption } from './util.js'

export interface AgentRoutesOptions extends HtmxOption {
  source?: AgentSource
  /** Topic of run `id` is `${topicPrefix}${id}`. Default 'agent:'. */
  topicPrefix?: string
  /** Where runs are kept (ignored with `runner`). Default: in this process. */
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
 * `GET /` standalone page (one connection per run: `GET /stream?prompt=`),
 * `GET /session?prompt=` the htmx 2 fragment that opens such a stream,
 * `POST /runs` start a hub run (htmx 4: answered with its stream; htmx 2: with
 * a connect element; JSON: 202 `{ id, url }`; plain form: 303 to its page),
 * `GET /runs/:id` a run's page, `GET /runs/:id/stream` its topic.
 */
export const agentRoutes = routeModule<AgentRoutesOptions>('agent', async (app, options) => {
  const htmx = htmxOf(options)
  const base = app.prefix
  const runner = options.runner ?? new AgentRunner({ topicPrefix: options.topicPrefix, source: options.source, store: options.store })
  runner.hrefOf ??= id => `${base}/runs/${id}`
  const href = runner.hrefOf
  const source = options.source ?? runner.source
  runner.bind(app.sseHub, app.log)
  app.addHook('onClose', async () => await runner.close())
  await acceptForms(app)

  app.get<{ Querystring: { prompt: string } }>('/stream', { ...promptRoute, schema: { querystring: promptSchema } }, (request, reply) => {
    if (request.validationError !== undefined) return reply.code(400).send({ error: PROMPT_ERROR })
    const { prompt } = request.query
    return reply.sse(signal => agentEvents(source, prompt, signal))
  })

  app.get<{ Querystring: { prompt: string } }>('/session', { ...promptRoute, schema: { querystring: promptSchema } }, async (request, reply) => {
    if (request.validationError !== undefined) return reply.code(422).html(promptError)
    return reply.html(<PageConnect app={app} htmx={2} url={`${base}/stream?prompt=${encodeURIComponent(request.query.prompt)}`} closeOn={SSE_CLOSE_EVENT} />)
  })

  app.post<{ Body: { prompt: string } }>('/runs', { ...promptRoute, schema: { body: promptSchema } }, async (request, reply) => {
    if (request.validationError !== undefined) {
      return wantsJson(request) ? reply.code(422).send({ error: PROMPT_ERROR }) : reply.code(422).html(promptError)
    }
    const { prompt } = request.body
    // Read before the run starts: its first event comes after this cursor.
    const cursor = await pageCursor(app.sseHub)
    if (htmx === 4 && isHtmx(request.headers) && !wantsJson(request)) {
      // One request: the answer is the run's own stream, subscribed before the run starts.
      const runId = runner.newId()
      const stream = await reply.sse({ topics: [runner.topicOf(runId)], lastEventId: cursor })
      await runner.start(prompt, runId).catch(async (err: unknown) => {
        // Too late for a status code: the error as the stream's content, then close.
        await stream.send(<Oob id={runner.slotId} swap='innerHTML'><AgentError message='Not started' detail={err instanceof Error ? err.message : String(err)} /></Oob>)
        await stream.send(DONE_EVENT)
        stream.close()
      })
      return stream
    }
    let runId: string
    try {
      runId = await runner.start(prompt)
    } catch (err) {
      if (err instanceof AgentRunsFullError) return reply.code(503).header('retry-after', '5').send({ error: err.message })
      throw err
    }
    const url = href(runId)
    if (wantsJson(request)) return reply.code(202).header('location', url).send({ id: runId, url })
    if (!isHtmx(request.headers)) return reply.redirect(url, 303)
    return reply.html(<PageConnect app={app} htmx={2} url={`${url}/stream`} lastEventId={cursor} closeOn={SSE_CLOSE_EVENT} />)
  })

  app.get<{ Params: { id: string } }>('/runs/:id/stream', { schema: { params: runParams } }, async (request, reply) => {
    const run = await runner.get(request.params.id)
    if (run === undefined) return reply.sse([{ ...DONE_EVENT, data: 'gone' }])
    return reply.sse({ topics: [runner.topicOf(run.id)] })
  })

  app.get<{ Params: { id: string } }>('/runs/:id', { schema: { params: runParams } }, async (request, reply) => {
    const view = await runner.view(request.params.id)
    if (view === undefined) return reply.code(404).html(<RoutePage app={app} htmx={htmx} title='Agent run'><main class='app'><p>No such run (the store keeps the newest {runner.maxRuns}).</p></main></RoutePage>)
    const { run } = view
    return reply.html(
      <RoutePage app={app} htmx={htmx} title='Agent run'>
        <header class='app'><h1>Agent run</h1><a class='small' href={`${base}/`}>new run</a></header>
        <main class='app stack'>
          <section class='card agent-card'>
            <div id={runner.slotId} class='agent-slot'><AgentRunSnapshot run={run} /></div>
            {view.live ? <PageConnect app={app} htmx={htmx} url={`${href(run.runId)}/stream`} lastEventId={view.cursor} closeOn={SSE_CLOSE_EVENT} /> : ''}
          </section>
        </main>
      </RoutePage>
    )
  })

  app.get('/', async (_request, reply) => {
    // htmx 4: the form's GET answers with the stream; htmx 2: it fetches a connect element (`/session`).
    const form = htmx === 4
      ? { 'hx-get': `${base}/stream`, 'hx-swap': 'none', 'hx-sse:close': SSE_CLOSE_EVENT, 'hx-disabled-elt': 'find button' }
      : { 'hx-get': `${base}/session`, 'hx-target': '#agent-session', 'hx-swap': 'innerHTML' }
    return reply.html(
      <RoutePage app={app} htmx={htmx} title='Agent'>
        <header class='app'><h1>Agent</h1></header>
        <main class='app stack'>
          <section class='card agent-card'>
            <p class='muted small'>Each run is its own SSE stream (<code>reply.sse(signal =&gt; …)</code>); closing the page stops the run.</p>
            <form class='row' {...form}>
              <input name='prompt' aria-label='Prompt' value='Is the server healthy?' maxlength='500' required />
              <button type='submit'>Run</button>
            </form>
            <div id='agent-session'></div>
            <div id='agent-session-run' class='agent-slot'></div>
          </section>
        </main>
      </RoutePage>
    )
  })
})
