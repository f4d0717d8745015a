/**
 * Background jobs with live progress, as stored runs (see job-runner.tsx):
 * POST starts a job and answers with its page; each tick is an unnamed event
 * on `job:<id>` that replaces the run's body out of band; the last one
 * replaces the whole run with its static form (badge, result banner), then
 * `done` closes the page's connection. A job page is live only while the
 * job's stored status is running, on whichever instance renders it; a reload
 * mid-job resumes, and a job whose instance died shows as interrupted.
 */
import type { Children } from '@kitajs/html'
import { SSE_CLOSE_EVENT } from '../views/sse.js'
import { JobActions, JobList, JobRun } from '../views/jobs.js'
import type { LayoutLive } from '../views/layout.js'
import { JobRunner, type JobsOptions } from '../runs/job-runner.js'
import { acceptForms, isHtmx, RoutePage, routeModule, wantsJson } from './util.js'

export interface JobsRoutesOptions extends JobsOptions {
  runner?: JobRunner
}

const JOB_ID = /^[\w-]{1,48}$/

/** The start form or JSON body: both fields optional (a form with only a button posts nothing). */
const startBody = {
  type: ['object', 'null'],
  properties: {
    title: { type: 'string' },
    fail: { type: 'string' }
  }
} as const

/**
 * `GET /` jobs page with a start form and the recent jobs (live), `POST /`
 * start (303 to the job page; 202 for htmx; 201 JSON for clients that prefer
 * it, see `wantsJson`), `GET /:id` job page (live while running), `POST /:id/cancel`.
 */
export const jobsRoutes = routeModule<JobsRoutesOptions>('jobs', async (app, options) => {
  const runner = options.runner ?? new JobRunner(options)
  runner.bind(app.sseHub, app.log)
  runner.base = app.prefix
  app.addHook('onClose', async () => await runner.close())
  await acceptForms(app)
  const base = app.prefix

  app.post<{ Body: { title?: string, fail?: string } | null }>('/', { schema: { body: startBody } }, async (request, reply) => {
    const job = await runner.start({ title: request.body?.title, fail: request.body?.fail === '1' })
    if (job === undefined) return reply.code(503).header('retry-after', '5').send({ error: 'too many running jobs' })
    const href = runner.hrefOf(job.id)
    if (isHtmx(request.headers)) return reply.code(202).header('location', href).send()
    if (wantsJson(request)) return reply.code(201).header('location', href).send({ id: job.id, url: href })
    return reply.redirect(href, 303)
  })

  /**
   * Cancel. Of concurrent cancels of one job exactly one is accepted: 200
   * (JSON; htmx 204) when this instance ran it and the cancel is stored, 202
   * when it is accepted but not yet final (another instance runs it and
   * stops it on its next renewal, or this one stopped it and stores it once
   * the store answers). Every other cancel gets what a retry would: 409 with
   * the job's status ("job is cancelled", "job is done"), or "cancel already
   * requested" while the instance that runs it has not stopped it yet.
   * 404 for an unknown id, and for the id of a run of another kind.
   */
  app.post<{ Params: { id: string } }>('/:id/cancel', async (request, reply) => {
    const outcome = await runner.cancel(request.params.id)
    if (outcome.result === 'unknown') return reply.code(404).send({ error: 'no such job' })
    if (outcome.result === 'not-running') return reply.code(409).send({ error: `job is ${outcome.job.status}` })
    if (outcome.result === 'already-requested') return reply.code(409).send({ error: 'cancel already requested' })
    const final = outcome.result === 'cancelled'
    if (isHtmx(request.headers)) return reply.code(final ? 204 : 202).send()
    if (wantsJson(request)) return reply.code(final ? 200 : 202).send({ id: outcome.job.id, result: outcome.result })
    return reply.redirect(runner.hrefOf(outcome.job.id), 303)
  })

  app.get<{ Params: { id: string } }>('/:id', async (request, reply) => {
    // Live first, then the state: whatever is published after its cursor is
    // replayed on connect, and progress events replace the body, so replaying
    // one the page already shows is harmless. A finished job renders static
    // (the element is not put in the page); the scripts serve its links.
    // An id that cannot be part of a topic is no job of ours (ids are 8 hex digits).
    if (!JOB_ID.test(request.params.id)) return reply.code(404).html(<JobsLayout title='No such job'><p class='card'>No such job. <a href={base}>All jobs</a></p></JobsLayout>)
    const live = await reply.live([runner.topicOf(request.params.id)], { closeOn: SSE_CLOSE_EVENT })
    const job = await runner.get(request.params.id)
    if (job === undefined) return reply.code(404).html(<JobsLayout title='No such job'><p class='card'>This job does not exist (or was dropped: the store keeps the newest {runner.maxJobs}). <a href={base}>All jobs</a></p></JobsLayout>)
    return reply.html(
      <JobsLayout title={job.title} live={live}>
        <JobRun job={job} base={base} live={live.element} />
        <JobActions job={job} base={base} />
      </JobsLayout>
    )
  })

  app.get('/', async (_request, reply) => {
    const live = await reply.live([runner.listTopic])
    const jobs = await runner.recent()
    return reply.html(
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
          <ol id='jobs-list' class='job-list'><JobList jobs={jobs} base={base} /></ol>
        </section>
        {live.element}
      </JobsLayout>
    )
  })
})

function JobsLayout (props: { title: string, live?: LayoutLive, children?: Children }): JSX.Element {
  return (
    <RoutePage title={props.title} live={props.live}>
      <header class='app'><h1 safe>{props.title}</h1></header>
      <main class='app stack'>{props.children}</main>
    </RoutePage>
  )
}
