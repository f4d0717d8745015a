/**
 * Executes (simulated) jobs and keeps them in a run store, so any instance
 * renders any job: the store holds each job's stages and progress, this
 * process holds only the timers of the jobs it runs. Each tick is written to
 * the store first, then published (`job:<id>` gets the new body, `jobs` the
 * new list); a write the store refuses means the job is no longer ours
 * (interrupted by another instance after we stalled), and it stops here.
 *
 * No timer callback lets a store failure escape: a progress write that fails
 * is skipped (the next tick writes the whole state again), and a job's end
 * (done, failed, cancelled) is retried with backoff until the store answers,
 * holding the lease meanwhile, so a stall or an outage while a job finishes
 * neither crashes the process nor leaves the job "running" until some
 * instance interrupts it.
 */
import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { SseHub } from '../plugin/hub.js'
import { currentStage, JobFinished, JobListUpdate, JobProgress, type Job, type JobStage } from '../views/jobs.js'
import type { RunStatus } from './store.js'
import { SSE_CLOSE_EVENT } from '../views/sse.js'
import { retryStore, RunLeases, type RunLeaseOptions } from './lease.js'
import { instanceId, MemoryRunStore, type NewRun, type RunStore, type StoredRun } from './store.js'
import { SseInvalidOptionError, SseNotReadyError } from '../plugin/errors.js'

export interface JobsOptions extends RunLeaseOptions {
  /** Topic of one job is `${topicPrefix}${id}`. Default 'job:'. */
  topicPrefix?: string
  /** Topic of the recent-jobs list (a dashboard panel). Default 'jobs'. */
  listTopic?: string
  /** Stages every job runs through. Default: queue, fetch, transform, upload (~7 s). */
  stages?: readonly JobStage[]
  /** Progress tick. Default 250 ms. Progress is counted in ticks, so runs are deterministic. */
  tickMs?: number
  /** Jobs kept in the store; the oldest finished ones are dropped first. Default 50. */
  maxJobs?: number
  /** Jobs shown in the recent-jobs list. Default 6. */
  listSize?: number
  /** Where jobs are kept. Default: a `MemoryRunStore` of this runner (gone on restart). */
  store?: RunStore
  /** This process as a run owner. Default `instanceId()`. */
  owner?: string
}

export const DEFAULT_STAGES: readonly JobStage[] = [
  { name: 'Queue', durationMs: 500 },
  { name: 'Fetch sources', durationMs: 1750 },
  { name: 'Transform', durationMs: 2750 },
  { name: 'Upload artefacts', durationMs: 1500 }
]

/** The store kind of jobs. */
export const JOB_KIND = 'job'

/** What a job keeps in `StoredRun.data`. */
interface JobData {
  stages: JobStage[]
  elapsed: number[]
  failAtStage?: number
}

/** A stored run as a job (the views' `Job`). */
export function jobOf (run: StoredRun): Job {
  const data = run.data as JobData
  return {
    id: run.id,
    title: run.title,
    status: run.status,
    stages: data.stages,
    elapsed: data.elapsed,
    failAtStage: data.failAtStage,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt
  }
}

/** What `cancel` did. Of concurrent cancels of one job exactly one gets 'cancelled' or 'requested'. */
export type CancelOutcome =
  | { result: 'cancelled', job: Job }
  /** This process stopped it; the store was unreachable, so it is recorded as cancelled once the store answers. */
  | { result: 'pending', job: Job }
  /** Another instance runs it; it finishes as cancelled when that owner next renews. */
  | { result: 'requested', job: Job }
  /** Another instance runs it and a cancel was already requested (by an earlier call). */
  | { result: 'already-requested', job: Job }
  /** Over, or ending (`job.status` says how, e.g. cancelled by a concurrent call). */
  | { result: 'not-running', job: Job }
  | { result: 'unknown' }

/** A job this process executes. */
interface Running {
  job: Job
  timer?: NodeJS.Timeout | undefined
}

/** A job this process ended, while its end is being stored. */
interface Ending {
  /** The job as it ended. */
  job: Job
  /** The job once its end is stored and announced; undefined if it was no longer ours (or the runner closed first). */
  done: Promise<Job | undefined>
  /** Resolves when the first attempt to store the end failed (it is being retried). */
  stalled: Promise<void>
}

