/**
 * aiSdkAgent with the real Vercel AI SDK (`ai` 7 `streamText`) and its real
 * providers: @ai-sdk/openai (`openai(modelId)`, the Responses API: its default
 * since v2) and @ai-sdk/anthropic (the Messages API), both pointed at a local
 * server that replays their streaming wire formats (test/helpers/llm-fixtures.ts).
 *
 * Node 20: ai 7 and its providers declare `engines: node >=22`, but nothing
 * this adapter uses needs it: these tests pass on Node 20 (v20.20) as on
 * Node 24, so they run on both (CI's `npm test` on 20 and its Node 24 pass).
 */
import t, { type Test } from 'tap'
import { tool, jsonSchema } from 'ai'
import { createOpenAI } from '@ai-sdk/openai'
import { createAnthropic } from '@ai-sdk/anthropic'
import { aiSdkAgent, type AiSdkAgentOptions } from '../runs/agent-ai-sdk.js'
import type { AgentSource } from '../runs/agent-source.js'
import { collect, countUnhandled, within } from './helpers/agent-events.js'
import { sse, startLlmServer, type LlmServer } from './helpers/llm-server.js'
import { anthropicMessage, responsesStream } from './helpers/llm-fixtures.js'

const KEY = 'sk-test-openai-0123456789'

const unhandled = countUnhandled()

const weatherInput = jsonSchema<{ city: string }>({ type: 'object', properties: { city: { type: 'string' } }, required: ['city'] })

function weather (execute: (input: { city: string }) => Promise<unknown>): AiSdkAgentOptions['tools'] {
  return { get_weather: tool({ description: 'The weather in a city', inputSchema: weatherInput, execute }) }
}

async function openaiSetup (t: Test, options: Omit<AiSdkAgentOptions, 'model'> = {}): Promise<{ server: LlmServer, agent: AgentSource }> {
  const server = await startLlmServer()
  t.teardown(() => server.close())
  const openai = createOpenAI({ apiKey: KEY, baseURL: server.url })
  return { server, agent: aiSdkAgent({ model: openai('gpt-test'), ...options }) }
}

interface ResponsesBody {
  model: string
  stream: boolean
  instructions?: string
  tools?: Array<{ type: string, name: string }>
  input: Array<{ type?: string, role?: string, call_id?: string, output?: unknown, content?: unknown }>
}

t.test('OpenAI (Responses API): text deltas in order with whitespace, a tool executed by the SDK, its result sent back, done', async t => {
  const inputs: unknown[] = []
  const { server, agent } = await openaiSetup(t, {
    system: 'You are terse.',
    tools: weather(async input => {
      inputs.push(input)
      return { city: input.city, temp_c: 21 }
    })
  })
  server.reply(
    sse(responsesStream([
      { text: ['Hello', ' ', 'world', '\n\n'] },
      { call: { id: 'call_01', name: 'get_weather', json: ['{"ci', 'ty":"Par', 'is"}'] } }
    ])),
    sse(responsesStream([{ text: ['It is ', '21', ' °C', '.'] }], 'resp_test_02'))
  )
  const events = await collect(agent, 'Weather in Paris?')
  t.same(events, [
    { type: 'text', text: 'Hello' },
    { type: 'text', text: ' ' },
    { type: 'text', text: 'world' },
    { type: 'text', text: '\n\n' },
    { type: 'tool_use', id: 'call_01', name: 'get_weather', input: { city: 'Paris' } },
    { type: 'tool_result', id: 'call_01', output: { city: 'Paris', temp_c: 21 } },
    { type: 'text', text: 'It is ' },
    { type: 'text', text: '21' },
    { type: 'text', text: ' °C' },
    { type: 'text', text: '.' },
    { type: 'done' }
  ])
  t.same(inputs, [{ city: 'Paris' }], 'the tool got the arguments assembled from the deltas')

  t.equal(server.requests.length, 2)
  t.same(server.requests.map(r => r.path), ['/responses', '/responses'], 'the Responses API')
  t.equal(server.requests[0]!.headers.authorization, `Bearer ${KEY}`)
  const [first, second] = server.requests.map(r => r.body as ResponsesBody)
  t.match(first, { model: 'gpt-test', stream: true, tools: [{ type: 'function', name: 'get_weather' }] })
  t.match(JSON.stringify(first!.input), /Weather in Paris\?/)
  t.match(JSON.stringify(first), /You are terse\./, 'the system prompt is sent')
  const output = second!.input.find(i => i.type === 'function_call_output')
  t.same(output, { type: 'function_call_output', call_id: 'call_01', output: '{"city":"Paris","temp_c":21}' }, 'the result of that call id goes back to the model')
})

t.test('OpenAI: a tool that throws is an error result; the run goes on', async t => {
  const { server, agent } = await openaiSetup(t, { tools: weather(async () => { throw new Error('weather service returned 503') }) })
  server.reply(
    sse(responsesStream([{ call: { id: 'call_02', name: 'get_weather', json: ['{"city":"Oslo"}'] } }])),
    sse(responsesStream([{ text: ['Sorry.'] }], 'resp_test_02'))
  )
  const events = await collect(agent, 'Oslo?')
  t.same(events.map(e => e.type), ['tool_use', 'tool_result', 'text', 'done'])
  t.same(events[1], { type: 'tool_result', id: 'call_02', output: 'weather service returned 503', isError: true })
  t.match(JSON.stringify(server.requests[1]!.body), /call_02.*weather service returned 503/, 'the model is told')
})

