/**
 * The live-vs-static pattern: a run page that is wired to its stream only while the run
 * is in progress. A finished run renders plain markup, so reloading it opens no stream.
 */
import type { Children } from '@kitajs/html'
import { SSE_CLOSE_EVENT, SseConnect, SseSink, SseSwap } from './sse.js'
import { assertDomId, clockTime, isoTime, oneOf } from './util.js'

export const RUN_STATUSES = ['running', 'done', 'failed', 'cancelled'] as const
export type RunStatus = typeof RUN_STATUSES[number]

export interface RunInfo {
  id: string
  status: RunStatus
  title?: string
  startedAt?: Date | number
  finishedAt?: Date | number
}

export interface RunStatusBadgeProps {
  runId: string
  status: RunStatus
  /** Emit as an out-of-band replacement of the badge (`hx-swap-oob="true"`). */
  oob?: boolean
}

/** Status badge with id `run-${runId}-status` (replace it out of band when the status changes). */
export function RunStatusBadge (props: RunStatusBadgeProps): JSX.Element {
  const status = oneOf(props.status, RUN_STATUSES, 'status')
  const id = assertDomId(`run-${props.runId}-status`, 'runId')
  return (
    <span id={id} class={`badge badge-${status}`} role='status' hx-swap-oob={props.oob ? 'true' : undefined}>
      {status}
    </span>
  )
}

export interface RunDetailProps {
  run: RunInfo
  /** The run's SSE stream (http(s) or relative). */
  streamUrl: string
  /** Newest event id the page was rendered from (lossless connect). */
  lastEventId?: string
  /** Event swapped into the body. Default 'progress'. */
  event?: string
  /** How `event` is swapped into the body. Default 'innerHTML'. */
  swap?: 'innerHTML' | 'beforeend' | 'afterbegin'
  /** Events that only carry OOB fragments (e.g. the status badge). Default ['status', closeOn]:
   *  the closing event's data is still applied, so it can carry the final badge and result. */
  oobEvents?: readonly [string, ...string[]]
  /** Event after which the browser closes the stream. Default 'done'. */
  closeOn?: string
  /** Body: initial content while running, final content otherwise. */
  children?: Children
}

/** A run: live SSE wiring (connect + swap target + sink + sse-close) only while 'running'. */
export function RunDetail (props: RunDetailProps): JSX.Element {
  const { run } = props
  const closeOn = props.closeOn ?? SSE_CLOSE_EVENT
  const id = assertDomId(`run-${run.id}`, 'run.id')
  const header = (
    <header>
      <h2 safe>{run.title ?? `Run ${run.id}`}</h2>
      <RunStatusBadge runId={run.id} status={run.status} />
      {run.startedAt === undefined
        ? ''
        : (
          <span class='muted'>started <time datetime={isoTime(run.startedAt)} safe>{clockTime(run.startedAt)}</time></span>
          )}
      {run.finishedAt === undefined
        ? ''
        : (
          <span class='muted'>finished <time datetime={isoTime(run.finishedAt)} safe>{clockTime(run.finishedAt)}</time></span>
          )}
    </header>
  )
  if (run.status !== 'running') {
    return (
      <section id={id} class='card run' data-status={oneOf(run.status, RUN_STATUSES, 'run.status')}>
        {header}
        <div id={`${id}-body`} class='run-body'>{props.children}</div>
      </section>
    )
  }
  return (
    <SseConnect id={id} class='card run' url={props.streamUrl} lastEventId={props.lastEventId} closeOn={closeOn}>
      {header}
      <SseSwap id={`${id}-body`} class='run-body' event={props.event ?? 'progress'} swap={props.swap ?? 'innerHTML'}>
        {props.children}
      </SseSwap>
      <SseSink events={props.oobEvents ?? ['status', closeOn]} />
    </SseConnect>
  )
}
