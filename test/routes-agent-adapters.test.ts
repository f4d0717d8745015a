/**
 * End to end: the agent route module with a real SDK adapter as its source
 * (anthropicAgent over @anthropic-ai/sdk, aiSdkAgent over ai + @ai-sdk/openai),
 * on a listening app, the model a local server replaying its wire format; a
 * real SSE client follows the run's page stream, and the transcript HTML is
 * checked as it streamed and as the run page renders it afterwards.
 */
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import Anthropic from '@anthropic-ai/sdk'
import { createOpenAI } from '@ai-sdk/openai'
import { jsonSchema, tool } from 'ai'
import htmxSse from '../plugin/index.js'
import { agentRoutes } from '../routes/agent.js'
import { AgentRunner } from '../runs/agent-runner.js'
import { anthropicAgent } from '../runs/agent-anthropic.js'
import { aiSdkAgent } from '../runs/agent-ai-sdk.js'
import type { AgentSource } from '../runs/agent-source.js'
import { sse, startLlmServer, type LlmServer, type Reply } from './helpers/llm-server.js'
import { anthropicFailing, anthropicMessage, responsesStream } from './helpers/llm-fixtures.js'
import { openPage } from './helpers/live-page.js'
import { until } from './helpers/sse-client.js'

const weatherSchema = { type: 'object' as const, properties: { city: { type: 'string' as const } }, required: ['city'] }
const weatherResult = { city: 'Paris', temp_c: 21 }

interface Provider {
  name: string
  source: (server: LlmServer) => AgentSource
  /** Text with a tool call, then (after the result) more text. */
  happy: Reply[]
  /** Some text, then an error event in the stream. */
  failing: Reply
  /** The message a failing run shows. */
  failure: RegExp
}

const providers: Provider[] = [{
  name: 'anthropicAgent (@anthropic-ai/sdk)',
  source: server => anthropicAgent({
    client: new Anthropic({ apiKey: 'sk-ant-test-0123456789', baseURL: server.url }),
    model: 'claude-test',
    tools: [{ name: 'get_weather', description: 'The weather in a city', input_schema: weatherSchema }],
    runTool: async () => weatherResult
  }),
  happy: [
    sse(anthropicMessage([{ text: ['Hello', ' ', 'world', '\n\n'] }, { toolUse: { id: 'toolu_01', name: 'get_weather', json: ['{"city":', ' "Paris"}'] } }], 'tool_use')),
    sse(anthropicMessage([{ text: ['It is ', '21', ' °C', ' <b>now</b>.'] }], 'end_turn', 'msg_test_02'))
  ],
  failing: sse(anthropicFailing([{ text: ['Partial', ' ', 'answer'] }], { type: 'overloaded_error', message: 'Overloaded' })),
  failure: /Anthropic API error \(overloaded_error\): Overloaded/
}, {
  name: 'aiSdkAgent (ai + @ai-sdk/openai)',
  source: server => aiSdkAgent({
    model: createOpenAI({ apiKey: 'sk-test-0123456789', baseURL: server.url })('gpt-test'),
    tools: { get_weather: tool({ description: 'The weather in a city', inputSchema: jsonSchema<{ city: string }>(weatherSchema), execute: async () => weatherResult }) }
  }),
  happy: [
    sse(responsesStream([{ text: ['Hello', ' ', 'world', '\n\n'] }, { call: { id: 'call_01', name: 'get_weather', json: ['{"city":', '"Paris"}'] } }])),
    sse(responsesStream([{ text: ['It is ', '21', ' °C', ' <b>now</b>.'] }], 'resp_test_02'))
  ],
  failing: sse(responsesStream([{ text: ['Partial', ' ', 'answer'] }], 'resp_err', { failWith: { code: 'server_error', message: 'The server had an error.' } })),
  failure: /Model API error.*The server had an error\./
}]

async function setup (t: Test, provider: Provider): Promise<{ base: string, server: LlmServer, runner: AgentRunner }> {
  const server = await startLlmServer()
  const app = Fastify({ logger: false })
  await app.register(htmxSse, { heartbeatMs: false })
  const runner = new AgentRunner({ source: provider.source(server) })
  await app.register(agentRoutes, { prefix: '/agent', runner })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => {
    await app.close()
    await server.close()
  })
  return { base: `http://127.0.0.1:${(app.server.address() as { port: number }).port}`, server, runner }
}

