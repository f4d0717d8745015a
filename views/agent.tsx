/** Agent-style streams: text chunks, tool calls with pending/result states, status, errors. */
import { Oob } from './sse.js'
import { assertDomId, escAttr, oneOf } from './util.js'

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

export const AGENT_STATES = ['idle', 'thinking', 'tool', 'streaming', 'done', 'error', 'cancelled'] as const
export type AgentState = typeof AGENT_STATES[number]

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
