/**
 * `fastify-htmx-sse/routes`: route modules (Fastify plugins) that feed the
 * views from samplers and the hub. Each registers alone under a prefix:
 *
 *   await app.register(htmxSse, { htmx: 2, secret: process.env.SSE_SECRET })
 *   await app.register(metricsRoutes, { prefix: '/metrics' })
 *
 * Registering a module without `htmxSse` first fails at registration. Pages
 * are live through `reply.live` in the app's htmx major. Each module exposes
 * its state object (feed / runner) so a dashboard can embed its panel in a
 * page with one connection (`reply.live` of all the panels' topics).
 * Jobs run a demo work function through the runs plugin (`fastify-htmx-sse/runs`,
 * registered first); agent runs use its `AgentRunner` and, by default, its store.
 */
export { metricsRoutes, MetricsFeed, systemSampler, fakeSampler, type Sampler, type MetricsRoutesOptions } from './metrics.js'
export { notificationsRoutes, publishNotification, type NotificationsOptions } from './notifications.js'
export { jobsRoutes, type JobsRoutesOptions } from './jobs.js'
export { chatRoutes, type ChatOptions } from './chat.js'
export { agentRoutes, type AgentRoutesOptions } from './agent.js'
export { logsRoutes, LogFeed, type LogsRoutesOptions } from './logs.js'
export { hubStatsRoutes, HubStatsFeed, type HubStatsOptions } from './stats.js'
export { sameOrigin } from '../plugin/same-origin.js'
