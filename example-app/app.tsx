/**
 * The bundled dashboard: the plugin, every route module, and one page that
 * shows them all over ONE SSE connection (`reply.live` of every panel's
 * topics). `buildApp()` is what `npm start` serves and what the tests build.
 *
 * From a clone, `npm start` runs it with tsx; it imports the package's own
 * files (the plugin under its package name, as a user would).
 */
import { randomBytes } from 'node:crypto'
import os from 'node:os'
import { fastifyKitaHtml } from '@kitajs/fastify-html-plugin'
import Fastify, { type FastifyInstance } from 'fastify'
import htmxSse from 'fastify-htmx-sse'
import { sseMetrics } from 'fastify-htmx-sse/metrics'
import { Registry } from 'prom-client'
import type { LiveSecret } from '../plugin/live-token.js'
import type { HubTransport } from '../plugin/transport.js'
import { AgentRunner } from '../runs/agent-runner.js'
import { agentRoutes } from '../routes/agent.js'
import { simulatedAgent, type AgentSource, type SimulatedAgentOptions } from '../runs/agent-source.js'
import { ChatPanel, chatRoutes, chatTopic } from '../routes/chat.js'
import { runs } from '../runs/plugin.js'
import { JOB_KIND, JobsPanel, jobsRoutes, type JobsRoutesOptions } from '../routes/jobs.js'
import { LogFeed, logsRoutes } from '../routes/logs.js'
import { MetricsFeed, metricsRoutes, type Sampler } from '../routes/metrics.js'
import { NotificationsPanel, notificationsRoutes } from '../routes/notifications.js'
import type { RunStore } from '../runs/store.js'
import { HubStatsFeed, hubStatsRoutes } from '../routes/stats.js'
import { RoutePage } from '../routes/util.js'
import { AgentPanel } from '../views/agent.js'

export interface BuildAppOptions {
  /** Log level, or false for no logger (and no log tail). Default 'info'. */
  logLevel?: string | false
  /**
   * Where log lines are echoed besides the live tail: true (default) for stdout as
   * pino JSON, false for nowhere (tests), or a stream (e.g. pino-pretty's).
   */
  echoLogs?: boolean | { write: (chunk: string) => unknown }
  /** Metrics source; default reads this machine (systeminformation). */
  sampler?: Sampler
  /** Default 1000 ms. */
  metricsIntervalMs?: number
  /** Keep sampling after the last viewer left. Default 5 000 ms. */
  metricsLingerMs?: number
  /** Default 2000 ms. */
  statsIntervalMs?: number
  /** The demo jobs' stages and tick. */
  jobs?: JobsRoutesOptions
  /** An AgentSource, or options for the bundled simulator. */
  agent?: AgentSource | SimulatedAgentOptions
  /** Hub transport (default in-process). Pass one object to several apps to keep history across restarts. */
  transport?: HubTransport
  /**
   * Where jobs and agent runs are kept (default in this process, gone when it
   * exits). A `RedisRunStore` on the transport's Redis lets every instance
   * render every run and keeps them across restarts.
   */
  runStore?: RunStore
  /** Run leases (a dead instance's runs show as interrupted after about leaseMs + sweepMs). Defaults 6 000 / 2 000 ms. */
  leases?: { leaseMs?: number, sweepMs?: number }
  heartbeatMs?: number | false
  retryMs?: number
  /** The chat room previewed on the dashboard. Default 'lobby'. */
  chatRoom?: string
  /**
   * Suffix for the topics that describe this instance (metrics, logs, hub
   * stats), e.g. `host-3001`. With a shared (Redis) transport, each instance
   * then shows its own figures instead of interleaving everyone's.
   */
  instance?: string
  /** The htmx major every page loads and speaks: 2 (default; htmx 2.0.x + htmx-ext-sse) or 4 (htmx 4.0.x + hx-sse). */
  htmx?: 2 | 4
  /**
   * Signs the topics of live pages. Default: a random one per process (pages
   * open across a restart then reload once). Instances sharing a transport need the same one.
   */
  secret?: LiveSecret
}

export interface DashboardApp {
  app: FastifyInstance
  metrics: MetricsFeed
  stats: HubStatsFeed
  agent: AgentRunner
  logs: LogFeed | undefined
  /** Topics of the dashboard's one connection. */
  topics: string[]
}

const NOTIFY_TOPIC = 'notifications'

function isSource (agent: BuildAppOptions['agent']): agent is AgentSource {
  return agent !== undefined && typeof (agent as AgentSource).run === 'function'
}

