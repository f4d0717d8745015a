/**
 * Route-module hygiene: each module needs the core plugin (a clear error at
 * registration), keeps its scope (prefix, parsers, decorators), reuses the
 * app's own html/formbody plugins, honours `resumeScriptPath`, and answers in
 * the format `Accept` asks for. Plus `clientAssetsRoutes`.
 */
import t from 'tap'
import { fastifyFormbody } from '@fastify/formbody'
import { fastifyKitaHtml } from '@kitajs/fastify-html-plugin'
import Fastify, { type FastifyPluginAsync } from 'fastify'
import htmxSse, { type HtmxSseOptions } from '../plugin/index.js'
import {
  agentRoutes, chatRoutes, clientAssetsRoutes, fakeSampler, hubStatsRoutes, jobsRoutes, LogFeed, logsRoutes,
  MetricsFeed, metricsRoutes, notificationsRoutes, simulatedAgent
} from '../routes/index.js'

const modules: Array<[string, FastifyPluginAsync<any>, object]> = [
  ['metrics', metricsRoutes, { feed: new MetricsFeed({ sampler: fakeSampler() }) }],
  ['notifications', notificationsRoutes, {}],
  ['jobs', jobsRoutes, {}],
  ['chat', chatRoutes, {}],
  ['agent', agentRoutes, { source: simulatedAgent() }],
  ['logs', logsRoutes, { feed: new LogFeed({ echo: false }) }],
  ['stats', hubStatsRoutes, {}]
]

async function appWith (core: HtmxSseOptions | false = { heartbeatMs: false }) {
  const app = Fastify({ logger: false })
  if (core !== false) await app.register(htmxSse, core)
  return app
}

t.test('every route module refuses to register without the core plugin, with a clear message', async t => {
  for (const [name, plugin, options] of modules) {
    const app = await appWith(false)
    await t.rejects(async () => { await app.register(plugin, { prefix: `/${name}`, ...options }) }, {
      code: 'FST_ERR_PLUGIN_DEPENDENCY_NOT_REGISTERED',
      message: `The dependency 'fastify-htmx-sse' of plugin 'fastify-htmx-sse/routes/${name}' is not registered`
    }, `${name}: says which plugin is missing`)
    await app.close()
  }
})

