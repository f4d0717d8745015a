import t from 'tap'
import Fastify from 'fastify'
import htmxSse from '../plugin/index.js'
import { chatRoutes, notificationsRoutes, publishNotification, validateNotification } from './helpers/routes.js'
import { openPage } from './helpers/live-page.js'
import { request } from './helpers/sse-client.js'
import { sseTest } from 'fastify-htmx-sse/testing'

async function start () {
  const app = Fastify({ logger: false })
  await app.register(htmxSse, { heartbeatMs: false })
  await app.register(notificationsRoutes, { prefix: '/notifications' })
  await app.register(chatRoutes, { prefix: '/chat' })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as { port: number }
  return { app, url: `http://127.0.0.1:${port}` }
}

const form = (fields: Record<string, string>): { headers: Record<string, string>, payload: string } => ({
  headers: { 'content-type': 'application/x-www-form-urlencoded', 'hx-request': 'true' },
  payload: new URLSearchParams(fields).toString()
})

t.test('validateNotification', async t => {
  t.same(validateNotification({ level: 'info', text: '  hi  ' }), { ok: true, value: { level: 'info', text: 'hi' } })
  t.match(validateNotification({ level: 'info', text: '   ' }), { ok: false, errors: { text: /Write/ } })
  t.match(validateNotification({ level: 'loud', text: 'x' }), { ok: false, errors: { level: /Choose a level/ } })
  t.match(validateNotification({ level: 'info', text: 'x'.repeat(501) }), { ok: false, errors: { text: /under 500/ } })
  t.match(validateNotification({ level: 'info', text: 'x'.repeat(500) }), { ok: true })
  t.match(validateNotification(null), { ok: false })
  t.match(validateNotification({ level: ['info'], text: 1 }), { ok: false })
})

t.test('notifications: invalid posts get 422 and the form with an inline error', async t => {
  const { app } = await start()
  t.teardown(() => app.close())
  for (const [fields, pattern] of [
    [{ level: 'info', text: '' }, /Write a message/],
    [{ level: 'info', text: 'y'.repeat(501) }, /under 500 characters \(this one has 501\)/],
    [{ level: 'shout', text: 'hello' }, /Choose a level/]
  ] as const) {
    const res = await app.inject({ method: 'POST', url: '/notifications', ...form(fields) })
    t.equal(res.statusCode, 422)
    t.match(res.headers['content-type'], /text\/html/)
    t.match(res.body, /^<form id="notify-form"/, 'the form replaces itself (hx-swap=outerHTML)')
    t.match(res.body, pattern)
    t.match(res.body, /class="form-error" role="alert"/)
    t.match(res.body, /aria-invalid="true"/)
  }
  const hostile = await app.inject({ method: 'POST', url: '/notifications', ...form({ level: '<script>', text: '"><img src=x onerror=alert(1)>' }) })
  t.equal(hostile.statusCode, 422)
  t.match(hostile.body, /value="&#34;><img/, 'the text kept in the form cannot leave its attribute')
  t.notMatch(hostile.body, /value=""/)
  t.notMatch(hostile.body, /<script>/)
  const json = await app.inject({ method: 'POST', url: '/notifications', headers: { accept: 'application/json' }, payload: { level: 'nope', text: '' } })
  t.equal(json.statusCode, 422)
  t.match(json.json(), { fields: { level: String, text: String } })
})

t.test('notifications: the page renders the hub\'s history and asks for the 422 swap', async t => {
  const { app } = await start()
  t.teardown(() => app.close())
  await publishNotification(app.sseHub, { level: 'warning', text: 'first <b>' })
  await publishNotification(app.sseHub, { level: 'success', text: 'second' })
  const page = await app.inject('/notifications')
  t.equal(page.statusCode, 200)
  t.match(page.body, /<meta name="htmx-config" content="[^"]*422/)
  t.match(page.body, /<ol id="notifications"[^>]*><li id="note-[0-9a-f]{8}" class="note note-success">[\s\S]*second[\s\S]*first &lt;b>/, 'the items themselves, newest first, escaped')
  const head = await app.sseHub.head()
  t.match(page.body, new RegExp(`sse-connect="/_sse/stream\\?t=[^"]+&amp;lastEventId=${head}"`), 'live at the hub\'s head')
  t.equal((page.body.match(/sse-connect=/g) ?? []).length, 1, 'one connect element')
})

