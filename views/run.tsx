/**
 * The live-vs-static pattern: a run page that is wired to its stream only while the run
 * is in progress. A finished run renders plain markup, so reloading it opens no stream.
 */
import type { Children } from '@kitajs/html'
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
  /**
   * The page's connect element (`live.element` of `reply.live([topic], { closeOn: 'done' })`),
   * rendered only while the run is running, inside the run: the last update
   * replaces the run, and the element goes with it.
   */
  live?: Children
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
        ? props.live ?? ''
        : ''}
    </section>
  )
}
