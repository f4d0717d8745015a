/**
 * Agent-style streams: text tokens, tool calls whose cards are updated out of
 * band when their result arrives, and errors as an error card. The source is
 * an `AgentSource` (plug in a real LLM); a deterministic offline simulator is
 * bundled. Every update is an unnamed event of out-of-band fragments (the
 * format htmx 2 and htmx 4 both apply); a run ends with the named `done`.
 * Two ways to stream a run:
 *  - per connection: `GET /stream?prompt=` → `reply.sse(signal => …)`; the run
 *    stops when the client leaves (the standalone page uses this);
 *  - through the hub: `POST /runs` starts a run on its own topic
 *    (`agent:<id>`), so only the visitor who asked sees it (prompts are
 *    private) and its page `GET /runs/:id` renders it so far and continues
 *    live. htmx 4: the POST answers with the run's stream itself; htmx 2: with
 *    a connect element for `GET /runs/:id/stream`.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { parseId, type SseEvent, type SseHub } from '../plugin/index.js'
import {
  AgentError, AgentStatus, AgentTranscript, MessageChunk, Oob, SSE_CLOSE_EVENT, swap422, ToolResult, ToolUseCard,
  type AgentItem, type AgentState, type HtmxVersion
} from '../views/index.js'
import { acceptForms, htmxOf, isHtmx, pageCursor, PageConnect, RoutePage, routeModule, trimFields, wantsJson, type HtmxOption } from './util.js'

/** What an agent emits. Map your LLM SDK's stream onto this. */
export type AgentEvent =
  | { type: 'text', text: string }
  | { type: 'tool_use', id: string, name: string, input: unknown }
  | { type: 'tool_result', id: string, output: unknown, isError?: boolean }
  | { type: 'done' }
  | { type: 'error', message: string }

/** Runs a prompt. Must stop (return or throw) soon after `signal` aborts. */
export interface AgentSource {
  run: (prompt: string, signal: AbortSignal) => AsyncIterable<AgentEvent>
}

export interface SimulatedAgentOptions {
  /** Delay between text tokens. Default 35 ms. */
  tokenMs?: number
  /** Time a tool takes. Default 700 ms. */
  toolMs?: number
  /** Time before the first token. Default 400 ms. */
  thinkMs?: number
}

/** Words and the whitespace between them as separate tokens, as LLM streams send them. */
function tokens (text: string): string[] {
  return text.match(/\S+|\s+/g) ?? []
}

/**
 * Holds whitespace-only text tokens and sends them with the next text (or at
 * the end), so no event carries only whitespace: htmx 4 drops a
 * whitespace-only swap, and a space between two words would be lost.
 */
export async function * coalesceWhitespace (events: AsyncIterable<AgentEvent>): AsyncGenerator<AgentEvent> {
  let pending = ''
  for await (const ev of events) {
    if (ev.type === 'text') {
      if (ev.text.trim() === '') {
        pending += ev.text
        continue
      }
      yield pending === '' ? ev : { type: 'text', text: pending + ev.text }
      pending = ''
      continue
    }
    if (pending !== '' && (ev.type === 'done' || ev.type === 'error')) {
      yield { type: 'text', text: pending }
      pending = ''
    }
    yield ev
  }
  if (pending !== '') yield { type: 'text', text: pending }
}

/**
 * A deterministic offline agent: no network, same output for the same prompt.
 * It "checks" metrics and docs with two tools, then answers. A prompt that
 * contains "fail" makes the second tool call fail with an upstream error.
 */
