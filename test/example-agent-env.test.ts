/**
 * The example app's agent from the environment: the simulator without an API
 * key; ANTHROPIC_API_KEY → anthropicAgent, OPENAI_API_KEY → aiSdkAgent, each
 * with the real SDK (its base URL pointed at a local server replaying the
 * provider's wire format) and the real `server_status` tool. And `npm start`
 * with the key set: the dashboard's agent runs ask that model.
 */
import t from 'tap'
import os from 'node:os'
import type { ChildProcess } from 'node:child_process'
import { agentFromEnv } from '../example-app/agents.js'
import type { AgentEvent, AgentSource } from '../runs/agent-source.js'
import { sse, startLlmServer } from './helpers/llm-server.js'
import { anthropicMessage, responsesStream } from './helpers/llm-fixtures.js'
import { freePort, spawnTsx, waitForHttp } from './helpers/process.js'
import { request, until } from './helpers/sse-client.js'

async function collect (source: AgentSource): Promise<AgentEvent[]> {
  const out: AgentEvent[] = []
  const ac = new AbortController()
  const timer = setTimeout(() => ac.abort(), 10_000)
  for await (const ev of source.run('How loaded is the server?', ac.signal)) out.push(ev)
  clearTimeout(timer)
  return out
}

t.test('no key (or an empty one): the simulator', async t => {
  t.equal(await agentFromEnv({}), undefined)
  t.equal(await agentFromEnv({ ANTHROPIC_API_KEY: '', OPENAI_API_KEY: '' }), undefined)
})

t.test('ANTHROPIC_API_KEY: anthropicAgent over the Anthropic SDK, with the server_status tool', async t => {
  const server = await startLlmServer()
  t.teardown(() => server.close())
  server.reply(
    sse(anthropicMessage([{ toolUse: { id: 'toolu_s1', name: 'server_status', json: ['{}'] } }], 'tool_use')),
    sse(anthropicMessage([{ text: ['Load', ' is', ' fine.'] }], 'end_turn'))
  )
  const agent = await agentFromEnv({ ANTHROPIC_API_KEY: 'sk-ant-test-0123456789', ANTHROPIC_BASE_URL: server.url, OPENAI_API_KEY: 'sk-unused' })
  t.equal(agent?.label, 'Anthropic claude-haiku-5-5', 'Anthropic first when both keys are set')
  const events = await collect(agent!.source)
  t.same(events.map(e => e.type), ['tool_use', 'tool_result', 'text', 'text', 'text', 'done'])
  t.match(events[1], { type: 'tool_result', id: 'toolu_s1', isError: false, output: { host: os.hostname(), cores: os.availableParallelism() } }, 'the tool read this machine')
  t.match(server.requests[0]!.body, { model: 'claude-haiku-5-5', system: /operations dashboard/, tools: [{ name: 'server_status' }] })
})

t.test('OPENAI_API_KEY: aiSdkAgent over the AI SDK\'s OpenAI provider, with the server_status tool', async t => {
  const server = await startLlmServer()
  t.teardown(() => server.close())
  server.reply(
    sse(responsesStream([{ call: { id: 'call_s1', name: 'server_status', json: ['{}'] } }])),
    sse(responsesStream([{ text: ['Load', ' is', ' fine.'] }], 'resp_2'))
  )
  const agent = await agentFromEnv({ OPENAI_API_KEY: 'sk-test-0123456789', OPENAI_BASE_URL: server.url, OPENAI_MODEL: 'gpt-test' })
  t.equal(agent?.label, 'OpenAI gpt-test (AI SDK)')
  const events = await collect(agent!.source)
  t.same(events.map(e => e.type), ['tool_use', 'tool_result', 'text', 'text', 'text', 'done'])
  t.match(events[1], { type: 'tool_result', id: 'call_s1', output: { host: os.hostname() } })
  t.equal(server.requests[0]!.path, '/responses')
  t.match(server.requests[0]!.body, { model: 'gpt-test', tools: [{ name: 'server_status' }] })
})

t.test('npm start with ANTHROPIC_API_KEY: the dashboard\'s agent runs ask that model', async t => {
  const server = await startLlmServer()
  server.reply(sse(anthropicMessage([{ text: ['Hello', ' from', ' the', ' model.'] }], 'end_turn')))
  const port = await freePort()
  const child: ChildProcess = spawnTsx('example-app/server.tsx', {
    PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', ANTHROPIC_API_KEY: 'sk-ant-test-0123456789', ANTHROPIC_BASE_URL: server.url
  })
  t.teardown(async () => {
    if (child.exitCode === null) {
      const exited = new Promise(resolve => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    }
    await server.close()
  })
  const base = `http://127.0.0.1:${port}`
  t.equal(await waitForHttp(`${base}/`, child), 200)
  const started = await request(`${base}/agent/runs`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json', origin: base }, body: JSON.stringify({ prompt: 'hi' }) })
  t.equal(started.status, 202)
  const { url } = JSON.parse(started.body) as { url: string }
  let page = ''
  await until('the run done', async () => /data-state="done"/.test(page = (await request(base + url)).body), 10_000)
  t.match(page, '<span class="chunk">Hello from the model.</span>', 'the model\'s text on the run page')
  t.equal(server.requests.length, 1)
  t.match(server.requests[0]!.body, { model: 'claude-haiku-5-5', messages: [{ role: 'user', content: 'hi' }] })
})
