/** Agent-style streams: text chunks, tool calls with pending/result states, status, errors. */
import { swap422 } from './layout.js'
import { ResultBanner } from './progress.js'
import type { RunStatus } from './run.js'
import { Oob, SSE_CLOSE_EVENT } from './sse.js'
import { assertDomId, escAttr, oneOf, urlAttr } from './util.js'

export interface MessageChunkProps {
  text: string
}

/** A chunk of streamed text, appended with `beforeend` to an `.agent-output` target. */
export function MessageChunk (props: MessageChunkProps): JSX.Element {
  return <span class='chunk' safe>{props.text}</span>
}

/** Pretty-prints tool input/output: strings as-is, everything else as JSON. */
export function formatPayload (value: unknown): string {
  if (typeof value === 'string') return value
  try {
    return JSON.stringify(value, null, 2) ?? String(value)
  } catch {
    return String(value)
  }
}

export interface ToolUseCardProps {
  /** Card id; `ToolResult` updates `${id}-status` and `${id}-result`. */
  id: string
  name: string
  input: unknown
}

/** A tool call in its pending state. */
export function ToolUseCard (props: ToolUseCardProps): JSX.Element {
  const id = assertDomId(props.id, 'id')
  return (
    <div id={id} class='tool'>
      <header>
        <span>tool </span>
        <code safe>{props.name}</code>{' '}
        <span id={`${id}-status`} class='badge badge-pending' role='status'>pending</span>
      </header>
      <pre class='tool-input' safe>{formatPayload(props.input)}</pre>
      <div id={`${id}-result`} class='tool-result' aria-busy='true'></div>
    </div>
  )
}

export interface ToolResultProps {
  /** Id of the `ToolUseCard` to update. */
  id: string
  output: unknown
  isError?: boolean
}

/**
 * Out-of-band update of a `ToolUseCard` by id: replaces its status badge and fills its
 * result slot. Send it in an event handled by an `SseSink` (or any swap target).
 */
export function ToolResult (props: ToolResultProps): JSX.Element {
  const id = assertDomId(props.id, 'id')
  const state = props.isError ? 'error' : 'ok'
  return (
    <>
      <Oob id={`${id}-status`} tag='span' class={`badge badge-${state}`} role='status'>{state === 'ok' ? 'done' : 'error'}</Oob>
      <Oob id={`${id}-result`} class={['tool-result', props.isError && 'error']}>
        <pre safe>{formatPayload(props.output)}</pre>
      </Oob>
    </>
  )
}

export interface ToolCardProps extends ToolUseCardProps {
  /** The result, once it arrived (`done`). */
  output?: unknown
  isError?: boolean | undefined
  done: boolean
}

/** A tool card in its current state: pending (`ToolUseCard`), or with its result as `ToolResult` would leave it. */
export function ToolCard (props: ToolCardProps): JSX.Element {
  if (!props.done) return <ToolUseCard id={props.id} name={props.name} input={props.input} />
  const id = assertDomId(props.id, 'id')
  const state = props.isError === true ? 'error' : 'ok'
  return (
    <div id={id} class='tool'>
      <header>
        <span>tool </span>
        <code safe>{props.name}</code>{' '}
        <span id={`${id}-status`} class={`badge badge-${state}`} role='status'>{state === 'ok' ? 'done' : 'error'}</span>
      </header>
      <pre class='tool-input' safe>{formatPayload(props.input)}</pre>
      <div id={`${id}-result`} class={props.isError === true ? 'tool-result error' : 'tool-result'}><pre safe>{formatPayload(props.output)}</pre></div>
    </div>
  )
}

export const AGENT_STATES = ['idle', 'thinking', 'tool', 'streaming', 'done', 'error', 'cancelled', 'interrupted'] as const
export type AgentState = typeof AGENT_STATES[number]

/** The run status (`RunStatus`) an agent state stands for. */
export function agentRunStatus (state: AgentState): RunStatus {
  switch (state) {
    case 'done': return 'done'
    case 'error': return 'failed'
    case 'cancelled': return 'cancelled'
    case 'interrupted': return 'interrupted'
    default: return 'running'
  }
}

/** What the banner of an interrupted run says (jobs and agent runs alike). */
export const INTERRUPTED_TEXT = 'Interrupted: the server running it stopped before it finished.'

export interface AgentStatusProps {
  /** Default 'agent-status' (so it can be replaced out of band). */
  id?: string
  state: AgentState
  text?: string
}

