/**
 * Options: every bad value, misspelt key or option that would be ignored
 * fails at once with one code (HTMX_SSE_INVALID_OPTION, a TypeError) and
 * one message format, at registration, in `memoryTransport()` and in
 * `reply.live()` (answered over a real socket).
 */
import t from 'tap'
import Fastify from 'fastify'
import htmxSse, { memoryTransport, type HtmxSseOptions, type HubTransport } from '../plugin/index.js'
import { startApp } from './helpers/app.js'
import { request } from './helpers/sse-client.js'

const CODE = 'HTMX_SSE_INVALID_OPTION'

async function register (options: unknown): Promise<unknown> {
  const app = Fastify({ logger: false })
  try {
    await app.register(htmxSse, options as HtmxSseOptions)
    await app.ready()
    return undefined
  } catch (err) {
    return err
  } finally {
    await app.close().catch(() => {})
  }
}

/** A transport shared between instances (not the in-process one): what `redisTransport()` is to the plugin. */
const shared: HubTransport = {
  start: async () => {},
  publish: async () => '1',
  since: async () => ({ events: [], complete: true, upTo: '0', more: false }),
  history: async () => [],
  head: async () => undefined,
  close: async () => {}
}

t.test('a bad plugin option fails registration with HTMX_SSE_INVALID_OPTION, in one format', async t => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['heartbeatMs', { heartbeatMs: 0 }, /option heartbeatMs must be a positive number, got 0$/],
    ['retryMs', { retryMs: '3000' }, /option retryMs must be a positive number, got "3000"$/],
    ['maxBufferedBytes', { maxBufferedBytes: -1 }, /option maxBufferedBytes must be a positive number/],
    ['history', { history: -1 }, /option history must be an integer >= 0, got -1$/],
    ['history', { history: 1.5 }, /option history must be an integer >= 0/],
    ['restAboveUtilization', { restAboveUtilization: 1.5 }, /option restAboveUtilization must be a number in \(0, 1\], got 1.5$/],
    ['restAboveUtilization', { restAboveUtilization: 0 }, /option restAboveUtilization must be a number in \(0, 1\], got 0$/],
    ['authorize', { authorize: true }, /option authorize must be a function, got true$/],
    ['authorizeTimeoutMs', { authorizeTimeoutMs: 0 }, /option authorizeTimeoutMs must be a positive number/],
    ['maxConnections', { maxConnections: 0 }, /option maxConnections must be a positive number/],
    ['maxConnectionsPerIp', { maxConnectionsPerIp: Number.NaN }, /option maxConnectionsPerIp must be a positive number, got NaN$/],
    ['liveTtlMs', { liveTtlMs: 10 }, /option liveTtlMs must be a number of ms >= 1000, got 10$/],
    ['maxStreamAgeMs', { maxStreamAgeMs: 999 }, /option maxStreamAgeMs must be a number of ms from 1000 to 2147483647, got 999$/],
    ['maxStreamAgeMs', { maxStreamAgeMs: 30 * 86_400_000 }, /option maxStreamAgeMs must be a number of ms from 1000 to 2147483647/],
    ['maxStreamAgeMs', { maxStreamAgeMs: false }, /option maxStreamAgeMs must be a number of ms from 1000 to 2147483647, got false$/],
    ['htmx', { htmx: 3 }, /option htmx must be 2 or 4, got 3$/],
    ['assetsPath', { assetsPath: 'assets' }, /option assetsPath must be an absolute URL path like \/_sse\/assets, got "assets"$/],
    ['resumeScriptPath', { resumeScriptPath: 'resume.js' }, /option resumeScriptPath must be an absolute URL path/],
    ['refreshPath', { refreshPath: true }, /option refreshPath must be an absolute URL path like \/_sse\/refresh, got true$/],
    ['closePreRequestSockets', { closePreRequestSockets: 'no' }, /option closePreRequestSockets must be true or false, got "no"$/],
    ['transport', { transport: { publish: async () => '1' } }, /option transport must be an object with methods start, publish, since, history, head, close \(missing start, since, history, head, close\)/],
    ['secret', { secret: 'short' }, /option secret must be at least 16 bytes/]
  ]
  for (const [name, options, message] of cases) {
    const err = await register(options) as Error & { code?: string }
    t.equal(err?.code, CODE, `${name}: ${err?.message}`)
    t.ok(err instanceof TypeError, `${name}: a TypeError`)
    t.match(err?.message, /^fastify-htmx-sse: option /, `${name}: one format`)
    t.match(err?.message, message)
  }
})

