/**
 * anthropicAgent with the real Anthropic SDK (@anthropic-ai/sdk, `new
 * Anthropic({ baseURL })`) against a local server that replays Messages API
 * streams (test/helpers/llm-fixtures.ts) and records what the SDK sent.
 */
import t, { type Test } from 'tap'
import Anthropic from '@anthropic-ai/sdk'
import { anthropicAgent, type AnthropicAgentOptions } from '../runs/agent-anthropic.js'
import type { AgentEvent, AgentSource } from '../runs/agent-source.js'
import { collect, countUnhandled, within } from './helpers/agent-events.js'
import { jsonError, sse, startLlmServer, type LlmServer } from './helpers/llm-server.js'
import { anthropicFailing, anthropicMessage } from './helpers/llm-fixtures.js'

const KEY = 'sk-ant-test-key-0123456789'
const TOOLS: Anthropic.Tool[] = [{
  name: 'get_weather',
  description: 'The weather in a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }
}]

const unhandled = countUnhandled()

async function setup (t: Test, options: Partial<AnthropicAgentOptions> = {}): Promise<{ server: LlmServer, agent: AgentSource }> {
  const server = await startLlmServer()
  t.teardown(() => server.close())
  // The app's own client, as a user builds it; only the base URL points here.
  const client = new Anthropic({ apiKey: KEY, baseURL: server.url })
  return { server, agent: anthropicAgent({ client, model: 'claude-test', maxTokens: 300, ...options }) }
}

interface SentBody {
  model: string
  max_tokens: number
  stream: boolean
  system?: string
  tools?: unknown[]
  messages: Array<{ role: string, content: unknown }>
}

t.test('text deltas in order with their whitespace, a tool use answered by runTool and sent back, then done', async t => {
  const calls: Array<[string, unknown]> = []
  const { server, agent } = await setup(t, {
    system: 'You are terse.',
    tools: TOOLS,
    runTool: async (name, input) => {
      calls.push([name, input])
      return { city: 'Paris', temp_c: 21 }
    }
  })
  server.reply(
    sse(anthropicMessage([
      { text: ['Hello', ' ', 'world', '\n\n'] },
      { toolUse: { id: 'toolu_01', name: 'get_weather', json: ['', '{"ci', 'ty": "Par', 'is"}'] } }
    ], 'tool_use')),
    sse(anthropicMessage([{ text: ['It is ', '21', ' °C', ' in Paris.'] }], 'end_turn', 'msg_test_02'))
  )
  const events = await collect(agent, 'Weather in Paris?')
  t.same(events, [
    { type: 'text', text: 'Hello' },
    { type: 'text', text: ' ' },
    { type: 'text', text: 'world' },
    { type: 'text', text: '\n\n' },
    { type: 'tool_use', id: 'toolu_01', name: 'get_weather', input: { city: 'Paris' } },
    { type: 'tool_result', id: 'toolu_01', output: { city: 'Paris', temp_c: 21 }, isError: false },
    { type: 'text', text: 'It is ' },
    { type: 'text', text: '21' },
    { type: 'text', text: ' °C' },
    { type: 'text', text: ' in Paris.' },
    { type: 'done' }
  ], 'every delta, in order, whitespace-only ones included (the runner coalesces them)')
  t.same(calls, [['get_weather', { city: 'Paris' }]], 'runTool got the input assembled from the input_json_deltas')

  t.equal(server.requests.length, 2, 'two model calls')
  const [first, second] = server.requests.map(r => r.body as SentBody)
  t.equal(server.requests[0]!.path, '/v1/messages')
  const { authorization, 'x-api-key': apiKey } = server.requests[0]!.headers
  t.ok(authorization === `Bearer ${KEY}` || apiKey === KEY, 'the client\'s own credentials (SDK 1.x sends a bearer token)')
  t.match(first, { model: 'claude-test', max_tokens: 300, stream: true, system: 'You are terse.', tools: TOOLS })
  t.same(first!.messages, [{ role: 'user', content: 'Weather in Paris?' }])
  t.same(second!.messages.slice(0, 1), first!.messages, 'the conversation so far')
  t.match(second!.messages[1], {
    role: 'assistant',
    content: [{ type: 'text', text: 'Hello world\n\n' }, { type: 'tool_use', id: 'toolu_01', name: 'get_weather', input: { city: 'Paris' } }]
  }, 'the assistant turn as it streamed, tool input parsed')
  t.same(second!.messages[2], {
    role: 'user',
    content: [{ type: 'tool_result', tool_use_id: 'toolu_01', content: '{"city":"Paris","temp_c":21}' }]
  }, 'the result of that tool_use id goes back to the model')
})

t.test('a tool that throws: an error result on the card and for the model; no runTool: the same', async t => {
  const { server, agent } = await setup(t, { tools: TOOLS, runTool: async () => { throw new Error('weather service returned 503') } })
  const toolTurn = anthropicMessage([{ toolUse: { id: 'toolu_02', name: 'get_weather', json: ['{"city":"Oslo"}'] } }], 'tool_use')
  server.reply(sse(toolTurn), sse(anthropicMessage([{ text: ['Sorry.'] }], 'end_turn')))
  const events = await collect(agent, 'Oslo?')
  t.same(events.map(e => e.type), ['tool_use', 'tool_result', 'text', 'done'])
  t.same(events[1], { type: 'tool_result', id: 'toolu_02', output: 'weather service returned 503', isError: true })
  t.same((server.requests[1]!.body as SentBody).messages[2]!.content, [{ type: 'tool_result', tool_use_id: 'toolu_02', content: 'weather service returned 503', is_error: true }])

  const bare = await setup(t, { tools: TOOLS })
  bare.server.reply(sse(toolTurn), sse(anthropicMessage([{ text: ['Ok.'] }], 'end_turn')))
  const noRunner = await collect(bare.agent, 'Oslo?')
  t.match(noRunner[1], { type: 'tool_result', isError: true, output: /no runTool/ })
  t.equal(noRunner.at(-1)?.type, 'done')
})