export function simulatedAgent (options: SimulatedAgentOptions = {}): AgentSource {
  const tokenMs = options.tokenMs ?? 35
  const toolMs = options.toolMs ?? 700
  const thinkMs = options.thinkMs ?? 400
  return {
    async * run (prompt, signal) {
      const say = async function * (text: string): AsyncGenerator<AgentEvent> {
        for (const t of tokens(text)) {
          await sleep(tokenMs, undefined, { signal })
          yield { type: 'text', text: t }
        }
      }
      const topic = prompt.trim().slice(0, 120) || 'the system'
      await sleep(thinkMs, undefined, { signal })
      yield * say(`Let me look at the live metrics and the runbook before answering “${topic}”. `)
      yield { type: 'tool_use', id: 'call_1', name: 'get_metrics', input: { metrics: ['cpu', 'memory', 'load'], window: '1m' } }
      await sleep(toolMs, undefined, { signal })
      yield { type: 'tool_result', id: 'call_1', output: { cpu_avg_pct: 23.4, cpu_peak_pct: 61.2, memory_used_pct: 41.8, load_1m: 0.92 } }
      yield * say('CPU averaged 23.4% over the last minute (peak 61.2%) and memory sits at 41.8%, so there is headroom. ')
      yield { type: 'tool_use', id: 'call_2', name: 'search_runbook', input: { query: topic, limit: 2 } }
      await sleep(toolMs, undefined, { signal })
      if (/fail/i.test(prompt)) {
        yield { type: 'tool_result', id: 'call_2', output: 'runbook service returned 503 Service Unavailable', isError: true }
        yield { type: 'error', message: 'The runbook search failed (503), so I stopped here instead of guessing.' }
        return
      }
      yield { type: 'tool_result', id: 'call_2', output: [{ title: 'Scaling the web tier', score: 0.82 }, { title: 'When load exceeds cores', score: 0.77 }] }
      yield * say('The runbook says to scale out only when the 5-minute load stays above the core count. ')
      yield * say('It does not, so no action is needed right now; I will keep watching the dashboard.')
      yield { type: 'done' }
    }
  }
}

// ── rendering ────────────────────────────────────────────────────────────

/** The state of one run, folded from its events. */
export class RunState {
  items: AgentItem[] = []
  state: AgentState = 'thinking'
  status = 'Thinking…'
  readonly #tools = new Map<string, number>()

  constructor (readonly runId: string, readonly prompt: string) {}

  get domId (): string { return `agent-${this.runId}` }

  toolDomId (id: string): string {
    let n = this.#tools.get(id)
    if (n === undefined) this.#tools.set(id, n = this.#tools.size + 1)
    return `${this.domId}-tool-${n}`
  }

  get finished (): boolean {
    return this.state === 'done' || this.state === 'error' || this.state === 'cancelled'
  }

  /** Applies one event; returns the out-of-band fragments that bring a page from the old state to the new. */
  apply (ev: AgentEvent | { type: 'cancelled' }): JSX.Element {
    const out = `${this.domId}-output`
    const before = this.state
    let fragment: JSX.Element = ''
    switch (ev.type) {
      case 'text': {
        const last = this.items[this.items.length - 1]
        if (last?.kind === 'text') last.text += ev.text
        else this.items.push({ kind: 'text', text: ev.text })
        this.state = 'streaming'
        this.status = 'Writing…'
        fragment = <Oob id={out} swap='beforeend'><MessageChunk text={ev.text} /></Oob>
        break
      }
      case 'tool_use': {
        const domId = this.toolDomId(ev.id)
        this.items.push({ kind: 'tool', domId, name: ev.name, input: ev.input, done: false })
        this.state = 'tool'
        this.status = `Calling ${ev.name}…`
        fragment = <Oob id={out} swap='beforeend'><ToolUseCard id={domId} name={ev.name} input={ev.input} /></Oob>
        break
      }
      case 'tool_result': {
        const domId = this.toolDomId(ev.id)
        const tool = this.items.find((i): i is Extract<AgentItem, { kind: 'tool' }> => i.kind === 'tool' && i.domId === domId)
        if (tool !== undefined) Object.assign(tool, { output: ev.output, isError: ev.isError === true, done: true })
        this.state = 'thinking'
        this.status = 'Reading the result…'
        fragment = <ToolResult id={domId} output={ev.output} isError={ev.isError === true} />
        break
      }
      case 'error':
        this.items.push({ kind: 'error', message: ev.message })
        this.state = 'error'
        this.status = 'Failed'
        fragment = <Oob id={out} swap='beforeend'><AgentError message='Agent error' detail={ev.message} /></Oob>
        break
      case 'done':
        this.state = 'done'
        this.status = 'Done'
        break
      case 'cancelled':
        this.state = 'cancelled'
        this.status = 'Cancelled'
        break
    }
    const changed = before !== this.state || ev.type === 'tool_use' || ev.type === 'tool_result'
    return changed ? <>{fragment}<Oob id={`${this.domId}-state`} swap='innerHTML'><AgentStatus id={`${this.domId}-status`} state={this.state} text={this.status} /></Oob></> : fragment
  }
}