export class JobRunner {
  readonly topicPrefix: string
  readonly listTopic: string
  readonly stages: readonly JobStage[]
  readonly tickMs: number
  readonly maxJobs: number
  readonly listSize: number
  readonly store: RunStore
  readonly owner: string
  /** Base URL of the job pages (set by `jobsRoutes`). */
  base = '/jobs'
  readonly #leaseOptions: RunLeaseOptions
  readonly #running = new Map<string, Running>()
  readonly #ending = new Map<string, Ending>()
  readonly #closing = new AbortController()
  #leases: RunLeases | undefined
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
    this.store = options.store ?? new MemoryRunStore()
    this.owner = options.owner ?? instanceId()
    this.#leaseOptions = { leaseMs: options.leaseMs, sweepMs: options.sweepMs }
    if (!(this.maxJobs >= 1)) throw new SseInvalidOptionError('maxJobs (JobRunner)', 'must be at least 1')
  }

  /** Connects the runner to a hub and starts its lease loop (done by `jobsRoutes`). */
  bind (hub: SseHub, log: FastifyBaseLogger): void {
    this.#hub = hub
    this.#log = log
    this.#leases ??= new RunLeases(this.store, this.owner, JOB_KIND, {
      onCancel: id => { this.#cancelOwn(id) },
      onInterrupted: async run => await this.#announce(jobOf(run))
    }, log, this.#leaseOptions)
    this.#leases.start()
  }

  topicOf (id: string): string { return this.topicPrefix + id }
  hrefOf (id: string): string { return `${this.base}/${id}` }

  /** A job as stored (interrupted first if its owner's lease ran out). */
  async get (id: string): Promise<Job | undefined> {
    const run = await this.store.get(JOB_KIND, id)
    if (run === undefined) return undefined
    return jobOf(this.#leases === undefined ? run : await this.#leases.settle(run))
  }

  /** The newest `listSize` jobs, newest first. */
  async recent (): Promise<Job[]> {
    return (await this.store.recent(JOB_KIND, this.listSize)).map(jobOf)
  }

  /** Starts a job; undefined when the store is full of running jobs. */
  async start (options: { title?: string, fail?: boolean } = {}): Promise<Job | undefined> {
    if (this.#leases === undefined) throw new SseNotReadyError('JobRunner: not bound to a hub (register jobsRoutes)')
    const id = randomBytes(4).toString('hex')
    const title = options.title !== undefined && options.title.trim() !== '' ? options.title.trim().slice(0, 80) : `Build #${++this.#seq}`
    const data: JobData = {
      stages: this.stages.map(s => ({ name: s.name, durationMs: s.durationMs })),
      elapsed: this.stages.map(() => 0),
      ...(options.fail === true ? { failAtStage: Math.max(0, this.stages.length - 1) } : {})
    }
    const run: NewRun = { id, kind: JOB_KIND, title, owner: this.owner, startedAt: Date.now(), data }
    const { created, dropped } = await this.store.create(run, this.maxJobs, this.#leases.leaseMs)
    for (const gone of dropped) await this.#hub?.forget(this.topicOf(gone)).catch(() => {})
    if (!created) return undefined
    const job = jobOf({ ...run, status: 'running', leaseUntil: 0 })
    this.#leases.hold(id)
    const own: Running = { job }
    this.#running.set(id, own)
    this.#schedule(own)
    await this.#publishList()
    return job
  }

  /** Cancels a running job, here or (through the store) on the instance that runs it. */
  async cancel (id: string): Promise<CancelOutcome> {
    // Ending here (finished, or cancelled by a concurrent call): decided, whether or not stored yet.
    const ending = this.#ending.get(id)
    if (ending !== undefined) return { result: 'not-running', job: ending.job }
    const own = this.#cancelOwn(id)
    if (own !== undefined) {
      const first = await Promise.race([own.done, own.stalled.then(() => 'stalled' as const)])
      if (first === 'stalled') return { result: 'pending', job: own.job }
      if (first !== undefined) return { result: 'cancelled', job: first }
    }
    const asked = await this.store.requestCancel(JOB_KIND, id)
    if (asked === undefined) return { result: 'unknown' }
    const job = jobOf(asked.run)
    if (job.status !== 'running') return { result: 'not-running', job }
    return asked.first ? { result: 'requested', job } : { result: 'already-requested', job }
  }

  /**
   * Stops the timers. The jobs this process was running are recorded as
   * interrupted at once (other instances need not wait for the lease), and
   * their pages turn static.
   */
  async close (): Promise<void> {
    await this.#leases?.stop()
    // Ends still being retried get one last attempt each; so do the interruptions below.
    this.#closing.abort()
    const owned = [...this.#running.values()]
    for (const own of owned) clearTimeout(own.timer)
    this.#running.clear()
    for (const own of owned) await this.#finish(own, 'interrupted').done
    await Promise.all([...this.#ending.values()].map(async e => await e.done))
  }

  #cancelOwn (id: string): Ending | undefined {
    const own = this.#running.get(id)
    if (own === undefined) return undefined
    this.#running.delete(id)
    clearTimeout(own.timer)
    return this.#finish(own, 'cancelled')
  }

  #schedule (own: Running): void {
    own.timer = setTimeout(() => {
      this.#tick(own).catch((err: unknown) => this.#log?.error({ err, job: own.job.id }, 'jobs: tick failed'))
    }, this.tickMs)
    own.timer.unref()
  }

  async #tick (own: Running): Promise<void> {
    own.timer = undefined
    if (this.#running.get(own.job.id) !== own) return
    const job = own.job
    const i = currentStage(job)
    const stage = job.stages[i]
    if (stage !== undefined && job.failAtStage === i && (job.elapsed[i] ?? 0) >= stage.durationMs / 2) {
      this.#running.delete(job.id)
      await this.#finish(own, 'failed').done
      return
    }
    const elapsed = job.elapsed.map((e, k) => k === i && stage !== undefined ? Math.min(stage.durationMs, e + this.tickMs) : e)
    own.job = { ...job, elapsed }
    if (currentStage(own.job) >= job.stages.length) {
      this.#running.delete(job.id)
      await this.#finish(own, 'done').done
      return
    }
    let kept: boolean
    try {
      kept = await this.store.update(JOB_KIND, job.id, this.owner, { data: dataOf(own.job) })
    } catch (err) {
      // The store is unreachable: keep running; the lease decides who owns it.
      this.#log?.warn({ err, job: job.id }, 'jobs: progress not stored')
      kept = true
    }
    if (!kept || this.#running.get(job.id) !== own) return this.#lost(own)
    this.#schedule(own)
    await this.#publish(this.topicOf(job.id), <JobProgress job={own.job} />)
    await this.#publishList()
  }

  /** The store no longer lets us run it (another instance interrupted or dropped it). */
  #lost (own: Running): void {
    if (this.#running.get(own.job.id) === own) this.#running.delete(own.job.id)
    this.#leases?.release(own.job.id)
    this.#log?.warn({ job: own.job.id }, 'jobs: lost the lease; stopped')
  }

  /**
   * Ends a job this process runs (already out of `#running`): stores its end,
   * retrying through a store outage with the lease still held (so renewals
   * keep it ours once the store is back), then announces it. Never rejects.
   */
  #finish (own: Running, status: RunStatus): Ending {
    const job: Job = { ...own.job, status, finishedAt: Date.now() }
    let stalled!: () => void
    const ending: Ending = { job, done: Promise.resolve(undefined), stalled: new Promise<void>(resolve => { stalled = resolve }) }
    this.#ending.set(job.id, ending)
    ending.done = (async () => {
      let attempts = 0
      try {
        const stored = await retryStore(async () => await this.#storeEnd(job, attempts++ > 0), {
          what: `job ${job.id} ${status}`, log: this.#log, signal: this.#closing.signal, onFail: stalled
        })
        if (!stored) {
          this.#lost(own)
          return undefined
        }
        this.#leases?.release(job.id)
        await this.#announce(job)
        return job
      } catch (err) {
        // Only when closing with the store still unreachable: its lease runs out and another instance interrupts it.
        this.#leases?.release(job.id)
        this.#log?.error({ err, job: job.id, status }, 'jobs: end not stored before closing')
        return undefined
      } finally {
        this.#ending.delete(job.id)
      }
    })()
    return ending
  }

  /** One attempt to store a job's end. True when it stands stored (by this attempt, or by an earlier one whose reply was lost). */
  async #storeEnd (job: Job, retry: boolean): Promise<boolean> {
    if (await this.store.update(JOB_KIND, job.id, this.owner, { status: job.status, finishedAt: job.finishedAt, data: dataOf(job) })) return true
    if (!retry) return false
    const stored = await this.store.get(JOB_KIND, job.id)
    return stored?.owner === this.owner && stored.status === job.status && stored.finishedAt === job.finishedAt
  }

  /**
   * Tells pages a job ended: the whole run in its static form, out of band,
   * then the close event (so no client reconnects to a finished job), and the
   * new list.
   */
  async #announce (job: Job): Promise<void> {
    const topic = this.topicOf(job.id)
    await this.#publish(topic, <JobFinished job={job} base={this.base} />)
    await this.#publish(topic, job.status, SSE_CLOSE_EVENT)
    await this.#publishList()
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
    try {
      const jobs = await this.recent()
      await this.#publish(this.listTopic, <JobListUpdate jobs={jobs} base={this.base} />)
    } catch (err) {
      this.#log?.warn({ err }, 'jobs: list not published')
    }
  }
}

function dataOf (job: Job): JobData {
  return { stages: [...job.stages], elapsed: [...job.elapsed], ...(job.failAtStage === undefined ? {} : { failAtStage: job.failAtStage }) }
}