/** A one-line `role="status"` status. */
export function AgentStatus (props: AgentStatusProps): JSX.Element {
  const state = oneOf(props.state, AGENT_STATES, 'state')
  return (
    <p id={escAttr(props.id ?? 'agent-status')} class={`agent-status state-${state}`} role='status' data-state={state}>
      <span safe>{props.text ?? state}</span>
    </p>
  )
}

export interface AgentErrorProps {
  id?: string
  message: string
  detail?: string
}

/** An error card, `role="alert"`. */
export function AgentError (props: AgentErrorProps): JSX.Element {
  return (
    <div id={escAttr(props.id)} class='card agent-error' role='alert'>
      <strong safe>{props.message}</strong>
      {props.detail === undefined ? '' : <pre safe>{props.detail}</pre>}
    </div>
  )
}

/** One entry of an agent transcript. */
export type AgentItem =
  | { kind: 'text', text: string }
  | { kind: 'tool', domId: string, name: string, input: unknown, output?: unknown, isError?: boolean, done: boolean }
  | { kind: 'error', message: string }

export interface AgentTranscriptProps {
  /** Element id; the live updates target `${id}-state`, `${id}-status` and `${id}-output`. */
  id: string
  prompt: string
  state: AgentState
  status: string
  items: readonly AgentItem[]
  /** A link to the run's own page, shown next to the prompt. */
  href?: string | undefined
  /** Replace a page's copy of this run by id, out of band (`hx-swap-oob`): a run that ended without its own last event. */
  oob?: boolean | undefined
}

/** A whole agent run as it stands: prompt, status, and its transcript (finished tool cards with their results). */
export function AgentTranscript (props: AgentTranscriptProps): JSX.Element {
  const id = assertDomId(props.id, 'id')
  const state = oneOf(props.state, AGENT_STATES, 'state')
  return (
    <article id={id} class='agent-run' data-state={state} data-status={agentRunStatus(state)} hx-swap-oob={props.oob === true ? 'true' : undefined}>
      <p class='prompt'>
        <span class='muted small'>Prompt</span> <q safe>{props.prompt}</q>
        {props.href === undefined ? '' : <> <a class='small run-link' href={urlAttr(props.href, 'href')}>run page</a></>}
      </p>
      <div id={`${id}-state`}><AgentStatus id={`${id}-status`} state={state} text={props.status} /></div>
      <div id={`${id}-output`} class='agent-output'>
        {props.items.map(item => {
          if (item.kind === 'text') return <MessageChunk text={item.text} />
          if (item.kind === 'error') return <AgentError message='Agent error' detail={item.message} />
          return <ToolCard id={item.domId} name={item.name} input={item.input} output={item.output} isError={item.isError} done={item.done} />
        })}
      </div>
      {state === 'interrupted' ? <ResultBanner outcome='interrupted' text={INTERRUPTED_TEXT} /> : ''}
    </article>
  )
}

export interface AgentFormProps {
  /** Where the form posts (`POST /runs` of the module). */
  action: string
  /** Where an answer that is markup goes (htmx 2's connect element for the run, a 422). Default 'agent-run-conn'. */
  connId?: string
}

/**
 * The prompt form, the same markup for both majors: htmx 4's POST answers
 * with the run's stream itself (the request is held, button disabled, until
 * `done` closes it); htmx 2's answers with a connect element for the run and
 * `HX-Reswap: innerHTML`, which puts it in `#connId` (the route knows the
 * app's major, the form need not). A 422 (empty prompt) lands there too.
 */
export function AgentForm (props: AgentFormProps): JSX.Element {
  const connId = props.connId ?? 'agent-run-conn'
  return (
    <form class='row agent-form' method='post' action={props.action} hx-post={props.action} hx-target={`#${connId}`} hx-swap='none' hx-sse:close={SSE_CLOSE_EVENT} hx-disabled-elt='find button' {...swap422('innerHTML')}>
      <input name='prompt' aria-label='Prompt' value='Is the server healthy?' maxlength='500' required />
      <button type='submit'>Run</button>
    </form>
  )
}

/** The dashboard panel: prompt form, the run slot (filled by a run's first event), and where htmx 2 connects a run. */
export function AgentPanel (props: { action: string, slotId?: string }): JSX.Element {
  return (
    <section class='card agent-card' aria-label='Agent'>
      <header><h2>Agent</h2><span class='muted small'>offline simulator · tools update out of band</span></header>
      <AgentForm action={props.action} />
      <div id='agent-run-conn'></div>
      <div id={props.slotId ?? 'agent-run'} class='agent-slot'><p class='muted small'>No run yet. Ask something.</p></div>
    </section>
  )
}