/** A whole run as it stands (the page render, and the body of a run's first event). */
export function AgentRunSnapshot (props: { run: RunState, href?: string }): JSX.Element {
  const { run } = props
  return <AgentTranscript id={run.domId} prompt={run.prompt} state={run.state} status={run.status} items={run.items} href={props.href} />
}

/** The first event of a run: its skeleton, into the page's run slot. */
function startFragment (slotId: string, run: RunState, href?: string): JSX.Element {
  return <Oob id={slotId} swap='innerHTML'><AgentRunSnapshot run={run} href={href} /></Oob>
}

/** The event that ends a run's stream (`sse-close` / `hx-sse:close`); it carries data, or EventSource would drop it. */
const DONE_EVENT: SseEvent = { event: SSE_CLOSE_EVENT, data: 'end' }

/**
 * Turns a source's run into SSE events for one connection (`reply.sse(signal => …)`):
 * the run skeleton into `#slotId`, then out-of-band updates, then `done`.
 */
export async function * agentEvents (
  source: AgentSource, prompt: string, signal: AbortSignal,
  options: { runId?: string, slotId?: string } = {}
): AsyncGenerator<SseEvent> {
  const run = new RunState(options.runId ?? newRunId(), prompt)
  yield { data: startFragment(options.slotId ?? 'agent-session-run', run) }
  try {
    for await (const ev of coalesceWhitespace(source.run(prompt, signal))) {
      yield { data: run.apply(ev) }
      if (ev.type === 'done' || ev.type === 'error') break
    }
  } catch (err) {
    if (signal.aborted) return
    yield { data: run.apply({ type: 'error', message: err instanceof Error ? err.message : String(err) }) }
  }
  yield DONE_EVENT
}

export function newRunId (): string {
  return 'r' + randomBytes(8).toString('hex')
}

const RUN_ID = /^r[0-9a-f]{16}$/

// ── hub runs ─────────────────────────────────────────────────────────────

interface HubRun {
  state: RunState
  /** Hub id of the run's first event, and the events with their ids (for pre-rendering at a cursor). */
  startId: number
  log: Array<{ id: number, ev: AgentEvent | { type: 'cancelled' } }>
  controller: AbortController
}

const MAX_LOG = 5_000

export interface AgentRunnerOptions {
  /** Topic of run `id` is `${topicPrefix}${id}`. Default 'agent:'. */
  topicPrefix?: string
  source?: AgentSource
  /** Runs kept (live and finished); past it the oldest finished is dropped, or the oldest live one cancelled. Default 100. */
  maxRuns?: number
  /** Id of the element a run's first event fills (`innerHTML`) on the pages that show it. Default 'agent-run'. */
  slotId?: string
  /** The URL of a run's page, linked from its transcript. */
  hrefOf?: (runId: string) => string
}

/**
 * Runs prompts through a source, each on its own hub topic: the run skeleton
 * into the run slot, then out-of-band updates, then `done`. Runs are kept
 * (bounded) so their pages render them from any point.
 */
export class AgentRunner {
  readonly topicPrefix: string
  readonly source: AgentSource
  readonly slotId: string
  readonly maxRuns: number
  hrefOf: ((runId: string) => string) | undefined
  #hub: SseHub | undefined
  #log: FastifyBaseLogger | undefined
  readonly #runs = new Map<string, HubRun>()
  #queue: Promise<unknown> = Promise.resolve()
  #closed = false

  constructor (options: AgentRunnerOptions = {}) {
    this.topicPrefix = options.topicPrefix ?? 'agent:'
    this.source = options.source ?? simulatedAgent()
    this.slotId = options.slotId ?? 'agent-run'
    this.maxRuns = options.maxRuns ?? 100
    this.hrefOf = options.hrefOf
    if (!(this.maxRuns >= 1)) throw new TypeError('AgentRunner: maxRuns must be at least 1')
  }

