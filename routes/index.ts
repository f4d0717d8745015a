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
 * Jobs and agent runs are kept in a `RunStore`: `MemoryRunStore` by default,
 * `RedisRunStore` (`fastify-htmx-sse/routes/redis`) to share them between
 * instances and keep them across restarts.
 */
export { metricsRoutes, MetricsFeed, systemSampler, fakeSampler, type Sampler, type MetricsSample, type MetricsOptions, type MetricsRoutesOptions } from './metrics.js'
export { notificationsRoutes, NotificationsPanel, NotificationForm, publishNotification, validateNotification, NOTIFICATION_LEVELS, MAX_NOTIFICATION_LENGTH, type NotificationsOptions, type NotificationInput } from './notifications.js'
export { jobsRoutes, type JobsRoutesOptions } from './jobs.js'
export { JobRunner, jobOf, DEFAULT_STAGES, JOB_KIND, type JobsOptions, type CancelOutcome } from './job-runner.js'
export { chatRoutes, ChatPanel, publishMessage, validateMessage, chatTopic, ROOM_PATTERN, type ChatOptions } from './chat.js'
export { agentRoutes, type AgentRoutesOptions } from './agent.js'
export {
  AgentRunner, AgentRunSnapshot, AgentRunsFullError, RunState, agentEvents, coalesceWhitespace, simulatedAgent, newRunId, AGENT_KIND, RUN_ID, DONE_EVENT,
  type AgentEvent, type RunEvent, type AgentSource, type SimulatedAgentOptions, type AgentRunnerOptions, type AgentRunView
} from './agent-runner.js'
export { MemoryRunStore, instanceId, type RunStore, type StoredRun, type NewRun, type RunPatch, type CreateResult, type CancelRequest } from './run-store.js'
export { RunLeases, type RunLeaseOptions, type RunLeaseHandlers } from './run-lease.js'
export { logsRoutes, LogFeed, formatLogRecord, type LogFeedOptions, type LogsRoutesOptions } from './logs.js'
export { hubStatsRoutes, HubStatsFeed, HubStatsCard, topicLabel, type HubStatsOptions } from './stats.js'
export { acceptForms, wantsJson, RoutePage, RouteStyles } from './util.js'
export { routeStyles } from './styles.js'
export { sameOrigin, sameOriginHook, crossOriginProblem, type SameOriginOptions } from './same-origin.js'