t.test('an `event: error` mid-stream ends the run with error (the text so far stays), not retried', async t => {
  const { server, agent } = await setup(t)
  server.reply(sse(anthropicFailing([{ text: ['Partial', ' ', 'answer'] }], { type: 'overloaded_error', message: 'Overloaded' })))
  const events = await collect(agent, 'hi')
  t.same(events, [
    { type: 'text', text: 'Partial' },
    { type: 'text', text: ' ' },
    { type: 'text', text: 'answer' },
    { type: 'error', message: 'Anthropic API error (overloaded_error): Overloaded' }
  ])
  t.equal(server.requests.length, 1)
})

t.test('an API error before the stream: its status, type and message, with a quoted key redacted', async t => {
  const { server, agent } = await setup(t)
  server.reply(jsonError(401, { type: 'error', error: { type: 'authentication_error', message: 'invalid x-api-key: sk-ant-api03-SECRETSECRET' } }))
  const events = await collect(agent, 'hi')
  t.same(events, [{ type: 'error', message: 'Anthropic API error 401 (authentication_error): invalid x-api-key: [redacted]' }])
  t.notMatch(JSON.stringify(events), /SECRET/)
  t.equal(server.requests.length, 1, 'a 401 is not retried')
})

t.test('a stream that ends without a stop reason is an error, not a silent done', async t => {
  const { server, agent } = await setup(t)
  server.reply(sse(anthropicMessage([{ text: ['Cut', ' short'] }], 'end_turn').slice(0, -2)))
  const events = await collect(agent, 'hi')
  t.same(events.map(e => e.type), ['text', 'text', 'error'])
  t.match(events.at(-1), { message: /ended before the message did/ })
})

t.test('maxSteps bounds the tool loop', async t => {
  let ran = 0
  const { server, agent } = await setup(t, { tools: TOOLS, maxSteps: 2, runTool: async () => ++ran })
  const again = (n: number): ReturnType<typeof sse> => sse(anthropicMessage([{ toolUse: { id: `toolu_${n}`, name: 'get_weather', json: ['{}'] } }], 'tool_use'))
  server.reply(again(1), again(2), again(3))
  const events = await collect(agent, 'loop')
  t.equal(server.requests.length, 2, 'two model calls, no third')
  t.equal(ran, 2)
  t.match(events.at(-1), { type: 'error', message: /Stopped after 2 model calls/ })
})

t.test('options: a step or token count that is not a whole number ≥ 1 is refused at once', async t => {
  const client = new Anthropic({ apiKey: KEY, baseURL: 'http://127.0.0.1:9' })
  t.throws(() => anthropicAgent({ client, model: 'm', maxSteps: 0 }), { code: 'HTMX_SSE_INVALID_OPTION', message: /maxSteps \(anthropicAgent\) must be a whole number ≥ 1, got 0/ })
  t.throws(() => anthropicAgent({ client, model: 'm', maxTokens: 1.5 }), { code: 'HTMX_SSE_INVALID_OPTION', message: /maxTokens/ })
})

t.test('abort mid-stream: the iterable ends at once, nothing after the abort, the server sees the request closed', async t => {
  const { server, agent } = await setup(t)
  // Two deltas, then the stream stays open (a long answer still coming).
  server.reply(sse(anthropicMessage([{ text: ['Hello', ' there', ' and more'] }], 'end_turn').slice(0, 5), { hold: true }))
  const ac = new AbortController()
  const it = agent.run('hi', ac.signal)[Symbol.asyncIterator]()
  t.same((await within('first token', it.next())).value, { type: 'text', text: 'Hello' })
  ac.abort()
  t.same(await within('the end after abort', it.next()), { done: true, value: undefined }, 'no event after the abort')
  await within('the server to see the request closed', server.requests[0]!.hungUp)
  t.ok(server.requests[0]!.clientClosed())
  t.equal(server.requests.length, 1)
})

t.test('abort while a tool runs: no tool result, no further model call', async t => {
  let toolSignal: AbortSignal | undefined
  let started!: () => void
  const toolStarted = new Promise<void>(resolve => { started = resolve })
  const { server, agent } = await setup(t, {
    tools: TOOLS,
    runTool: async (_name, _input, signal) => {
      toolSignal = signal
      started()
      await new Promise((resolve, reject) => {
        const timer = setTimeout(resolve, 10_000)
        signal.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason) }, { once: true })
      })
      return 'late'
    }
  })
  server.reply(sse(anthropicMessage([{ toolUse: { id: 'toolu_09', name: 'get_weather', json: ['{}'] } }], 'tool_use')))
  const ac = new AbortController()
  const seen: AgentEvent[] = []
  const done = within('the run to end', (async () => {
    for await (const ev of agent.run('hi', ac.signal)) seen.push(ev)
  })())
  await within('the tool to start', toolStarted)
  ac.abort()
  await done
  t.same(seen.map(e => e.type), ['tool_use'], 'the tool call, then nothing')
  t.equal(toolSignal?.aborted, true, 'the tool got the run\'s signal')
  t.equal(server.requests.length, 1)
})

t.test('no unhandled rejection from any of the above', async t => {
  await new Promise(resolve => setTimeout(resolve, 50))
  t.equal(unhandled.count, 0)
})