  bind (hub: SseHub, log: FastifyBaseLogger): void {
    this.#hub = hub
    this.#log = log
  }

  topicOf (runId: string): string {
    return `${this.topicPrefix}${runId}`
  }

  /** A run's current state, if it is kept. */
  get (runId: string): RunState | undefined {
    return this.#runs.get(runId)?.state
  }

  /** The runs kept, oldest first. */
  runs (): RunState[] {
    return [...this.#runs.values()].map(r => r.state)
  }

  /** A fresh run id (to subscribe to its topic before `start`). */
  newId (): string {
    return newRunId()
  }

  /** Starts a run; resolves with its id once its first event is published. */
  async start (prompt: string, runId = newRunId()): Promise<string> {
    if (this.#closed || this.#hub === undefined) throw new Error('agent runner is not bound or closed')
    if (this.#runs.has(runId)) throw new Error(`agent run ${runId} exists`)
    const state = new RunState(runId, prompt)
    const run: HubRun = { state, startId: Infinity, log: [], controller: new AbortController() }
    await this.#serial(async () => {
      const id = await this.#hub!.publish(this.topicOf(runId), { data: startFragment(this.slotId, state, this.hrefOf?.(runId)) })
      run.startId = parseId(id) ?? 0
      this.#runs.set(runId, run)
      this.#evict()
    })
    void this.#drive(run)
    return runId
  }

  /** Cancels a live run (a no-op for a finished or unknown one). */
  cancel (runId: string): void {
    this.#runs.get(runId)?.controller.abort()
  }

  close (): void {
    this.#closed = true
    for (const run of this.#runs.values()) run.controller.abort()
  }

  /** Waits for publishes in flight, so a render sees every event at or below a cursor. */
  async settled (): Promise<void> {
    await this.#queue
  }

  /**
   * The run as a page rendered at `cursor` must show it: exactly the events up
   * to the cursor. Everything later is replayed to the page when it connects.
   */
  async snapshot (runId: string, cursor: string | undefined): Promise<RunState | undefined> {
    await this.settled()
    const run = this.#runs.get(runId)
    if (run === undefined) return undefined
    const limit = parseId(cursor) ?? Infinity
    const state = new RunState(run.state.runId, run.state.prompt)
    for (const { id, ev } of run.log) {
      if (id > limit) break
      state.apply(ev)
    }
    return state
  }

  #evict (): void {
    while (this.#runs.size > this.maxRuns) {
      const victim = [...this.#runs.values()].find(r => r.state.finished) ?? this.#runs.values().next().value!
      victim.controller.abort()
      this.#runs.delete(victim.state.runId)
    }
  }

  async #serial<T> (fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn)
    this.#queue = next.catch(() => {})
    return await next
  }

  async #emit (run: HubRun, ev: AgentEvent | { type: 'cancelled' }): Promise<void> {
    await this.#serial(async () => {
      const topic = this.topicOf(run.state.runId)
      const id = await this.#hub!.publish(topic, { data: run.state.apply(ev) })
      if (run.log.length < MAX_LOG) run.log.push({ id: parseId(id) ?? 0, ev })
      if (run.state.finished) await this.#hub!.publish(topic, DONE_EVENT)
    })
  }

  async #drive (run: HubRun): Promise<void> {
    const { signal } = run.controller
    try {
      for await (const ev of coalesceWhitespace(this.source.run(run.state.prompt, signal))) {
        if (signal.aborted) break
        await this.#emit(run, ev)
        if (ev.type === 'done' || ev.type === 'error') return
      }
      if (signal.aborted) {
        if (!this.#closed) await this.#emit(run, { type: 'cancelled' })
        return
      }
      await this.#emit(run, { type: 'done' })
    } catch (err) {
      if (signal.aborted) {
        if (!this.#closed) await this.#emit(run, { type: 'cancelled' }).catch(() => {})
        return
      }
      this.#log?.warn({ err }, 'agent: run failed')
      await this.#emit(run, { type: 'error', message: err instanceof Error ? err.message : String(err) }).catch(() => {})
    }
  }
}

export interface AgentFormProps {
  htmx: HtmxVersion
  /** Where the form posts (`POST /runs` of the module). */
  action: string
  /** htmx 2: the element the answer (a connect element for the run) goes into. Default 'agent-run-conn'. */
  connId?: string
}

