/**
 * Background jobs with live progress. POST starts a (simulated) job and
 * answers with its page; each tick is an unnamed event on `job:<id>` that
 * replaces the run's body out of band; the last one replaces the whole run
 * with its static form (badge, result banner), then `done` closes the stream.
 * The job page is live only while the job runs (decided by its stored
 * status), so a finished job's page is plain HTML and a reload mid-job resumes.
 */
import { randomBytes } from 'node:crypto'
import type { Children } from '@kitajs/html'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { SseHub } from '../plugin/index.js'
import { Oob, ProgressBar, ResultBanner, RunDetail, RunStatusBadge, SSE_CLOSE_EVENT, type HtmxVersion, type ResultOutcome, type RunStatus } from '../views/index.js'
import { acceptForms, htmxOf, isHtmx, pageCursor, RoutePage, routeModule, wantsJson, type HtmxOption } from './util.js'

export interface JobStage {
  name: string
  durationMs: number
}

export interface JobsOptions {
  /** Topic of one job is `${topicPrefix}${id}`. Default 'job:'. */
  topicPrefix?: string
  /** Topic of the recent-jobs list (a dashboard panel). Default 'jobs'. */
  listTopic?: string
  /** Stages every job runs through. Default: queue, fetch, transform, upload (~7 s). */
  stages?: readonly JobStage[]
  /** Progress tick. Default 250 ms. Progress is counted in ticks, so runs are deterministic. */
  tickMs?: number
  /** Jobs kept in memory; the oldest finished ones are dropped first. Default 50. */
  maxJobs?: number
  /** Jobs shown in the recent-jobs list. Default 6. */
  listSize?: number
}

export const DEFAULT_STAGES: readonly JobStage[] = [
  { name: 'Queue', durationMs: 500 },
  { name: 'Fetch sources', durationMs: 1750 },
  { name: 'Transform', durationMs: 2750 },
  { name: 'Upload artefacts', durationMs: 1500 }
]

export interface Job {
  readonly id: string
  readonly title: string
  readonly stages: readonly JobStage[]
  status: RunStatus
  /** Simulated time spent per stage, ms. */
  readonly elapsed: number[]
  readonly failAtStage: number | undefined
  readonly startedAt: number
  finishedAt?: number
  timer?: NodeJS.Timeout | undefined
}

const total = (job: Job): number => job.stages.reduce((sum, s) => sum + s.durationMs, 0)
const done = (job: Job): number => job.elapsed.reduce((sum, e) => sum + e, 0)

/** Overall progress, 0..100. */
export function jobPercent (job: Job): number {
  const t = total(job)
  return t > 0 ? Math.min(100, done(job) / t * 100) : 100
}

function currentStage (job: Job): number {
  const i = job.stages.findIndex((s, k) => (job.elapsed[k] ?? 0) < s.durationMs)
  return i === -1 ? job.stages.length : i
}

