/**
 * A run (a task with live progress) as markup: the live-vs-static pattern.
 * `RunDetail` is wired to its stream only while the run is in progress; a
 * finished run renders plain markup, so reloading it opens no stream. Pure
 * functions of plain props (the shape `fastify-htmx-sse/runs` stores and
 * answers as JSON); this module imports nothing from runs/.
 */
import type { Children } from '@kitajs/html'
import { INTERRUPTED_TEXT } from './agent.js'
import { Append, Prepend, Update } from './fragments.js'
import { ProgressBar, ResultBanner, type ResultOutcome } from './progress.js'
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
  /** Fraction done, 0..1. */
  progress?: number
  /** What the run is doing ("Step 2 of 5"). */
  label?: string | undefined
  /** Its log, oldest first: strings are shown as text, anything else as JSON. */
  entries?: readonly unknown[]
  /** What it produced (status 'done'): a string is shown as text, anything else as JSON. */
  result?: unknown
  /** Why it failed (status 'failed'). */
  error?: string | undefined
  /** Its page (the link of a row in a list). */
  url?: string
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
  /** While running: a Cancel button that posts here (with htmx when the page loads it, as a form otherwise). */
  cancel?: string
  /**
   * Render as an out-of-band replacement of the whole run (`hx-swap-oob`):
   * the last update of a run that finished turns a live page into exactly the
   * static page (its connection element goes with it).
   */
  oob?: boolean
  /** Body (`#run-<id>-body`) instead of the run's own: progress bar, log, and its outcome once finished. */
  children?: Children
}

/**
 * A run: `<section id="run-<id>">` with its header, status badge
 * (`#run-<id>-status`) and body (`#run-<id>-body`: progress
 * `#run-<id>-progress`, log `#run-<id>-log`, outcome), plus the connection
 * element only while the status is 'running'. Updates are unnamed events
 * that replace parts by id; a finished run is static markup.
 */
export function RunDetail (props: RunDetailProps): JSX.Element {
  const { run } = props
  const status = oneOf(run.status, RUN_STATUSES, 'run.status')
  const id = assertDomId(`run-${run.id}`, 'run.id')
  const running = status === 'running'
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
      <div id={`${id}-body`} class='run-body'>{props.children ?? <RunBody run={{ ...run, status }} />}</div>
      {running && props.cancel !== undefined
        ? <form method='post' action={props.cancel} hx-post={props.cancel} hx-swap='none' class='run-actions'><button type='submit' class='secondary'>Cancel</button></form>
        : ''}
      {running ? props.live ?? '' : ''}
    </section>
  )
}

const percentOf = (run: RunInfo): number => Math.round((run.status === 'done' ? 1 : run.progress ?? 0) * 100)

/** The bar of a run: its percentage, labelled with what it is doing. */
export function RunProgressBar (props: { run: RunInfo }): JSX.Element {
  const { run } = props
  return <ProgressBar value={percentOf(run)} label={run.label ?? (run.status === 'running' ? 'Progress' : run.status)} />
}

/** A log entry's content: a string as text, anything else as its JSON. */
export function RunEntry (props: { entry: unknown }): JSX.Element {
  const { entry } = props
  return typeof entry === 'string' ? <span safe>{entry}</span> : <code safe>{JSON.stringify(entry) ?? ''}</code>
}

/** The id of log entry `index` of a run (entries are only ever appended, so an index names one for good). */
export const runEntryId = (runId: string, index: number): string => `run-${runId}-e${index}`

function outcomeOf (run: RunInfo): { outcome: ResultOutcome, text: string } | undefined {
  const took = run.finishedAt === undefined || run.startedAt === undefined ? undefined : (Number(run.finishedAt) - Number(run.startedAt)) / 1000
  switch (run.status) {
    case 'done': return { outcome: 'success', text: typeof run.result === 'string' ? run.result : `Done${took === undefined ? '' : ` in ${took.toFixed(1)} s`}.` }
    case 'failed': return { outcome: 'error', text: `Failed: ${run.error ?? 'the run failed.'}` }
    case 'cancelled': return { outcome: 'cancelled', text: `Cancelled at ${percentOf(run)}%.` }
    case 'interrupted': return { outcome: 'interrupted', text: `${INTERRUPTED_TEXT} It had reached ${percentOf(run)}%.` }
    default: return undefined
  }
}

function RunBody (props: { run: RunInfo & { status: RunStatus } }): JSX.Element {
  const { run } = props
  const outcome = outcomeOf(run)
  const json = run.status === 'done' && run.result !== undefined && typeof run.result !== 'string'
  return (
    <>
      <div id={`run-${run.id}-progress`} class='run-progress'><RunProgressBar run={run} /></div>
      <ol id={`run-${run.id}-log`} class='run-log'>
        {(run.entries ?? []).map((entry, i) => <li id={runEntryId(run.id, i)}><RunEntry entry={entry} /></li>)}
      </ol>
      {outcome === undefined ? '' : <ResultBanner {...outcome} />}
      {json ? <pre class='run-result' safe>{JSON.stringify(run.result, null, 2)}</pre> : ''}
    </>
  )
}

/** The live update of a running run's bar (innerHTML of `#run-<id>-progress`). */
export function RunProgressUpdate (props: { run: RunInfo }): JSX.Element {
  return <Update id={`run-${props.run.id}-progress`}><RunProgressBar run={props.run} /></Update>
}

/** The live update of a new log entry (appended to `#run-<id>-log` once, even when replayed). */
export function RunEntryUpdate (props: { runId: string, index: number, entry: unknown }): JSX.Element {
  return <Append to={`run-${props.runId}-log`} id={runEntryId(props.runId, props.index)} tag='li'><RunEntry entry={props.entry} /></Append>
}

/** One row of a list of runs: its title (a link to its page), badge and bar. */
export function RunRow (props: { run: RunInfo }): JSX.Element {
  const { run } = props
  const status = oneOf(run.status, RUN_STATUSES, 'run.status')
  return (
    <>
      {run.url === undefined ? <span safe>{run.title ?? run.id}</span> : <a href={run.url} safe>{run.title ?? run.id}</a>}
      <RunStatusBadge runId={`row-${run.id}`} status={status} />
      <ProgressBar value={percentOf(run)} label={`${run.title ?? run.id} progress`} />
    </>
  )
}

const rowId = (run: RunInfo): string => `run-row-${run.id}`
const rowClass = (run: RunInfo): string => `run-row run-row-${oneOf(run.status, RUN_STATUSES, 'run.status')}`

/** A list of runs, newest first (`id`: the list's element, which `RunRowUpdate`s target). */
export function RunList (props: { id: string, runs: readonly RunInfo[] }): JSX.Element {
  return (
    <>
      <ol id={assertDomId(props.id, 'id')} class='run-list'>
        {props.runs.map(run => <li id={rowId(run)} class={rowClass(run)}><RunRow run={run} /></li>)}
      </ol>
      <p class='empty-hint muted small'>No runs yet.</p>
    </>
  )
}

/** A run's row, put at the top of `#<list>` when new, replaced in place when changed; the list keeps `limit` rows. */
export function RunRowUpdate (props: { list: string, run: RunInfo, limit: number }): JSX.Element {
  return (
    <Prepend to={props.list} id={rowId(props.run)} tag='li' class={rowClass(props.run)} limit={props.limit}>
      <RunRow run={props.run} />
    </Prepend>
  )
}
