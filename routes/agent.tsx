/**
 * Agent-style streams: text tokens, tool calls whose cards are updated out of
 * band when their result arrives, and errors as an error card. The source is
 * an `AgentSource` (plug in a real LLM); a deterministic offline simulator is
 * bundled. Two ways to stream a run:
 *  - per connection: `GET /stream?prompt=` → `reply.sse(signal => …)`; the run
 *    stops when the client leaves (the standalone page uses this);
 *  - through the hub: `POST /runs` publishes the run on a topic ('agent'), so a
 *    dashboard watches it over its one connection, and a page opened mid-run
 *    renders the run so far and continues live.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { parseId, type SseEvent, type SseHub } from '../plugin/index.js'
import { AgentError, AgentStatus, Layout, MessageChunk, Oob, SseConnect, SseSink, SseSwap, ToolResult, ToolUseCard, type AgentState } from '../views/index.js'
import { acceptForms, RouteHead, routeModule, trimFields } from './util.js'

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

function tokens (text: string): string[] {
  return text.match(/\S+\s*/g) ?? []
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

type Item =
  | { kind: 'text', text: string }
  | { kind: 'tool', domId: string, name: string, input: unknown, output?: unknown, isError?: boolean, done: boolean }
  | { kind: 'error', message: string }

/** The state of one run, folded from its events. */
export class RunState {
  items: Item[] = []
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
        const tool = this.items.find((i): i is Extract<Item, { kind: 'tool' }> => i.kind === 'tool' && i.domId === domId)
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

/** A whole run as it stands: the page render, and the first event of a run. Finished tool cards show their result. */
export function AgentRunSnapshot (props: { run: RunState }): JSX.Element {
  const { run } = props
  return (
    <article id={run.domId} class='agent-run' data-state={run.state}>
      <p class='prompt'><span class='muted small'>Prompt</span> <q safe>{run.prompt}</q></p>
      <div id={`${run.domId}-state`}><AgentStatus id={`${run.domId}-status`} state={run.state} text={run.status} /></div>
      <div id={`${run.domId}-output`} class='agent-output'>
        {run.items.map(item => {
          if (item.kind === 'text') return <MessageChunk text={item.text} />
          if (item.kind === 'error') return <AgentError message='Agent error' detail={item.message} />
          return <ToolCard id={item.domId} name={item.name} input={item.input} output={item.output} isError={item.isError} done={item.done} />
        })}
      </div>
    </article>
  )
}

/** A ToolUseCard with its result applied (ToolResult's out-of-band fragments, rendered in place). */
function ToolCard (props: { id: string, name: string, input: unknown, output: unknown, isError?: boolean | undefined, done: boolean }): JSX.Element {
  if (!props.done) return <ToolUseCard id={props.id} name={props.name} input={props.input} />
  const state = props.isError === true ? 'error' : 'ok'
  return (
    <div id={props.id} class='tool'>
      <header>
        <span>tool </span>
        <code safe>{props.name}</code>{' '}
        <span id={`${props.id}-status`} class={`badge badge-${state}`} role='status'>{state === 'ok' ? 'done' : 'error'}</span>
      </header>
      <pre class='tool-input' safe>{formatJson(props.input)}</pre>
      <div id={`${props.id}-result`} class={props.isError === true ? 'tool-result error' : 'tool-result'}><pre safe>{formatJson(props.output)}</pre></div>
    </div>
  )
}

function formatJson (value: unknown): string {
  if (typeof value === 'string') return value
  try { return JSON.stringify(value, null, 2) ?? String(value) } catch { return String(value) }
}

/**
 * Turns a source's run into SSE events for one connection (`reply.sse(signal => …)`):
 * the run skeleton, then out-of-band updates on `agent`, then `done`.
 */
export async function * agentEvents (source: AgentSource, prompt: string, signal: AbortSignal, runId = newRunId()): AsyncGenerator<SseEvent> {
  const run = new RunState(runId, prompt)
  yield { event: 'agent_run', data: <AgentRunSnapshot run={run} /> }
  try {
    for await (const ev of source.run(prompt, signal)) {
      yield { event: 'agent', data: run.apply(ev) }
      if (ev.type === 'done' || ev.type === 'error') break
    }
  } catch (err) {
    if (signal.aborted) return
    yield { event: 'agent', data: run.apply({ type: 'error', message: err instanceof Error ? err.message : String(err) }) }
  }
  yield { event: 'done', data: '' }
}

export function newRunId (): string {
  return 'r' + randomBytes(4).toString('hex')
}

// ── hub runs (dashboard) ─────────────────────────────────────────────────

interface HubRun {
  state: RunState
  /** Hub id of the run's first event, and the events with their ids (for pre-rendering at a cursor). */
  startId: number
  log: Array<{ id: number, ev: AgentEvent | { type: 'cancelled' } }>
  controller: AbortController
}

const MAX_LOG = 5_000

/**
 * Runs prompts through a source and publishes them on a hub topic: event
 * `agent_run` (the skeleton, swapped into the run slot) then `agent` (out-of-band
 * updates, for an `SseSink`). One run at a time: a new one cancels the previous.
 */
export class AgentRunner {
  readonly topic: string
  readonly source: AgentSource
  #hub: SseHub | undefined
  #log: FastifyBaseLogger | undefined
  #current: HubRun | undefined
  #previous: HubRun | undefined
  #queue: Promise<unknown> = Promise.resolve()
  #closed = false