export async function buildApp (options: BuildAppOptions = {}): Promise<DashboardApp> {
  const logLevel = options.logLevel ?? 'info'
  const own = (topic: string): string => options.instance === undefined ? topic : `${topic}:${options.instance}`
  const echo = options.echoLogs === undefined || options.echoLogs === true ? process.stdout : options.echoLogs
  const logs = logLevel === false ? undefined : new LogFeed({ size: 60, echo, topic: own('logs') })
  const app: FastifyInstance = Fastify({
    logger: logs === undefined || logLevel === false ? false : { level: logLevel, stream: logs.stream }
  })

  await app.register(htmxSse, {
    htmx: options.htmx ?? 2,
    secret: options.secret ?? randomBytes(32),
    transport: options.transport,
    heartbeatMs: options.heartbeatMs,
    retryMs: options.retryMs
  })
  const htmx = app.htmxSse.htmx
  // The app's own registry (not prom-client's global one): every app built in one process has its own figures.
  const registry = new Registry()
  await app.register(sseMetrics, { registry })
  app.get('/prometheus', { logLevel: 'warn' }, async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()))
  // Readiness for a load balancer or a Kubernetes probe: 503 while Redis is down or the app is closing.
  app.get('/healthz', { logLevel: 'warn' }, (_request, reply) => {
    const health = app.sseHub.ready()
    return reply.code(health.ready ? 200 : 503).header('cache-control', 'no-store').send(health)
  })
  // app.runs and the run pages (/runs/:kind/:id); the jobs module runs its demo function there.
  await app.register(runs, { store: options.runStore, ...options.leases })

  // reply.html() for the whole app; the route modules use it instead of registering their own.
  await app.register(fastifyKitaHtml)
  app.get('/favicon.ico', { logLevel: 'warn' }, (_request, reply) => reply.code(204).send())

  const metrics = new MetricsFeed({ sampler: options.sampler, intervalMs: options.metricsIntervalMs, lingerMs: options.metricsLingerMs, topic: own('metrics') })
  const stats = new HubStatsFeed({ intervalMs: options.statsIntervalMs, topic: own('hub-stats') })
  const agentSource = isSource(options.agent) ? options.agent : simulatedAgent(options.agent)
  const agent = new AgentRunner({ store: app.runs.store, ...options.leases, source: agentSource })
  const room = options.chatRoom ?? 'lobby'

  // The modules' feeds sample while any page (theirs or the dashboard) follows their topic.
  await app.register(metricsRoutes, { prefix: '/metrics', feed: metrics })
  await app.register(hubStatsRoutes, { prefix: '/hub', feed: stats })
  await app.register(notificationsRoutes, { prefix: '/notifications', topic: NOTIFY_TOPIC })
  await app.register(jobsRoutes, { prefix: '/jobs', ...options.jobs })
  await app.register(chatRoutes, { prefix: '/chat' })
  await app.register(agentRoutes, { prefix: '/agent', runner: agent })
  if (logs !== undefined) await app.register(logsRoutes, { prefix: '/logs', feed: logs })

  const topics = [metrics.topic, stats.topic, NOTIFY_TOPIC, app.runs.listTopic(JOB_KIND), chatTopic(room), ...(logs === undefined ? [] : [logs.topic])]

  app.get('/', async (_request, reply) => {
    // The page's one connection, for every panel; first, so nothing the panels miss while rendering is lost.
    const live = await reply.live(topics)
    const recentJobs = await app.runs.recent(JOB_KIND)
    return reply.html(
      <RoutePage title='Live dashboard · fastify-htmx-sse' live={live} head={<DashboardStyles />}>
        <header class='app topbar'>
          <div class='brand'>
            <span class='logo' aria-hidden='true'></span>
            <div>
              <h1>Live dashboard</h1>
              <p class='muted small' safe>{`${os.hostname()} · Fastify + htmx ${htmx} over one Server-Sent Events connection`}</p>
            </div>
          </div>
          <nav class='links small'>
            <a href='/jobs'>Jobs</a><a href='/chat/lobby'>Chat</a><a href='/agent'>Agent</a><a href='/logs'>Log</a><a href='/metrics'>Metrics</a>
          </nav>
        </header>
        <main class='app'>
          {live.element}
          <h2 class='section-title'>System</h2>
          <div class='grid metrics-grid'>
            {metrics.Panel()}
          </div>
          <h2 class='section-title'>Activity</h2>
          <div class='grid panels'>
            <div class='span-2 slot'><NotificationsPanel hub={app.sseHub} action='/notifications' topic={NOTIFY_TOPIC} /></div>
            <div class='span-2 slot'><JobsPanel jobs={recentJobs} action='/jobs' list={app.runs.listId(JOB_KIND)} /></div>
            <div class='span-2 slot'><AgentPanel action='/agent/runs' /></div>
            <div class='span-2 slot'><ChatPanel hub={app.sseHub} room={room} action={`/chat/${room}/messages`} title={`Chat · #${room}`} /></div>
            {logs === undefined ? '' : <div class='span-3 slot'>{logs.Panel({ title: 'Server log (this process, live)' })}</div>}
            <div class='slot'>{stats.Panel()}</div>
          </div>
        </main>
      </RoutePage>
    )
  })

  return { app, metrics, stats, agent, logs, topics }
}

const dashboardCss = `
header.app,main.app{max-width:1440px}
.topbar{display:flex;align-items:center;justify-content:space-between;gap:16px;flex-wrap:wrap;border-bottom:1px solid var(--line);padding-bottom:12px}
.brand{display:flex;align-items:center;gap:12px}
.brand h1{font-size:1.35rem;margin:0}
.brand p{margin:2px 0 0}
.logo{width:34px;height:34px;border-radius:9px;background:linear-gradient(135deg,var(--accent),var(--ok));box-shadow:var(--shadow)}
.links{display:flex;gap:14px}
.links a{color:var(--muted);text-decoration:none;font-weight:600}
.links a:hover{color:var(--accent)}
.section-title{font-size:.78rem;text-transform:uppercase;letter-spacing:.09em;color:var(--muted);margin:18px 0 10px;font-weight:700}
.metrics-grid{grid-template-columns:repeat(auto-fill,minmax(250px,1fr))}
@media (min-width:1100px){.metrics-grid,.panels{grid-template-columns:repeat(4,minmax(0,1fr))}#metric-cores-slot,.panels .span-2{grid-column:span 2}.panels .span-3{grid-column:span 3}}
#metric-cores-slot .cores{height:104px}
.panels .logs .log-scroll{height:232px}
.panels .card{height:100%}
.panels .chat{height:440px}
`

function DashboardStyles (): JSX.Element {
  return <style>{dashboardCssElement()}</style>
}

function dashboardCssElement (): JSX.Element {
  return dashboardCss
}
