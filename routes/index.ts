/**
 * `fastify-htmx-sse/routes`: route modules (Fastify plugins) that feed the
 * views from samplers and the hub. Each registers alone under a prefix:
 *
 *   await app.register(htmxSse)
 *   await app.register(clientAssetsRoutes, { prefix: '/assets' })   // htmx + sse.js for Layout
 *   await app.register(metricsRoutes, { prefix: '/metrics' })
 *
 * Registering a module without `htmxSse` first fails at registration. Each
 * exposes its state object (feed / runner) and a panel component so
 * a dashboard can embed several over one SSE connection.
 */
export { metricsRoutes, MetricsFeed, systemSampler, fakeSampler, type Sampler, type MetricsSample, type MetricsOptions, type MetricsRoutesOptions } from './metrics.js'
export { notificationsRoutes, NotificationsPanel, NotificationForm, publishNotification, validateNotification, NOTIFICATION_LEVELS, MAX_NOTIFICATION_LENGTH, type NotificationsOptions, type NotificationInput } from './notifications.js'
export { jobsRoutes, JobRunner, JobsPanel, JobBody, JobRun, JobList, JobRow, jobPercent, DEFAULT_STAGES, type Job, type JobStage, type JobsOptions, type JobsRoutesOptions } from './jobs.js'
export { chatRoutes, ChatPanel, publishMessage, validateMessage, chatTopic, ROOM_PATTERN, type ChatOptions } from './chat.js'
export { agentRoutes, AgentRunner, AgentPanel, AgentForm, AgentRunSnapshot, RunState, agentEvents, coalesceWhitespace, simulatedAgent, newRunId, type AgentEvent, type AgentSource, type SimulatedAgentOptions, type AgentRoutesOptions, type AgentRunnerOptions, type AgentFormProps } from './agent.js'
export { logsRoutes, LogFeed, formatLogRecord, type LogFeedOptions, type LogsRoutesOptions } from './logs.js'
export { hubStatsRoutes, HubStatsFeed, HubStatsCard, topicLabel, type HubStatsOptions } from './stats.js'
export { clientAssetsRoutes, type ClientAssetsOptions } from './assets.js'
export { Watchers, pageCursor, upTo, trusted, acceptForms, wantsJson, resumeScriptOf, htmxOf, RoutePage, PageConnect, RouteStyles, type HtmxOption } from './util.js'
export { routeStyles } from './styles.js'
export { sameOrigin, sameOriginHook, crossOriginProblem, type SameOriginOptions } from './same-origin.js'