  constructor (options: { topic?: string, source?: AgentSource } = {}) {
    this.topic = options.topic ?? 'agent'
    this.source = options.source ?? simulatedAgent()
  }

  bind (hub: SseHub, log: FastifyBaseLogger): void {
    this.#hub = hub
    this.#log = log
  }

  get current (): RunState | undefined { return this.#current?.state }

  /** Starts a run; resolves with its id once its first event is published. */
  async start (prompt: string): Promise<string> {
    if (this.#closed || this.#hub === undefined) throw new Error('agent runner is not bound or closed')
    this.#current?.controller.abort()
    const runId = newRunId()
    const state = new RunState(runId, prompt)
    const controller = new AbortController()
    const run: HubRun = { state, startId: Infinity, log: [], controller }
    const startId = await this.#serial(async () => {
      const id = await this.#hub!.publish(this.topic, { event: 'agent_run', data: <AgentRunSnapshot run={state} /> })
      run.startId = parseId(id) ?? 0
      if (this.#current !== undefined) this.#previous = this.#current
      this.#current = run
      return id
    })
    void this.#drive(run)
    return startId
  }

  close (): void {
    this.#closed = true
    this.#current?.controller.abort()
  }

  /** Waits for publishes in flight, so a render sees every event at or below a cursor. */
  async settled (): Promise<void> {
    await this.#queue
  }

  /**
   * The run as a page rendered at `cursor` must show it: the newest run that
   * started at or before the cursor, with exactly the events up to the cursor.
   * Everything later is replayed to the page when it connects.
   */
  async snapshot (cursor: string | undefined): Promise<RunState | undefined> {
    await this.settled()
    const limit = parseId(cursor) ?? Infinity
    const run = [this.#current, this.#previous].find(r => r !== undefined && r.startId <= limit)
    if (run === undefined) return undefined
    const state = new RunState(run.state.runId, run.state.prompt)
    for (const { id, ev } of run.log) {
      if (id > limit) break
      state.apply(ev)
    }
    return state
  }

  async #serial<T> (fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn)
    this.#queue = next.catch(() => {})
    return await next
  }

  async #emit (run: HubRun, ev: AgentEvent | { type: 'cancelled' }): Promise<void> {
    await this.#serial(async () => {
      const id = await this.#hub!.publish(this.topic, { event: 'agent', data: run.state.apply(ev) })
      if (run.log.length < MAX_LOG) run.log.push({ id: parseId(id) ?? 0, ev })
    })
  }

  async #drive (run: HubRun): Promise<void> {
    const { signal } = run.controller
    try {
      for await (const ev of this.source.run(run.state.prompt, signal)) {
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

/** The dashboard panel: prompt form, and the current run (live via `agent_run` / `agent`). */
export async function AgentPanel (props: { runner: AgentRunner, cursor: string | undefined, action: string }): Promise<string> {
  const run = await props.runner.snapshot(props.cursor)
  return (
    <section class='card agent-card' aria-label='Agent'>
      <header><h2>Agent</h2><span class='muted small'>offline simulator · tools update out of band</span></header>
      <form class='row' hx-post={props.action} hx-swap='none' method='post' action={props.action}>
        <input name='prompt' aria-label='Prompt' value='Is the server healthy?' maxlength='500' />
        <button type='submit'>Run</button>
      </form>
      <SseSwap id='agent-run' class='agent-slot' event='agent_run' swap='innerHTML'>
        {run === undefined ? <p class='muted small'>No run yet. Ask something.</p> : <AgentRunSnapshot run={run} />}
      </SseSwap>
      <SseSink events='agent' />
    </section>
  )
}

export interface AgentRoutesOptions {
  source?: AgentSource
  /** Hub topic of dashboard runs. Default 'agent'. */
  topic?: string
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

/**
 * `GET /` standalone page (one connection per run: `GET /stream?prompt=`),
 * `GET /session?prompt=` the fragment that opens such a stream,
 * `POST /runs` start a hub run (dashboard), `GET /hub-stream` the hub topic.
 */
export const agentRoutes = routeModule<AgentRoutesOptions>('agent', async (app, options) => {
  const runner = options.runner ?? new AgentRunner({ topic: options.topic, source: options.source })
  const source = options.source ?? runner.source
  runner.bind(app.sseHub, app.log)
  app.addHook('onClose', async () => runner.close())
  await acceptForms(app)
  const base = app.prefix

  app.get<{ Querystring: { prompt: string } }>('/stream', { ...promptRoute, schema: { querystring: promptSchema } }, (request, reply) => {
    if (request.validationError !== undefined) return reply.code(400).send({ error: PROMPT_ERROR })
    const { prompt } = request.query
    return reply.sse(signal => agentEvents(source, prompt, signal))
  })

  app.get<{ Querystring: { prompt: string } }>('/session', { ...promptRoute, schema: { querystring: promptSchema } }, async (request, reply) => {
    if (request.validationError !== undefined) return reply.code(422).html(<p class='form-error' role='alert'>Write a prompt (at most 500 characters).</p>)
    return reply.html(
      <SseConnect url={`${base}/stream?prompt=${encodeURIComponent(request.query.prompt)}`} closeOn='done'>
        <SseSwap id='agent-session-run' event='agent_run' swap='innerHTML'><p class='muted small'>Connecting…</p></SseSwap>
        <SseSink events='agent' />
      </SseConnect>
    )
  })

  app.post<{ Body: { prompt: string } }>('/runs', { ...promptRoute, schema: { body: promptSchema } }, async (request, reply) => {
    if (request.validationError !== undefined) return reply.code(422).send({ error: PROMPT_ERROR })
    const id = await runner.start(request.body.prompt)
    return reply.code(202).send({ id })
  })

  app.get('/hub-stream', (_request, reply) => reply.sse({ topics: [runner.topic] }))

  app.get('/', async (_request, reply) => {
    return reply.html(
      <Layout title='Agent' head={<RouteHead />}>
        <header class='app'><h1>Agent</h1></header>
        <main class='app stack'>
          <section class='card agent-card'>
            <p class='muted small'>Each run is its own SSE stream (<code>reply.sse(signal =&gt; …)</code>); closing the page stops the run.</p>
            <form class='row' hx-get={`${base}/session`} hx-target='#agent-session' hx-swap='innerHTML'>
              <input name='prompt' aria-label='Prompt' value='Is the server healthy?' maxlength='500' />
              <button type='submit'>Run</button>
            </form>
            <div id='agent-session'></div>
          </section>
        </main>
      </Layout>
    )
  })
})