t.test('notifications: a valid post reaches every open stream, and nothing between render and connect is lost', async t => {
  const { app, url } = await start()
  t.teardown(() => app.close())
  const broadcasts = sseTest(app).captureBroadcasts()
  const a = await sseTest(app).openStream('/notifications')
  const b = await sseTest(app).openStream('/notifications')
  const res = await request(`${url}/notifications`, { method: 'POST', ...{ headers: form({}).headers, body: new URLSearchParams({ level: 'error', text: 'disk <full>' }).toString() } })
  t.equal(res.status, 200)
  t.match(res.body, /Published\./)
  t.notMatch(res.body, /disk/, 'the form comes back cleared')
  const sent = await broadcasts.next({ topic: 'notifications' })
  t.equal(sent.event, 'message', 'unnamed: both htmx versions swap it')
  t.match(sseTest(app).oobParts(sent), [{ swap: 'prepend', target: '#notifications', id: /^note-[0-9a-f]{8}$/, limit: 50, html: /^<li id="note-[0-9a-f]{8}" class="note note-error">[\s\S]*disk &lt;full>/ }],
    'a Prepend of the escaped item, keeping the page\'s 50')
  for (const c of [a, b]) t.same(await c.next(), { id: sent.id, event: 'message', data: sent.data }, 'every open page gets it')
  a.close()
  b.close()

  // render, then something is published, then the page connects with its cursor
  const page = await openPage(url, '/notifications')
  await publishNotification(app.sseHub, { level: 'info', text: 'published in between' })
  const late = await page.connect()
  const [missed] = await late.waitFor(1)
  t.match(missed!.data, /published in between/, 'replayed from the cursor')
  t.equal(late.events.filter(e => /disk/.test(e.data)).length, 0, 'what the page already shows is not sent again')
  late.close()

  const plain = await app.inject({ method: 'POST', url: '/notifications', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'level=info&text=plain' })
  t.equal(plain.statusCode, 303, 'a plain form post redirects back to the page')
  const api = await app.inject({ method: 'POST', url: '/notifications', headers: { accept: 'application/json' }, payload: { level: 'info', text: 'api' } })
  t.equal(api.statusCode, 201)
  t.match(api.json(), { id: /^\d+$/ })
  t.same(broadcasts.broadcasts.map(b => b.id).slice(-2), [(await broadcasts.next(b => b.data.includes('plain'))).id, api.json().id], 'form and JSON posts publish too')
  broadcasts.stop()
})

t.test('chat: user text is escaped, bad input is a 422 with an inline error, room names are checked', async t => {
  const { app } = await start()
  t.teardown(() => app.close())
  const c = await sseTest(app).openStream('/chat/lobby')
  const res = await app.inject({ method: 'POST', url: '/chat/lobby/messages', ...form({ nick: '<i>eve</i>', text: '<img src=x onerror=alert(1)>' }) })
  t.equal(res.statusCode, 200)
  t.match(res.body, /<form id="chat-form"/)
  t.match(res.body, /value="&lt;i>eve&lt;\/i>"|value="<i>eve<\/i>"/, 'nick kept in the fresh form')
  const ev = await c.next()
  t.equal(ev.event, 'message', 'unnamed')
  const [append, ...more] = sseTest(app).oobParts(ev)
  t.match(append, { swap: 'append', target: '#chat-messages', id: /^msg-[0-9a-f]{8}-[0-9a-f]{3}$/ }, 'an Append')
  t.same(more, [])
  t.notMatch(ev.data, /<img/)
  t.match(append!.html, /&lt;img src=x onerror=alert\(1\)>/)
  t.match(append!.html, /&lt;i>eve&lt;\/i>/)
  c.close()

  const empty = await app.inject({ method: 'POST', url: '/chat/lobby/messages', ...form({ nick: 'eve', text: ' ' }) })
  t.equal(empty.statusCode, 422)
  t.match(empty.body, /<p id="chat-messages-error" class="form-error" hx-swap-oob="outerHTML: #chat-messages-error">/)
  t.match(empty.body, /Write a message/)
  const long = await app.inject({ method: 'POST', url: '/chat/lobby/messages', ...form({ nick: 'eve', text: 'x'.repeat(501) }) })
  t.equal(long.statusCode, 422)
  const noNick = await app.inject({ method: 'POST', url: '/chat/lobby/messages', ...form({ nick: '', text: 'hi' }) })
  t.equal(noNick.statusCode, 422)
  t.match(noNick.body, /Pick a nickname/)

  const badRoom = await app.inject('/chat/..%2Fetc')
  t.equal(badRoom.statusCode, 404)
  const upper = await app.inject('/chat/Lobby')
  t.equal(upper.statusCode, 404)

  const page = await app.inject('/chat/lobby')
  t.equal(page.statusCode, 200)
  t.match(page.body, /&lt;img src=x onerror=alert\(1\)>/, 'history pre-rendered, still escaped')
  t.notMatch(page.body, /<img/)
  t.match(page.body, /<li id="msg-[0-9a-f-]{12}" class="msg"><span class="nick">&lt;i>eve&lt;\/i><\/span>/, 'the message itself, as the Append put it')
  t.match(page.body, /sse-connect="\/_sse\/stream\?t=[^"]+&amp;lastEventId=\d+"/)
  const index = await app.inject('/chat/')
  t.match(index.body, /href="\/chat\/lobby"/)
})