function outcomeOf (job: Job): { outcome: ResultOutcome, text: string } {
  const took = ((job.finishedAt ?? Date.now()) - job.startedAt) / 1000
  if (job.status === 'done') return { outcome: 'success', text: `Completed all ${job.stages.length} stages in ${took.toFixed(1)} s.` }
  if (job.status === 'failed') return { outcome: 'error', text: `Failed during “${job.stages[job.failAtStage ?? 0]?.name ?? 'a stage'}”.` }
  return { outcome: 'cancelled', text: `Cancelled at ${Math.round(jobPercent(job))}%.` }
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

/**
 * A job as a run (`RunDetail`): live (with its connection) while running,
 * static once finished; `oob` for the last update of a finished job.
 */
export function JobRun (props: { job: Job, base: string, htmx?: HtmxVersion, cursor?: string | undefined, resetUrl?: string | undefined, oob?: boolean }): JSX.Element {
  const { job } = props
  return (
    <RunDetail
      run={{ id: job.id, status: job.status, title: job.title, startedAt: job.startedAt, finishedAt: job.finishedAt }}
      htmx={props.htmx} streamUrl={`${props.base}/${job.id}/stream`} lastEventId={props.cursor} resetUrl={props.resetUrl} oob={props.oob}
    >
      <JobBody job={job} />
    </RunDetail>
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

/** The in-memory, bounded job store and its simulated runner. */
export class JobRunner {
  readonly topicPrefix: string
  readonly listTopic: string
  readonly stages: readonly JobStage[]
  readonly tickMs: number
  readonly maxJobs: number
  readonly listSize: number
  /** Base URL of the job pages (set by `jobsRoutes`). */
  base = '/jobs'
  readonly #jobs = new Map<string, Job>()
  #hub: SseHub | undefined
  #log: FastifyBaseLogger | undefined
  #seq = 0

  constructor (options: JobsOptions = {}) {
    this.topicPrefix = options.topicPrefix ?? 'job:'
    this.listTopic = options.listTopic ?? 'jobs'
    this.stages = options.stages ?? DEFAULT_STAGES
    this.tickMs = options.tickMs ?? 250
    this.maxJobs = options.maxJobs ?? 50
    this.listSize = options.listSize ?? 6
  }

  bind (hub: SseHub, log: FastifyBaseLogger): void {
    this.#hub = hub
    this.#log = log
  }

  get (id: string): Job | undefined { return this.#jobs.get(id) }
  topicOf (id: string): string { return this.topicPrefix + id }
  hrefOf (id: string): string { return `${this.base}/${id}` }
  recent (): Job[] { return [...this.#jobs.values()].reverse().slice(0, this.listSize) }

  /** Starts a job; undefined when the store is full of running jobs. */
  start (options: { title?: string, fail?: boolean } = {}): Job | undefined {
    if (!this.#makeRoom()) return undefined
    const id = randomBytes(4).toString('hex')
    const title = options.title !== undefined && options.title.trim() !== '' ? options.title.trim().slice(0, 80) : `Build #${++this.#seq}`
    const job: Job = {
      id,
      title,
      stages: this.stages,
      status: 'running',
      elapsed: this.stages.map(() => 0),
      failAtStage: options.fail === true ? Math.max(0, this.stages.length - 1) : undefined,
      startedAt: Date.now()
    }
    this.#jobs.set(id, job)
    this.#schedule(job)
    void this.#publishList()
    return job
  }

  /** Cancels a running job; false if it is not running. */
  cancel (id: string): boolean {
    const job = this.#jobs.get(id)
    if (job === undefined || job.status !== 'running') return false
    this.#finish(job, 'cancelled')
    return true
  }

  close (): void {
    for (const job of this.#jobs.values()) {
      if (job.timer !== undefined) clearTimeout(job.timer)
      job.timer = undefined
    }
  }

  #makeRoom (): boolean {
    if (this.#jobs.size < this.maxJobs) return true
    for (const [id, job] of this.#jobs) {
      if (job.status !== 'running') {
        this.#jobs.delete(id)
        return true
      }
    }
    return false
  }

  #schedule (job: Job): void {
    job.timer = setTimeout(() => this.#tick(job), this.tickMs)
    job.timer.unref()
  }

  #tick (job: Job): void {
    job.timer = undefined
    if (job.status !== 'running') return
    const i = currentStage(job)
    const stage = job.stages[i]
    if (stage !== undefined) {
      if (job.failAtStage === i && (job.elapsed[i] ?? 0) >= stage.durationMs / 2) {
        this.#finish(job, 'failed')
        return
      }
      job.elapsed[i] = Math.min(stage.durationMs, (job.elapsed[i] ?? 0) + this.tickMs)
    }
    if (currentStage(job) >= job.stages.length) {
      this.#finish(job, 'done')
      return
    }
    this.#schedule(job)
    void this.#publish(this.topicOf(job.id), <Oob id={`run-${job.id}-body`} swap='innerHTML'><JobBody job={job} /></Oob>)
    void this.#publishList()
  }

  #finish (job: Job, status: RunStatus): void {
    if (job.timer !== undefined) clearTimeout(job.timer)
    job.timer = undefined
    job.status = status
    job.finishedAt = Date.now()
    const topic = this.topicOf(job.id)
    // The last update turns a live page into the static one (the run section,
    // its badge and banner, replaced out of band; the connection element goes
    // with it), then the close event, so no client reconnects to a finished job.
    void this.#publish(topic, (
      <>
        <JobRun job={job} base={this.base} oob />
        <Oob id={`job-${job.id}-actions`} class='job-actions'><a href={this.base}>All jobs</a></Oob>
      </>
    )).then(() => this.#publish(topic, status, SSE_CLOSE_EVENT))
    void this.#publishList()
  }

  /** Publishes an unnamed (DOM update) event, or with `event` a named control event. */
  async #publish (topic: string, data: JSX.Element, event?: string): Promise<void> {
    try {
      await this.#hub?.publish(topic, { event, data })
    } catch (err) {
      this.#log?.warn({ err, topic }, 'jobs: publish failed')
    }
  }

  async #publishList (): Promise<void> {
    await this.#publish(this.listTopic, <Oob id='jobs-list' swap='innerHTML'><JobList runner={this} /></Oob>)
  }
}

/** The recent-jobs list items (each list update replaces `#jobs-list`'s content out of band). */
export function JobList (props: { runner: JobRunner }): JSX.Element {
  const jobs = props.runner.recent()
  if (jobs.length === 0) return <li class='muted small'>No jobs yet. Start one.</li>
  return <>{jobs.map(job => <JobRow job={job} href={props.runner.hrefOf(job.id)} />)}</>
}

/** Dashboard panel: a start button and the recent jobs, live through the list topic. */
export function JobsPanel (props: { runner: JobRunner }): JSX.Element {
  const base = props.runner.base
  return (
    <section class='card jobs-card' aria-label='Jobs'>
      <header>
        <h2>Jobs</h2>
        <form method='post' action={base} hx-post={base} hx-swap='none' class='inline-form'>
          <button type='submit'>Start job</button>
        </form>
      </header>
      <ol id='jobs-list' class='job-list'>
        <JobList runner={props.runner} />
      </ol>
    </section>
  )
}

export interface JobsRoutesOptions extends JobsOptions, HtmxOption {
  runner?: JobRunner
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
 * `GET /` jobs page with a start form, `POST /` start (303 to the job page; 202
 * for htmx; 201 JSON for clients that prefer it, see `wantsJson`), `GET /:id`
 * job page (live while running), `GET /:id/stream`, `POST /:id/cancel`.
 */
export const jobsRoutes = routeModule<JobsRoutesOptions>('jobs', async (app, options) => {
  const runner = options.runner ?? new JobRunner(options)
  runner.bind(app.sseHub, app.log)
  runner.base = app.prefix
  app.addHook('onClose', async () => runner.close())
  await acceptForms(app)
  const base = app.prefix
  const htmx = htmxOf(options)

  app.post<{ Body: { title?: string, fail?: string } | null }>('/', { schema: { body: startBody } }, async (request, reply) => {
    const job = runner.start({ title: request.body?.title, fail: request.body?.fail === '1' })
    if (job === undefined) return reply.code(503).header('retry-after', '5').send({ error: 'too many running jobs' })
    const href = runner.hrefOf(job.id)
    if (isHtmx(request.headers)) return reply.code(202).header('location', href).send()
    if (wantsJson(request)) return reply.code(201).header('location', href).send({ id: job.id, url: href })
    return reply.redirect(href, 303)
  })

  app.get<{ Params: { id: string } }>('/:id/stream', (request, reply) => {
    // A job that is gone still gets a stream, with the close event: a 404
    // would make htmx 4 retry a reconnect forever.
    if (runner.get(request.params.id) === undefined) return reply.sse([{ event: SSE_CLOSE_EVENT, data: 'gone' }])
    return reply.sse({ topics: [runner.topicOf(request.params.id)] })
  })

  app.post<{ Params: { id: string } }>('/:id/cancel', async (request, reply) => {
    const job = runner.get(request.params.id)
    if (job === undefined) return reply.code(404).send({ error: 'no such job' })
    if (!runner.cancel(job.id)) return reply.code(409).send({ error: `job is ${job.status}` })
    if (isHtmx(request.headers)) return reply.code(204).send()
    return reply.redirect(runner.hrefOf(job.id), 303)
  })

  app.get<{ Params: { id: string } }>('/:id', async (request, reply) => {
    // The cursor first, then the state: whatever is published after the cursor is
    // replayed on connect, and progress events replace the body, so replaying one
    // the page already shows is harmless.
    const cursor = await pageCursor(app.sseHub)
    const job = runner.get(request.params.id)
    if (job === undefined) return reply.code(404).html(<JobsLayout app={app} htmx={htmx} title='No such job'><p class='card'>This job does not exist (or was dropped from memory). <a href={base}>All jobs</a></p></JobsLayout>)
    const running = job.status === 'running'
    const refresh = app.htmxSse.refreshPath
    return reply.html(
      <JobsLayout app={app} htmx={htmx} title={job.title}>
        <JobRun job={job} base={base} htmx={htmx} cursor={cursor} resetUrl={htmx === 4 && refresh !== false ? refresh : undefined} />
        <div id={`job-${job.id}-actions`} class='job-actions'>
          {running
            ? <form method='post' action={`${base}/${job.id}/cancel`} hx-post={`${base}/${job.id}/cancel`} hx-swap='none'><button type='submit' class='secondary'>Cancel job</button></form>
            : <a href={base}>All jobs</a>}
        </div>
      </JobsLayout>
    )
  })

  app.get('/', async (_request, reply) => {
    return reply.html(
      <JobsLayout app={app} htmx={htmx} title='Jobs'>
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
          <ol class='job-list'><JobList runner={runner} /></ol>
        </section>
      </JobsLayout>
    )
  })
})

function JobsLayout (props: { app: FastifyInstance, htmx: HtmxVersion, title: string, children?: Children }): JSX.Element {
  return (
    <RoutePage app={props.app} htmx={props.htmx} title={props.title}>
      <header class='app'><h1 safe>{props.title}</h1></header>
      <main class='app stack'>{props.children}</main>
    </RoutePage>
  )
}