async function startRun (base: string, prompt: string): Promise<{ id: string, url: string }> {
  const res = await fetch(`${base}/agent/runs`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify({ prompt }) })
  if (res.status !== 202) throw new Error(`POST /agent/runs: ${res.status}`)
  return await res.json() as { id: string, url: string }
}

/** The text chunks of a transcript, in order, unescaped. */
function chunks (html: string): string[] {
  return [...html.matchAll(/<span class="chunk">([\s\S]*?)<\/span>/g)].map(m => m[1]!.replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&'))
}

for (const provider of providers) {
  t.test(`${provider.name}: a run's page streams the text in order, the tool card and its result, then done`, async t => {
    const { base, server, runner } = await setup(t, provider)
    let release!: () => void
    const gate = new Promise<void>(resolve => { release = resolve })
    // The first model call waits, so the page opens on a running run and follows it live.
    const [first, second] = provider.happy
    server.reply(async (res, req) => { await gate; await first!(res, req) }, second!)
    const { id, url } = await startRun(base, 'Weather in Paris?')
    const page = await openPage(base, url)
    t.match(page.html, /data-state="thinking"/, 'running: the page shows the run so far')
    const stream = await page.connect()
    t.teardown(() => stream.close())
    release()
    await stream.waitUntil(() => stream.events.some(e => e.event === 'done'), 10_000)
    const streamed = stream.events.map(e => e.data).join('\n')

    t.equal(chunks(streamed).join(''), 'Hello world\n\nIt is 21 °C <b>now</b>.', 'every token in order, whitespace intact')
    t.notOk(chunks(streamed).some(c => c.trim() === ''), 'no whitespace-only chunk (htmx 4 would drop its swap)')
    t.notMatch(streamed, /<b>now<\/b>/, 'model text is escaped')
    const card = `agent-${id}-tool-1`
    t.match(streamed, `<div id="${card}" class="tool">`, 'the tool card')
    t.match(streamed, /<code>get_weather<\/code>/)
    t.match(streamed, new RegExp(`id="${card}-status" class="badge badge-ok" role="status" hx-swap-oob="true">done<`), 'its status updated by the result')
    t.match(streamed, new RegExp(`id="${card}-result" class="tool-result" hx-swap-oob="true"><pre>\\{\\n  &#34;city&#34;: &#34;Paris&#34;,\\n  &#34;temp_c&#34;: 21\\n\\}</pre>`), 'its result filled in')
    t.match(streamed, /data-state="done"/)
    t.equal(server.requests.length, 2)

    await until('the run stored as done', async () => (await runner.get(id))?.status === 'done')
    const after = (await openPage(base, url)).html
    t.match(after, 'data-state="done"')
    t.notMatch(after, /sse-connect|hx-sse/, 'a finished run\'s page is static')
    t.equal(chunks(after).join(''), 'Hello world\n\nIt is 21 °C <b>now</b>.', 'the stored transcript: the same text')
    t.match(after, new RegExp(`id="${card}-status" class="badge badge-ok" role="status">done<`), 'the tool card with its result')
  })

  t.test(`${provider.name}: an error mid-stream fails the run; its page shows the text so far and the error`, async t => {
    const { base, server, runner } = await setup(t, provider)
    server.reply(provider.failing)
    const { id, url } = await startRun(base, 'hi')
    await until('the run ended', async () => (await runner.get(id))?.status !== 'running', 10_000)
    t.equal((await runner.get(id))?.status, 'failed')
    const html = (await openPage(base, url)).html
    t.match(html, /data-state="error"/)
    t.equal(chunks(html).join(''), 'Partial answer')
    t.match(html, /class="card agent-error" role="alert"/)
    t.match(html, provider.failure)
  })
}

t.test('cancel while the model streams: the model request is closed, the run is cancelled', async t => {
  const provider = providers[0]!
  const { base, server, runner } = await setup(t, provider)
  server.reply(sse(anthropicMessage([{ text: ['Thinking', ' hard', ' still'] }], 'end_turn').slice(0, 5), { hold: true }))
  const { id } = await startRun(base, 'long one')
  await until('the first token stored', async () => (await runner.store.entries('agent', id)).length > 0, 10_000)
  await runner.cancel(id)
  await until('the model request closed', async () => server.requests[0]!.clientClosed(), 10_000)
  t.ok(server.requests[0]!.clientClosed(), 'the SDK\'s request was aborted')
  await until('the run stored as cancelled', async () => (await runner.get(id))?.status === 'cancelled', 10_000)
  t.equal(server.requests.length, 1)
})
