/**
 * The live-vs-static pattern: a run page that is wired to its stream only while the run
 * is in progress. A finished run renders plain markup, so reloading it opens no stream.
 */
import type { Children } from '@kitajs/html'
import { SSE_CLOSE_EVENT, SseConnect, type HtmxVersion } from './sse.js'
import { assertDomId, clockTime, isoTime, oneOf } from './util.js'

/** `interrupted`: the instance running it stopped (its lease ran out) before it finished. */
export const RUN_STATUSES = ['running', 'done', 'failed', 'cancelled', 'interrupted'] as const
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
  /** The htmx major of the page (as its Layout). Default 2. */
  htmx?: HtmxVersion
  /** The run's SSE stream (http(s) or relative). */
  streamUrl: string
  /** Newest event id the page was rendered from (lossless connect). */
  lastEventId?: string
  /** Event after which the browser closes the stream. Default 'done'. */
  closeOn?: string
  /** htmx 4: where a `reset` event reloads the page from (the plugin's refreshPath). */
  resetUrl?: string
  /**
   * Render as an out-of-band replacement of the whole run (`hx-swap-oob`):
   * the last update of a run that finished turns a live page into exactly the
   * static page (its connection element goes with it).
   */
  oob?: boolean
  /** Body (`#run-<id>-body`): the content so far while running, the final content otherwise. */
  children?: Children
}

/**
 * A run: `<section id="run-<id>">` with its header, status badge
 * (`#run-<id>-status`) and body (`#run-<id>-body`), plus the connection element
 * only while the stored status is 'running'. Updates are unnamed events that
 * replace the body or the badge by id; a finished run is static markup.
 */
export function RunDetail (props: RunDetailProps): JSX.Element {
  const { run } = props
  const status = oneOf(run.status, RUN_STATUSES, 'run.status')
  const id = assertDomId(`run-${run.id}`, 'run.id')
  return (
    <section id={id} class='card run' data-status={status} hx-swap-oob={props.oob === true ? 'true' : undefined}>
      <header>
        <h2 safe>{run.title ?? `Run ${run.id}`}</h2>
        <RunStatusBadge runId={run.id} status={status} />
        {run.startedAt === undefined
          ? ''
          : <span class='muted'>started <time datetime={isoTime(run.startedAt)} safe>{clockTime(run.startedAt)}</time></span>}
        {run.finishedAt === undefined
          ? ''
          : <span class='muted'>finished <time datetime={isoTime(run.finishedAt)} safe>{clockTime(run.finishedAt)}</time></span>}
      </header>
      <div id={`${id}-body`} class='run-body'>{props.children}</div>
      {status === 'running'
        ? <SseConnect htmx={props.htmx} url={props.streamUrl} lastEventId={props.lastEventId} closeOn={props.closeOn ?? SSE_CLOSE_EVENT} resetUrl={props.resetUrl} />
        : ''}
    </section>
  )
}