t.test('modules stay encapsulated: prefix works, the same module twice, nothing leaks to the app', async t => {
  const app = await appWith()
  t.teardown(() => app.close())
  await app.register(chatRoutes, { prefix: '/chat' })
  await app.register(chatRoutes, { prefix: '/support', rooms: ['help'] })
  await app.register(notificationsRoutes, { prefix: '/notifications' })
  await app.ready()
  t.match((await app.inject('/chat/')).body, /href="\/chat\/lobby"/)
  t.match((await app.inject('/support/')).body, /href="\/support\/help"/)
  t.match((await app.inject('/support/help')).body, /sse-connect="\/support\/help\/stream\?lastEventId=/)
  t.equal(app.hasReplyDecorator('html'), false, 'reply.html stays inside the modules')
  t.equal(app.hasContentTypeParser('application/x-www-form-urlencoded'), false, 'the form parser too')
  t.equal(app.hasRequestDecorator('accepts'), false, 'and request.accepts')
})

t.test('an app that registered @kitajs/fastify-html-plugin and @fastify/formbody itself: the modules use those', async t => {
  const app = await appWith()
  t.teardown(() => app.close())
  await app.register(fastifyKitaHtml)
  await app.register(fastifyFormbody, { bodyLimit: 64 * 1024 })
  await app.register(notificationsRoutes, { prefix: '/n' })
  const big = 'level=info&text=hi&pad=' + 'x'.repeat(20 * 1024)
  const res = await app.inject({ method: 'POST', url: '/n', headers: { 'content-type': 'application/x-www-form-urlencoded', 'hx-request': 'true' }, payload: big })
  t.equal(res.statusCode, 200, 'the app\'s 64 KiB limit, not the modules\' 16 KiB')
  t.match(res.body, /Published\./)
  t.equal((await app.inject('/n')).statusCode, 200, 'pages render with the app\'s reply.html')

  const own = await appWith()
  t.teardown(() => own.close())
  await own.register(notificationsRoutes, { prefix: '/n' })
  const refused = await own.inject({ method: 'POST', url: '/n', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: big })
  t.equal(refused.statusCode, 413, 'alone, a module parses forms up to 16 KiB')
})

t.test('pages load the resume script the core plugin serves (resumeScriptPath), or none', async t => {
  const pages = ['/notifications', '/jobs/', '/jobs/nope', '/chat/lobby', '/metrics/', '/logs/']
  for (const [resumeScriptPath, expected] of [['/custom/resume.js', '/custom/resume.js'], [undefined, '/_sse/resume.js'], [false, undefined]] as const) {
    const app = await appWith({ heartbeatMs: false, resumeScriptPath })
    await app.register(notificationsRoutes, { prefix: '/notifications' })
    await app.register(jobsRoutes, { prefix: '/jobs' })
    await app.register(chatRoutes, { prefix: '/chat' })
    await app.register(metricsRoutes, { prefix: '/metrics', feed: new MetricsFeed({ sampler: fakeSampler() }) })
    await app.register(logsRoutes, { prefix: '/logs', feed: new LogFeed({ echo: false }) })
    for (const url of pages) {
      const body = (await app.inject(url)).body
      const scripts = [...body.matchAll(/<script src="([^"]+)"/g)].map(m => m[1])
      t.same(scripts, ['/assets/htmx.min.js', ...(expected === undefined ? [] : [expected]), '/assets/sse.js'], `${url} with resumeScriptPath ${String(resumeScriptPath)}`)
    }
    if (expected !== undefined) t.equal((await app.inject(expected)).statusCode, 200, `${expected} is served`)
    await app.close()
  }
})

t.test('responses follow Accept; a JSON post with a wildcard Accept gets JSON, a form gets HTML', async t => {
  const app = await appWith()
  t.teardown(() => app.close())
  await app.register(notificationsRoutes, { prefix: '/notifications' })
  await app.register(chatRoutes, { prefix: '/chat' })
  await app.register(jobsRoutes, { prefix: '/jobs' })
  const json = { 'content-type': 'application/json' }
  const form = { 'content-type': 'application/x-www-form-urlencoded' }
  const post = async (url: string, headers: Record<string, string>, payload: string) => await app.inject({ method: 'POST', url, headers, payload })
  const note = JSON.stringify({ level: 'info', text: 'hello' })
  const badNote = JSON.stringify({ level: 'info', text: '' })

  for (const accept of ['application/json', '*/*', undefined, 'text/html;q=0.5, application/json']) {
    const headers = accept === undefined ? json : { ...json, accept }
    const ok = await post('/notifications', headers, note)
    t.equal(ok.statusCode, 201, `JSON post, Accept ${accept}: 201`)
    t.match(ok.json(), { id: /^\d+$/ })
    const bad = await post('/notifications', headers, badNote)
    t.equal(bad.statusCode, 422)
    t.match(bad.json(), { error: 'invalid notification', fields: { text: 'Write a message.' } })
  }

  const htmlOk = await post('/notifications', { ...json, accept: 'text/html' }, note)
  t.equal(htmlOk.statusCode, 303, 'JSON post that prefers HTML: redirected like a form')
  const htmlBad = await post('/notifications', { ...json, accept: 'text/html,application/xhtml+xml,*/*;q=0.8' }, badNote)
  t.equal(htmlBad.statusCode, 422)
  t.match(htmlBad.headers['content-type'], /^text\/html/)
  t.match(htmlBad.body, /^<form id="notify-form"[^]*Write a message\./)

  const formJson = await post('/notifications', { ...form, accept: 'application/json' }, 'level=warning&text=from+a+form')
  t.equal(formJson.statusCode, 201, 'a form post that asks for JSON gets JSON')
  const formBad = await post('/notifications', { ...form, accept: 'application/json' }, 'level=loud&text=x')
  t.match(formBad.json(), { fields: { level: /^Choose a level: info, success, warning, error\.$/ } })
  t.equal((await post('/notifications', form, 'level=info&text=plain')).statusCode, 303, 'a plain form post (no Accept) redirects')

  const chatJson = await post('/chat/lobby/messages', { ...json, accept: 'application/json' }, JSON.stringify({ nick: 'ann', text: 'hi' }))
  t.equal(chatJson.statusCode, 201)
  t.match(chatJson.json(), { id: /^\d+$/ })
  const chatBad = await post('/chat/lobby/messages', json, JSON.stringify({ nick: 'ann', text: 'x'.repeat(501) }))
  t.same([chatBad.statusCode, chatBad.json()], [422, { error: 'Messages are at most 500 characters.' }])
  const chatForm = await post('/chat/lobby/messages', form, 'nick=ann&text=')
  t.equal(chatForm.statusCode, 422, 'a plain form post gets the form with its error, as HTML')
  t.match(chatForm.body, /<form id="chat-form"[^]*Write a message\./)
  t.equal((await post('/chat/lobby/messages', form, 'nick=ann&text=hi')).headers.location, '/chat/lobby')
  t.equal((await post('/chat/Lobby/messages', json, JSON.stringify({ nick: 'ann', text: 'hi' }))).statusCode, 404, 'a bad room is a 404, also on post')

  const job = await post('/jobs', { ...json, accept: 'application/json' }, JSON.stringify({ title: 'api' }))
  t.equal(job.statusCode, 201)
  t.match(job.json(), { id: /^[0-9a-f]{8}$/, url: /^\/jobs\/[0-9a-f]{8}$/ })
  t.equal((await post('/jobs', { ...form, accept: 'application/json' }, 'title=form')).statusCode, 201)
  t.equal((await post('/jobs', { ...json, accept: 'text/html' }, '{}')).statusCode, 303)
  t.equal((await app.inject({ method: 'POST', url: '/jobs' })).statusCode, 303, 'a post with no body at all starts a job')
  t.equal((await post('/jobs', json, JSON.stringify({ title: 7 }))).statusCode, 400, 'a wrongly typed field is a bad request')
})

t.test('text is trimmed before it is measured; every field error is reported', async t => {
  const app = await appWith()
  t.teardown(() => app.close())
  await app.register(notificationsRoutes, { prefix: '/notifications' })
  await app.register(chatRoutes, { prefix: '/chat' })
  await app.register(agentRoutes, { prefix: '/agent', source: simulatedAgent({ tokenMs: 1, toolMs: 1, thinkMs: 1 }) })
  const hx = { 'content-type': 'application/x-www-form-urlencoded', 'hx-request': 'true' }
  const padded = new URLSearchParams({ level: 'info', text: `   ${'y'.repeat(500)}   ` }).toString()
  t.equal((await app.inject({ method: 'POST', url: '/notifications', headers: hx, payload: padded })).statusCode, 200, '500 characters plus spaces is fine')
  const history = await app.sseHub.history('notifications')
  t.match(history.at(-1)?.data, new RegExp(`>${'y'.repeat(500)}<`), 'published trimmed')
  const both = await app.inject({ method: 'POST', url: '/notifications', headers: { accept: 'application/json' }, payload: {} })
  t.same(both.json().fields, { level: 'Choose a level: info, success, warning, error.', text: 'Write a message.' })
  const long = await app.inject({ method: 'POST', url: '/notifications', headers: hx, payload: `level=info&text=${'z'.repeat(600)}` })
  t.match(long.body, /Keep it under 500 characters \(this one has 600\)\./)
  const nick = await app.inject({ method: 'POST', url: '/chat/lobby/messages', headers: hx, payload: `nick=${'n'.repeat(33)}&text=` })
  t.match(nick.body, /Nicknames are at most 32 characters\./, 'the nickname problem first')
  t.equal((await app.inject({ method: 'POST', url: '/chat/lobby/messages', headers: hx, payload: 'nick=%20ann%20&text=%20hi%20' })).statusCode, 200)

  t.equal((await app.inject('/agent/session?prompt=%20%20')).statusCode, 422, 'a blank prompt')
  t.match((await app.inject('/agent/session?prompt=%20hello%20')).body, /sse-connect="\/agent\/stream\?prompt=hello"/, 'trimmed')
  const tooLong = await app.inject(`/agent/stream?prompt=${'p'.repeat(501)}`)
  t.same([tooLong.statusCode, tooLong.json()], [400, { error: 'prompt must be 1-500 characters' }])
  const runs = await app.inject({ method: 'POST', url: '/agent/runs', headers: hx, payload: 'prompt=' })
  t.equal(runs.statusCode, 422)
  t.match(runs.body, /^<p class="form-error" role="alert">Write a prompt/, 'a form gets the inline error')
  const json = await app.inject({ method: 'POST', url: '/agent/runs', headers: { accept: 'application/json' }, payload: { prompt: ' ' } })
  t.same([json.statusCode, json.json()], [422, { error: 'prompt must be 1-500 characters' }])
})

t.test('clientAssetsRoutes serves exactly what Layout asks for, cached, from node_modules', async t => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(clientAssetsRoutes, { prefix: '/assets' })
  for (const name of ['htmx.min.js', 'sse.js', 'htmx4/htmx.min.js', 'htmx4/hx-sse.js']) {
    const res = await app.inject(`/assets/${name}`)
    t.equal(res.statusCode, 200, name)
    t.match(res.headers['content-type'], /javascript/)
    t.equal(res.headers['cache-control'], 'public, max-age=3600')
    t.ok(res.headers.etag, 'with an ETag')
    t.ok(res.body.length > 1000)
    const again = await app.inject({ url: `/assets/${name}`, headers: { 'if-none-match': String(res.headers.etag) } })
    t.equal(again.statusCode, 304, 'revalidates')
    t.equal((await app.inject({ method: 'HEAD', url: `/assets/${name}` })).statusCode, 200)
  }
  t.match((await app.inject('/assets/htmx.min.js')).body, /htmx/)
  t.match((await app.inject('/assets/sse.js')).body, /sse-connect/)
  t.match((await app.inject('/assets/htmx4/htmx.min.js')).body, /version="4\.0\./, 'htmx 4 under htmx4/')
  t.match((await app.inject('/assets/htmx4/hx-sse.js')).body, /hx-sse:connect/)
  const gz = await app.inject({ url: '/assets/htmx.min.js', headers: { 'accept-encoding': 'gzip' } })
  t.equal(gz.headers['content-encoding'], 'gzip', 'the .gz htmx ships')
  for (const url of ['/assets/htmx.js', '/assets/htmx.min.js.gz', '/assets/ext/sse.js', '/assets/../package.json', '/assets/%2e%2e/package.json', '/assets/']) {
    t.equal((await app.inject(url)).statusCode, 404, `${url}: not served`)
  }
})
