/**
 * Route-module hygiene: each module needs the core plugin (a clear error at
 * registration), keeps its scope (prefix, parsers, decorators), reuses the
 * app's own html/formbody plugins, loads the scripts the core plugin serves
 * for the app's htmx major, and answers in the format `Accept` asks for.
 */
import t from 'tap'
import { fastifyFormbody } from '@fastify/formbody'
import { fastifyKitaHtml } from '@kitajs/fastify-html-plugin'
import Fastify, { type FastifyPluginAsync } from 'fastify'
import htmxSse, { type HtmxSseOptions } from '../plugin/index.js'
import {
  agentRoutes, chatRoutes, fakeSampler, hubStatsRoutes, jobsRoutes, LogFeed, logsRoutes,
  MetricsFeed, metricsRoutes, notificationsRoutes, simulatedAgent
} from './helpers/routes.js'
import { connect } from './helpers/sse-client.js'
import { runs } from '../runs/index.js'

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
  const app = await appWith()
  await t.rejects(async () => { await app.register(jobsRoutes, { prefix: '/jobs' }) }, {
    code: 'FST_ERR_PLUGIN_DEPENDENCY_NOT_REGISTERED',
    message: "The dependency 'fastify-htmx-sse/runs' of plugin 'fastify-htmx-sse/routes/jobs' is not registered"
  }, 'jobs: runs its demo through the runs plugin, and says so')
  await app.close()
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
  t.match((await app.inject('/support/help')).body, /sse-connect="\/_sse\/stream\?t=/)
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

t.test('pages load the scripts the core plugin serves for the app\'s major (htmx 2: with the resume script at resumeScriptPath)', async t => {
  const pages = ['/notifications', '/jobs/', '/chat/lobby', '/metrics/', '/logs/', '/hub/', '/agent/']
  const register = async (app: Awaited<ReturnType<typeof appWith>>): Promise<void> => {
    await app.register(notificationsRoutes, { prefix: '/notifications' })
    await app.register(runs)
    await app.register(jobsRoutes, { prefix: '/jobs' })
    await app.register(chatRoutes, { prefix: '/chat' })
    await app.register(metricsRoutes, { prefix: '/metrics', feed: new MetricsFeed({ sampler: fakeSampler() }) })
    await app.register(logsRoutes, { prefix: '/logs', feed: new LogFeed({ echo: false }) })
    await app.register(hubStatsRoutes, { prefix: '/hub' })
    await app.register(agentRoutes, { prefix: '/agent', source: simulatedAgent() })
  }
  const scriptsOf = (body: string): string[] => [...body.matchAll(/<script src="([^"]+)"/g)].map(m => m[1]!)
  // resumeScriptPath false: the plugin does not serve it, pages still load it where the app serves it.
  for (const [resumeScriptPath, expected, served] of [['/custom/resume.js', '/custom/resume.js', true], [undefined, '/_sse/resume.js', true], [false, '/_sse/resume.js', false]] as const) {
    const app = await appWith({ heartbeatMs: false, resumeScriptPath })
    await register(app)
    for (const url of pages) {
      const body = (await app.inject(url)).body
      t.same(scriptsOf(body), ['/_sse/assets/htmx.min.js', expected, '/_sse/assets/sse.js'], `${url} with resumeScriptPath ${String(resumeScriptPath)}`)
      t.notMatch(body, /hx-sse:connect/, `${url}: no htmx 4 markup`)
    }
    t.equal((await app.inject(expected)).statusCode, served ? 200 : 404, `${expected} ${served ? 'is' : 'is not'} served`)
    for (const file of ['/_sse/assets/htmx.min.js', '/_sse/assets/sse.js']) t.equal((await app.inject(file)).statusCode, 200, `${file} is served`)
    await app.close()
  }
  const four = await appWith({ heartbeatMs: false, htmx: 4 })
  t.teardown(() => four.close())
  await register(four)
  for (const url of pages) {
    const body = (await four.inject(url)).body
    t.same(scriptsOf(body), ['/_sse/assets/htmx4/htmx.min.js', '/_sse/assets/htmx4/hx-sse.js'], `htmx 4: ${url} loads htmx 4, no resume script`)
    t.notMatch(body, /sse-connect=/, `htmx 4: ${url} has no htmx 2 markup`)
    t.match(body, /<meta name="htmx-config" content="[^"]*noSwap/, `htmx 4: ${url} has the config its forms need`)
  }
  t.match((await four.inject('/notifications')).body, /hx-sse:connect="\/_sse\/stream\?t=/)
})

t.test('responses follow Accept; a JSON post with a wildcard Accept gets JSON, a form gets HTML', async t => {
  const app = await appWith()
  t.teardown(() => app.close())
  await app.register(notificationsRoutes, { prefix: '/notifications' })
  await app.register(chatRoutes, { prefix: '/chat' })
  await app.register(runs)
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
  t.match(job.json(), { id: /^[0-9a-f]{16}$/, url: /^\/runs\/job\/[0-9a-f]{16}$/ })
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

  t.equal((await app.inject('/agent/stream?prompt=%20%20')).statusCode, 400, 'a blank prompt')
  await app.listen({ host: '127.0.0.1', port: 0 })
  const run = await connect(`http://127.0.0.1:${(app.server.address() as { port: number }).port}/agent/stream?prompt=%20hello%20`)
  const [first] = await run.waitFor(1)
  run.close()
  t.match(first!.data, /<q>hello<\/q>/, 'trimmed')
  const tooLong = await app.inject(`/agent/stream?prompt=${'p'.repeat(501)}`)
  t.same([tooLong.statusCode, tooLong.json()], [400, { error: 'prompt must be 1-500 characters' }])
  const runs = await app.inject({ method: 'POST', url: '/agent/runs', headers: hx, payload: 'prompt=' })
  t.equal(runs.statusCode, 422)
  t.match(runs.body, /^<p class="form-error" role="alert">Write a prompt/, 'a form gets the inline error')
  const json = await app.inject({ method: 'POST', url: '/agent/runs', headers: { accept: 'application/json' }, payload: { prompt: ' ' } })
  t.same([json.statusCode, json.json()], [422, { error: 'prompt must be 1-500 characters' }])
})