t.test('OpenAI: an `event: error` mid-stream ends the run with error, the text so far kept', async t => {
  const { server, agent } = await openaiSetup(t)
  server.reply(sse(responsesStream([{ text: ['Partial', ' ', 'answer'] }], 'resp_err', { failWith: { code: 'server_error', message: 'The server had an error while processing your request.' } })))
  const events = await collect(agent, 'hi')
  t.same(events.slice(0, 3), [{ type: 'text', text: 'Partial' }, { type: 'text', text: ' ' }, { type: 'text', text: 'answer' }])
  t.equal(events.length, 4)
  t.match(events[3], { type: 'error', message: /^Model API error.*The server had an error while processing your request\.$/ })
  t.equal(server.requests.length, 1, 'not retried')
})

t.test('OpenAI: maxSteps bounds the tool loop', async t => {
  let ran = 0
  const { server, agent } = await openaiSetup(t, { maxSteps: 2, tools: weather(async () => ++ran) })
  const again = (n: number): ReturnType<typeof sse> => sse(responsesStream([{ call: { id: `call_${n}`, name: 'get_weather', json: ['{"city":"X"}'] } }], `resp_${n}`))
  server.reply(again(1), again(2), again(3))
  const events = await collect(agent, 'loop')
  t.equal(server.requests.length, 2, 'two model calls, no third')
  t.equal(ran, 2)
  t.match(events.at(-1), { type: 'error', message: /Stopped after 2 model calls/ })
})

t.test('options: a step or token count that is not a whole number ≥ 1 is refused at once', async t => {
  t.throws(() => aiSdkAgent({ model: 'm', maxSteps: -1 }), { code: 'HTMX_SSE_INVALID_OPTION', message: /maxSteps \(aiSdkAgent\) must be a whole number ≥ 1, got -1/ })
  t.throws(() => aiSdkAgent({ model: 'm', maxOutputTokens: 0 }), { code: 'HTMX_SSE_INVALID_OPTION', message: /maxOutputTokens/ })
})

t.test('OpenAI: abort mid-stream ends the iterable at once, nothing after it; the server sees the request closed', async t => {
  const { server, agent } = await openaiSetup(t)
  const frames = responsesStream([{ text: ['Hello', ' there', ' and more'] }])
  const firstDelta = frames.findIndex(f => (f.data as { type: string }).type === 'response.output_text.delta')
  server.reply(sse(frames.slice(0, firstDelta + 2), { hold: true }))
  const ac = new AbortController()
  const it = agent.run('hi', ac.signal)[Symbol.asyncIterator]()
  t.same((await within('first token', it.next())).value, { type: 'text', text: 'Hello' })
  ac.abort()
  t.same(await within('the end after abort', it.next()), { done: true, value: undefined }, 'no event after the abort')
  await within('the server to see the request closed', server.requests[0]!.hungUp)
  t.ok(server.requests[0]!.clientClosed())
})

t.test('Anthropic through the same adapter (@ai-sdk/anthropic, Messages API wire format)', async t => {
  const server = await startLlmServer()
  t.teardown(() => server.close())
  const anthropic = createAnthropic({ apiKey: 'sk-ant-test-0123456789', baseURL: `${server.url}/v1` })
  const agent = aiSdkAgent({ model: anthropic('claude-test'), maxOutputTokens: 300, tools: weather(async input => ({ city: input.city, sky: 'clear' })) })
  server.reply(
    sse(anthropicMessage([{ text: ['Let', ' me', ' check', '.\n'] }, { toolUse: { id: 'toolu_07', name: 'get_weather', json: ['{"city":', ' "Lyon"}'] } }], 'tool_use')),
    sse(anthropicMessage([{ text: ['Clear', ' skies', '.'] }], 'end_turn', 'msg_test_02'))
  )
  const events = await collect(agent, 'Lyon?')
  t.same(events, [
    { type: 'text', text: 'Let' },
    { type: 'text', text: ' me' },
    { type: 'text', text: ' check' },
    { type: 'text', text: '.\n' },
    { type: 'tool_use', id: 'toolu_07', name: 'get_weather', input: { city: 'Lyon' } },
    { type: 'tool_result', id: 'toolu_07', output: { city: 'Lyon', sky: 'clear' } },
    { type: 'text', text: 'Clear' },
    { type: 'text', text: ' skies' },
    { type: 'text', text: '.' },
    { type: 'done' }
  ])
  t.same(server.requests.map(r => r.path), ['/v1/messages', '/v1/messages'])
  t.match(server.requests[0]!.body, { model: 'claude-test', max_tokens: 300, stream: true }, 'maxOutputTokens is the call\'s max_tokens')
  const second = server.requests[1]!.body as { messages: Array<{ role: string, content: Array<{ type: string, tool_use_id?: string }> }> }
  t.match(second.messages.at(-1), { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_07' }] }, 'the result of that tool_use id goes back')
})

t.test('no unhandled rejection from any of the above', async t => {
  await new Promise(resolve => setTimeout(resolve, 50))
  t.equal(unhandled.count, 0)
})