/**
 * The prompt form. htmx 4: the POST answers with the run's stream itself;
 * the request is held (button disabled) until `done` closes it. htmx 2: the
 * answer is a connect element for the run's stream, swapped into `#connId`.
 * A 422 answer (empty prompt) is swapped into `#connId` in both.
 */
export function AgentForm (props: AgentFormProps): JSX.Element {
  const connId = props.connId ?? 'agent-run-conn'
  const stream = props.htmx === 4
    ? { 'hx-swap': 'none', 'hx-sse:close': SSE_CLOSE_EVENT, 'hx-disabled-elt': 'find button' }
    : { 'hx-swap': 'innerHTML' }
  return (
    <form class='row agent-form' method='post' action={props.action} hx-post={props.action} hx-target={`#${connId}`} {...stream} {...swap422('innerHTML')}>
      <input name='prompt' aria-label='Prompt' value='Is the server healthy?' maxlength='500' required />
      <button type='submit'>Run</button>
    </form>
  )
}

/** The dashboard panel: prompt form, the run slot (filled by a run's first event), and where htmx 2 connects a run. */
export function AgentPanel (props: { htmx?: HtmxVersion, action: string, slotId?: string }): JSX.Element {
  return (
    <section class='card agent-card' aria-label='Agent'>
      <header><h2>Agent</h2><span class='muted small'>offline simulator · tools update out of band</span></header>
      <AgentForm htmx={props.htmx ?? 2} action={props.action} />
      <div id='agent-run-conn'></div>
      <div id={props.slotId ?? 'agent-run'} class='agent-slot'><p class='muted small'>No run yet. Ask something.</p></div>
    </section>
  )
}

export interface AgentRoutesOptions extends HtmxOption {
  source?: AgentSource
  /** Topic of run `id` is `${topicPrefix}${id}`. Default 'agent:'. */
  topicPrefix?: string
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
  const runner = options.runner ?? new AgentRunner({ topicPrefix: options.topicPrefix, source: options.source })
  runner.hrefOf ??= id => `${base}/runs/${id}`
  const href = runner.hrefOf
  const source = options.source ?? runner.source
  runner.bind(app.sseHub, app.log)
  app.addHook('onClose', async () => runner.close())
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
      await runner.start(prompt, runId)
      return stream
    }
    const runId = await runner.start(prompt)
    const url = href(runId)
    if (wantsJson(request)) return reply.code(202).header('location', url).send({ id: runId, url })
    if (!isHtmx(request.headers)) return reply.redirect(url, 303)
    return reply.html(<PageConnect app={app} htmx={2} url={`${url}/stream`} lastEventId={cursor} closeOn={SSE_CLOSE_EVENT} />)
  })

  app.get<{ Params: { id: string } }>('/runs/:id/stream', { schema: { params: runParams } }, (request, reply) => {
    const run = runner.get(request.params.id)
    if (run === undefined) return reply.sse([{ ...DONE_EVENT, data: 'gone' }])
    return reply.sse({ topics: [runner.topicOf(run.runId)] })
  })

  app.get<{ Params: { id: string } }>('/runs/:id', { schema: { params: runParams } }, async (request, reply) => {
    const cursor = await pageCursor(app.sseHub)
    const run = await runner.snapshot(request.params.id, cursor)
    if (run === undefined) return reply.code(404).html(<RoutePage app={app} htmx={htmx} title='Agent run'><main class='app'><p>No such run (runs are kept while this process runs, the newest {runner.maxRuns}).</p></main></RoutePage>)
    return reply.html(
      <RoutePage app={app} htmx={htmx} title='Agent run'>
        <header class='app'><h1>Agent run</h1><a class='small' href={`${base}/`}>new run</a></header>
        <main class='app stack'>
          <section class='card agent-card'>
            <div id={runner.slotId} class='agent-slot'><AgentRunSnapshot run={run} /></div>
            {run.finished ? '' : <PageConnect app={app} htmx={htmx} url={`${href(run.runId)}/stream`} lastEventId={cursor} closeOn={SSE_CLOSE_EVENT} />}
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
