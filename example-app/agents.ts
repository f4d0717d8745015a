/**
 * The dashboard's agent: a real model when its API key is set, the bundled
 * simulator otherwise. ANTHROPIC_API_KEY → `anthropicAgent` over the
 * Anthropic SDK (ANTHROPIC_MODEL, default claude-haiku-5-5); else
 * OPENAI_API_KEY → `aiSdkAgent` over the AI SDK's OpenAI provider
 * (OPENAI_MODEL, default gpt-5.4-mini). ANTHROPIC_BASE_URL / OPENAI_BASE_URL
 * point them elsewhere (a proxy, a local server). The SDKs are loaded only
 * when their key is set. Both get one real tool: this server's status.
 */
import os from 'node:os'
import { anthropicAgent } from '../runs/agent-anthropic.js'
import { aiSdkAgent } from '../runs/agent-ai-sdk.js'
import type { AgentSource } from '../runs/agent-source.js'

export interface EnvAgent {
  source: AgentSource
  /** Which provider and model, for the startup log. */
  label: string
}

const SYSTEM = 'You are the assistant of a live operations dashboard. Answer briefly. ' +
  'Call server_status when the question is about this server\'s load, memory or uptime.'
const TOOL_DESCRIPTION = 'Load averages, memory and uptime of the server this dashboard runs on.'

/** What the server_status tool answers: read when the model asks, never invented. */
export function serverStatus (): Record<string, unknown> {
  const [load1, load5, load15] = os.loadavg()
  return {
    host: os.hostname(),
    cores: os.availableParallelism(),
    load_1m: load1,
    load_5m: load5,
    load_15m: load15,
    memory_used_pct: Math.round((1 - os.freemem() / os.totalmem()) * 1000) / 10,
    uptime_s: Math.round(os.uptime()),
    node: process.version
  }
}

const set = (value: string | undefined): string | undefined => value === undefined || value === '' ? undefined : value

export async function agentFromEnv (env: NodeJS.ProcessEnv = process.env): Promise<EnvAgent | undefined> {
  const anthropicKey = set(env.ANTHROPIC_API_KEY)
  if (anthropicKey !== undefined) {
    const { default: Anthropic } = await import('@anthropic-ai/sdk')
    const model = set(env.ANTHROPIC_MODEL) ?? 'claude-haiku-5-5'
    return {
      label: `Anthropic ${model}`,
      source: anthropicAgent({
        client: new Anthropic({ apiKey: anthropicKey, baseURL: set(env.ANTHROPIC_BASE_URL) }),
        model,
        maxTokens: 1024,
        system: SYSTEM,
        tools: [{ name: 'server_status', description: TOOL_DESCRIPTION, input_schema: { type: 'object', properties: {} } }],
        runTool: async name => {
          if (name !== 'server_status') throw new Error(`unknown tool ${name}`)
          return serverStatus()
        }
      })
    }
  }
  const openaiKey = set(env.OPENAI_API_KEY)
  if (openaiKey !== undefined) {
    const [{ createOpenAI }, { jsonSchema, tool }] = await Promise.all([import('@ai-sdk/openai'), import('ai')])
    const model = set(env.OPENAI_MODEL) ?? 'gpt-5.4-mini'
    const openai = createOpenAI({ apiKey: openaiKey, baseURL: set(env.OPENAI_BASE_URL) })
    return {
      label: `OpenAI ${model} (AI SDK)`,
      source: aiSdkAgent({
        model: openai(model),
        system: SYSTEM,
        tools: { server_status: tool({ description: TOOL_DESCRIPTION, inputSchema: jsonSchema({ type: 'object', properties: {} }), execute: async () => serverStatus() }) }
      })
    }
  }
  return undefined
}
