/**
 * `fastify-htmx-sse/runs`: runs (the app's own work functions, agent runs)
 * as stored state. A run is a record in a `RunStore` (status, progress or
 * transcript, owner, lease), so any instance renders any run and a page is
 * live or static from the store. `runs` is the plugin (`app.runs.start(kind,
 * async (run, signal) => …)` and the run pages). The in-process store is the
 * embedded default; `RedisRunStore` (`fastify-htmx-sse/runs/redis`) shares
 * runs between instances on the hub's Redis and keeps them across restarts.
 * Agent runs stream from an `AgentSource`: the simulator, `anthropicAgent`
 * (the Anthropic SDK) or `aiSdkAgent` (the Vercel AI SDK; both SDKs are
 * optional peers).
 */
export { runs, type RunsOptions } from './plugin.js'
export type { Run, RunContext } from './run.js'
export { AgentRunner, type AgentRunnerOptions } from './agent-runner.js'
export { simulatedAgent, type AgentEvent, type AgentSource } from './agent-source.js'
// Their options are typed inline (`Parameters<typeof anthropicAgent>[0]` names them): the surface is budgeted.
export { anthropicAgent } from './agent-anthropic.js'
export { aiSdkAgent } from './agent-ai-sdk.js'
export type { RunStore } from './store.js'
