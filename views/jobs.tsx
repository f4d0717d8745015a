/**
 * Jobs: a job's body (overall and per-stage progress, result banner), the job
 * as a run (live or static), rows of the recent-jobs list and the dashboard
 * panel. Pure functions of a `Job` (what the run store holds).
 */
import { INTERRUPTED_TEXT } from './agent.js'
import { ProgressBar, ResultBanner, type ResultOutcome } from './progress.js'
import { RunDetail, RunStatusBadge, type RunStatus } from './run.js'
import type { Children } from '@kitajs/html'
import { Oob } from './sse.js'

export interface JobStage {
  name: string
  durationMs: number
}

/** A job as stored: its stages and the (simulated) time spent in each. */
export interface Job {
  readonly id: string
  readonly title: string
  readonly stages: readonly JobStage[]
  readonly status: RunStatus
  /** Time spent per stage, ms. */
  readonly elapsed: readonly number[]
  readonly failAtStage?: number | undefined
  readonly startedAt: number
  readonly finishedAt?: number | undefined
}

const total = (job: Job): number => job.stages.reduce((sum, s) => sum + s.durationMs, 0)
const spent = (job: Job): number => job.elapsed.reduce((sum, e) => sum + e, 0)

/** Overall progress, 0..100. */
export function jobPercent (job: Job): number {
  const t = total(job)
  return t > 0 ? Math.min(100, spent(job) / t * 100) : 100
}

/** Index of the stage in progress (`stages.length` when all are complete). */
export function currentStage (job: Job): number {
  const i = job.stages.findIndex((s, k) => (job.elapsed[k] ?? 0) < s.durationMs)
  return i === -1 ? job.stages.length : i
}

function outcomeOf (job: Job): { outcome: ResultOutcome, text: string } {
  const took = ((job.finishedAt ?? job.startedAt) - job.startedAt) / 1000
  switch (job.status) {
    case 'done': return { outcome: 'success', text: `Completed all ${job.stages.length} stages in ${took.toFixed(1)} s.` }
    case 'failed': return { outcome: 'error', text: `Failed during “${job.stages[job.failAtStage ?? 0]?.name ?? 'a stage'}”.` }
    case 'interrupted': return { outcome: 'interrupted', text: `${INTERRUPTED_TEXT} It had reached ${Math.round(jobPercent(job))}%.` }
    default: return { outcome: 'cancelled', text: `Cancelled at ${Math.round(jobPercent(job))}%.` }
  }
}

/** The body of a job page: overall bar, one bar per stage, and the banner slot. */
export function JobBody (props: { job: Job }): JSX.Element {
  const { job } = props
  const stage = currentStage(job)
  const running = job.status === 'running'
  const label = running ? `Overall · ${job.stages[stage]?.name ?? 'finishing'}` : 'Overall'
  return (
    <>
      <ProgressBar id={`job-${job.id}-overall`} value={jobPercent(job)} label={label} />
      <ol class='stages'>
        {job.stages.map((s, i) => {
          const state = i < stage ? 'done' : i === stage && running ? 'active' : i === stage && job.status === 'failed' ? 'failed' : 'pending'
          return (
            <li class={`stage stage-${state}`} data-state={state}>
              <ProgressBar value={(job.elapsed[i] ?? 0) / s.durationMs * 100} label={s.name} />
            </li>
          )
        })}
      </ol>
      <div id={`job-${job.id}-banner`} class='banner-slot'>
        {running ? '' : <ResultBanner {...outcomeOf(job)} />}
      </div>
    </>
  )
}

/** The live update of a running job: its body, replaced out of band. */
export function JobProgress (props: { job: Job }): JSX.Element {
  return <Oob id={`run-${props.job.id}-body`} swap='innerHTML'><JobBody job={props.job} /></Oob>
}

export interface JobRunProps {
  job: Job
  /** Base URL of the job pages. */
  base: string
  /** The page's connect element for `job:<id>` (`live.element`), shown while the job runs. */
  live?: Children
  /** The last update of a finished job: the whole run, out of band. */
  oob?: boolean
}

/** A job as a run (`RunDetail`): live (with its connection) while running, static once finished. */
export function JobRun (props: JobRunProps): JSX.Element {
  const { job } = props
  return (
    <RunDetail
      run={{ id: job.id, status: job.status, title: job.title, startedAt: job.startedAt, finishedAt: job.finishedAt }}
      live={props.live} oob={props.oob}
    >
      <JobBody job={job} />
    </RunDetail>
  )
}

/** Under a job: its cancel button while it runs, a link to all jobs once it ended. `oob` replaces them out of band. */
export function JobActions (props: { job: Job, base: string, oob?: boolean }): JSX.Element {
  const { job, base } = props
  const cancel = `${base}/${job.id}/cancel`
  return (
    <div id={`job-${job.id}-actions`} class='job-actions' hx-swap-oob={props.oob === true ? 'true' : undefined}>
      {job.status === 'running'
        ? <form method='post' action={cancel} hx-post={cancel} hx-swap='none'><button type='submit' class='secondary'>Cancel job</button></form>
        : <a href={base}>All jobs</a>}
    </div>
  )
}

/**
 * What turns a live job page into the static one: the whole run (badge,
 * banner; the connection element goes with it) and the actions, out of band.
 */
export function JobFinished (props: { job: Job, base: string }): JSX.Element {
  return (
    <>
      <JobRun job={props.job} base={props.base} oob />
      <JobActions job={props.job} base={props.base} oob />
    </>
  )
}

/** One row of the recent-jobs list. */
export function JobRow (props: { job: Job, href: string }): JSX.Element {
  const { job } = props
  return (
    <li class='job-row' data-status={job.status}>
      <a href={props.href} safe>{job.title}</a>
      <RunStatusBadge runId={`row-${job.id}`} status={job.status} />
      <ProgressBar value={jobPercent(job)} label={`${job.title} progress`} />
    </li>
  )
}

/** The recent-jobs list items, newest first. */
export function JobList (props: { jobs: readonly Job[], base: string }): JSX.Element {
  if (props.jobs.length === 0) return <li class='muted small'>No jobs yet. Start one.</li>
  return <>{props.jobs.map(job => <JobRow job={job} href={`${props.base}/${job.id}`} />)}</>
}

/** The list update: `#jobs-list`'s content, out of band. */
export function JobListUpdate (props: { jobs: readonly Job[], base: string }): JSX.Element {
  return <Oob id='jobs-list' swap='innerHTML'><JobList jobs={props.jobs} base={props.base} /></Oob>
}

/** Dashboard panel: a start button and the recent jobs (live through the list topic). */
export function JobsPanel (props: { jobs: readonly Job[], base: string }): JSX.Element {
  const { base } = props
  return (
    <section class='card jobs-card' aria-label='Jobs'>
      <header>
        <h2>Jobs</h2>
        <form method='post' action={base} hx-post={base} hx-swap='none' class='inline-form'>
          <button type='submit'>Start job</button>
        </form>
      </header>
      <ol id='jobs-list' class='job-list'>
        <JobList jobs={props.jobs} base={base} />
      </ol>
    </section>
  )
}