t.test('no option is silently ignored: misspelt or misplaced keys, history next to a transport', async t => {
  t.match(await register({ heartbeat: 1000 }), { code: CODE, message: /^fastify-htmx-sse: option heartbeat is not an option \(did you mean heartbeatMs\?\); the options are htmx, secret, / })
  t.match(await register({ ttl: 1000 }), { code: CODE, message: /^fastify-htmx-sse: option ttl is not an option; the options are htmx, secret, / })
  t.match(await register({ HeartbeatMs: 1000 }), { code: CODE, message: /option HeartbeatMs is not an option \(did you mean heartbeatMs\?\)/ })
  t.match(await register({ maxTopics: 10 }), { code: CODE, message: /option maxTopics is not an option/ }, 'a memory transport option given to the plugin')
  // The transport keeps the history: the plugin's history would be dropped.
  t.match(await register({ history: 10, transport: memoryTransport() }), { code: CODE, message: /option history cannot be used with transport: the transport keeps the history/ })
  t.match(await register({ history: 10, transport: shared, secret: 'x'.repeat(32) }), { code: CODE, message: /option history cannot be used with transport/ })
  t.match(await register({ transport: shared }), { code: CODE, message: /option secret is required with a shared transport/ })
})

t.test('every option, valid, registers; Fastify\'s own register options pass through', async t => {
  const all: Required<HtmxSseOptions> = {
    htmx: 4,
    secret: ['a'.repeat(16), 'b'.repeat(16)],
    liveTtlMs: 60_000,
    assetsPath: '/a/assets',
    streamPath: '/a/stream',
    heartbeatMs: false,
    retryMs: 1000,
    maxBufferedBytes: 1 << 16,
    maxStreamAgeMs: 60_000,
    history: 10,
    restAboveUtilization: 1,
    transport: shared,
    authorize: () => true,
    authorizeTimeoutMs: 1000,
    maxConnections: 10,
    maxConnectionsPerIp: 5,
    resumeScriptPath: false,
    refreshPath: '/a/refresh',
    closePreRequestSockets: false
  }
  const { history, ...withTransport } = all
  t.equal(await register(withTransport), undefined, 'every option but history (the transport keeps it)')
  const { transport, secret, ...withHistory } = all
  t.equal(await register(withHistory), undefined, 'every option but transport')
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(htmxSse, { prefix: '/ignored-by-fastify-plugin', logLevel: 'warn', heartbeatMs: false } as HtmxSseOptions)
  await app.ready()
  t.ok(app.hasDecorator('sseHub'))
})

t.test('memoryTransport options: the same code and format', async t => {
  t.throws(() => memoryTransport({ history: -1 }), { code: CODE, message: 'fastify-htmx-sse: option history (memoryTransport) must be an integer >= 0, got -1' })
  t.throws(() => memoryTransport({ maxTopics: 0 }), { code: CODE, message: /option maxTopics \(memoryTransport\) must be an integer >= 1/ })
  t.throws(() => memoryTransport({ maxTopic: 5 } as never), { code: CODE, message: /option maxTopic \(memoryTransport\) is not an option \(did you mean maxTopics\?\)/ })
  t.ok(memoryTransport({ history: 0, maxTopics: 1 }))
})

t.test('reply.live options: the same code and format, answered over a socket', async t => {
  const { app, url } = await startApp({ heartbeatMs: false }, app => {
    app.get('/page', async (request, reply) => {
      const live = await reply.live(['t'], JSON.parse((request.query as { o: string }).o))
      return { url: live.url }
    })
  })
  t.teardown(() => app.close())
  const page = async (options: unknown): Promise<{ status: number, body: { code?: string, message?: string, url?: string } }> => {
    const res = await request(`${url}/page?o=${encodeURIComponent(JSON.stringify(options))}`)
    return { status: res.status, body: JSON.parse(res.body) }
  }
  t.match(await page({ ttl: 5000 }), { status: 500, body: { code: CODE, message: /^fastify-htmx-sse: option ttl \(reply\.live\) is not an option; the options are since, closeOn, ttlMs, htmx$/ } })
  t.match(await page({ ttlMs: 10 }), { status: 500, body: { code: CODE, message: 'fastify-htmx-sse: option ttlMs (reply.live) must be a number of ms >= 1000, got 10' } })
  t.match(await page({ htmx: 3 }), { status: 500, body: { code: CODE, message: /option htmx \(reply\.live\) must be 2 or 4, got 3$/ } })
  t.match(await page({ closeOn: 'a b' }), { status: 500, body: { code: CODE, message: /option closeOn \(reply\.live\) / } })
  t.match(await page({ ttlMs: 5000, htmx: 2, closeOn: 'done' }), { status: 200, body: { url: /^\/_sse\/stream\?t=/ } })
})
