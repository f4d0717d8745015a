/**
 * Background jobs with live progress: the runs plugin (`fastify-htmx-sse/runs`)
 * running a demo work function. POST starts `app.runs.start('job', demoJob(…))`
 * and answers with the run's page (`/runs/job/:id`, served by the runs
 * plugin: live while the stored status is running, on whichever instance
 * renders it); the index lists the newest jobs, live on the kind's list topic.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { Children } from '@kitajs/html'
import type { LayoutLive } from '../views/layout.js'
import { RunList, type RunInfo } from '../views/run.js'
import type { RunContext } from '../runs/run.js'
// `app.runs` (the runs plugin's declaration merging).
import type {} from '../runs/plugin.js'
import { SseInvalidOptionError, SseRunsFullError } from '../plugin/errors.js'
import { acceptForms, isHtmx, RoutePage, routeModule, wantsJson } from './util.js'

export interface JobStage {
  name: string
  durationMs: number
}

export interface JobsRoutesOptions {
  /** Stages every job walks through. Default: queue, fetch, transform, upload (~6.5 s). */
  stages?: readonly JobStage[]
  /** How often a job reports progress. Default 250 ms. */
  tickMs?: number
}

export const DEFAULT_STAGES: readonly JobStage[] = [
  { name: 'Queue', durationMs: 500 },
  { name: 'Fetch sources', durationMs: 1750 },
  { name: 'Transform', durationMs: 2750 },
  { name: 'Upload artefacts', durationMs: 1500 }
]

/** The run kind of jobs. */
export const JOB_KIND = 'job'

/**
 * The demo's work function: walks the stages in ticks, reporting progress
 * (labelled with the stage) every tick and a log line per stage; with
 * `fail`, it throws halfway through the last stage.
 */
export function demoJob (options: { stages?: readonly JobStage[], tickMs?: number, fail?: boolean } = {}): (run: RunContext, signal: AbortSignal) => Promise<string> {
  const stages = options.stages ?? DEFAULT_STAGES
  const tickMs = options.tickMs ?? 250
  if (!(tickMs > 0) || stages.length === 0 || !stages.every(s => s.durationMs > 0)) throw new SseInvalidOptionError('stages/tickMs (jobs)', 'need stages of positive durations and tickMs > 0')
  const total = stages.reduce((sum, s) => sum + s.durationMs, 0)
  return async (run, signal) => {
    const started = Date.now()
    let spent = 0
    for (const [i, stage] of stages.entries()) {
      const label = `${stage.name} (${i + 1}/${stages.length})`
      await run.progress(spent / total, label)
      for (let at = 0; at < stage.durationMs;) {
        if (options.fail === true && i === stages.length - 1 && at >= stage.durationMs / 2) throw new Error(`${stage.name} failed (on purpose)`)
        await sleep(tickMs, undefined, { signal })
        const step = Math.min(tickMs, stage.durationMs - at)
        at += step
        spent += step
        await run.progress(spent / total, label)
      }
      await run.append(`${stage.name}: done`)
    }
    return `Completed all ${stages.length} stages in ${((Date.now() - started) / 1000).toFixed(1)} s.`
  }
}

/** The start form or JSON body: both fields optional (a form with only a button posts nothing). */
const startBody = {
  type: ['object', 'null'],
  properties: {
    title: { type: 'string' },
    fail: { type: 'string' }
  }
} as const

/**
 * `GET /` jobs page with a start form and the newest jobs (live), `POST /`
 * start (303 to the job's page; 202 for htmx; 201 `{ id, url }` for clients
 * that prefer JSON, see `wantsJson`). Needs the runs plugin (`app.runs`).
 */
export const jobsRoutes = routeModule<JobsRoutesOptions>('jobs', async (app, options) => {
  // Checked now, not at the first start.
  demoJob(options)
  await acceptForms(app)
  const base = app.prefix
  let seq = 0

  app.post<{ Body: { title?: string, fail?: string } | null }>('/', { schema: { body: startBody } }, async (request, reply) => {
    const title = request.body?.title?.trim().slice(0, 80) ?? ''
    let run
    try {
      run = await app.runs.start(JOB_KIND, demoJob({ ...options, fail: request.body?.fail === '1' }), { title: title === '' ? `Build #${++seq}` : title })
    } catch (err) {
      if (err instanceof SseRunsFullError) return await reply.code(503).header('retry-after', '5').send({ error: 'too many running jobs' })
      throw err
    }
    if (isHtmx(request.headers)) return await reply.code(202).header('location', run.url).send()
    if (wantsJson(request)) return await reply.code(201).header('location', run.url).send({ id: run.id, url: run.url })
    return await reply.redirect(run.url, 303)
  })

  app.get('/', async (_request, reply) => {
    const live = await reply.live([app.runs.listTopic(JOB_KIND)])
    const jobs = await app.runs.recent(JOB_KIND)
    return await reply.html(
      <JobsLayout title='Jobs' live={live}>
        <section class='card'>
          <form method='post' action={base} class='stack-form'>
            <div class='row'>
              <input name='title' aria-label='Job title' placeholder='Job title (optional)' maxlength='80' />
              <label class='check'><input type='checkbox' name='fail' value='1' /> fail on purpose</label>
              <button type='submit'>Start job</button>
            </div>
          </form>
        </section>
        <section class='card'>
          <h2>Recent jobs</h2>
          <RunList id={app.runs.listId(JOB_KIND)} runs={jobs} />
        </section>
        {live.element}
      </JobsLayout>
    )
  })
}, ['fastify-htmx-sse/runs'])

/** Dashboard panel: a start button and the newest jobs (live through `app.runs.listTopic('job')`, which the page follows). */
export function JobsPanel (props: { jobs: readonly RunInfo[], action: string, list: string }): JSX.Element {
  return (
    <section class='card jobs-card' aria-label='Jobs'>
      <header>
        <h2>Jobs</h2>
        <form method='post' action={props.action} hx-post={props.action} hx-swap='none' class='inline-form'>
          <button type='submit'>Start job</button>
        </form>
      </header>
      <RunList id={props.list} runs={props.jobs} />
    </section>
  )
}

function JobsLayout (props: { title: string, live?: LayoutLive, children?: Children }): JSX.Element {
  return (
    <RoutePage title={props.title} live={props.live}>
      <header class='app'><h1 safe>{props.title}</h1></header>
      <main class='app stack'>{props.children}</main>
    </RoutePage>
  )
}
