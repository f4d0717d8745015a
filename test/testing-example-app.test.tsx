/**
 * The example dashboard tested the way a user tests their own app: with
 * `fastify-htmx-sse/testing` only (and Fastify's `inject` for the posts).
 * Posting a notification publishes a prepend to #notifications, posting a
 * chat message an append to #chat-messages, and the dashboard page's live
 * stream, followed from the page as a browser would, gets exactly those
 * bytes, for both htmx majors.
 */
import t from 'tap'
import { fakeSampler } from 'fastify-htmx-sse/routes'
import { sseTest } from 'fastify-htmx-sse/testing'
import { buildApp } from '../example-app/app.js'

const form = (fields: Record<string, string>) => ({
  headers: { 'content-type': 'application/x-www-form-urlencoded', 'hx-request': 'true' },
  payload: new URLSearchParams(fields).toString()
})

for (const htmx of [2, 4] as const) {
  t.test(`htmx ${htmx}: a post publishes a fragment that the dashboard's live stream receives`, async t => {
    const { app } = await buildApp({ htmx, logLevel: false, sampler: fakeSampler(), metricsIntervalMs: 1000, statsIntervalMs: 1000, heartbeatMs: false })
    t.teardown(() => app.close())
    const broadcasts = sseTest(app).captureBroadcasts()
    t.teardown(() => broadcasts.stop())
    const page = await sseTest(app).openStream('/')
    t.teardown(() => page.close())
    t.match(page.page, /<ol id="notifications"/, 'the dashboard renders the feed the stream updates')

    const posted = await app.inject({ method: 'POST', url: '/notifications', ...form({ level: 'warning', text: 'disk <almost> full' }) })
    t.equal(posted.statusCode, 200)
    const note = await broadcasts.next({ topic: 'notifications' })
    const [prepend, ...rest] = sseTest(app).oobParts(note)
    t.same(rest, [], 'one part')
    t.match(prepend, { swap: 'prepend', target: '#notifications', id: /^note-[0-9a-f]{8}$/, limit: 50 })
    t.match(prepend!.html, /^<li id="note-[0-9a-f]{8}" class="note note-warning">/)
    t.match(prepend!.html, /disk &lt;almost> full/, 'user text escaped')
    t.same(await page.next({ id: note.id }), { id: note.id, event: 'message', data: note.data }, 'the page got the same bytes, unnamed (both majors swap it)')

    const said = await app.inject({ method: 'POST', url: '/chat/lobby/messages', ...form({ nick: 'ada', text: 'hello <all>' }) })
    t.equal(said.statusCode, 200)
    const message = await broadcasts.next({ topic: 'chat:lobby' })
    t.match(sseTest(app).oobParts(message), [{ swap: 'append', target: '#chat-messages', id: /^msg-/, html: /<span class="nick">ada<\/span>[\s\S]*hello &lt;all>/ }])
    t.equal((await page.next({ id: message.id })).data, message.data)

    const refused = await app.inject({ method: 'POST', url: '/notifications', ...form({ level: 'info', text: ' ' }) })
    t.equal(refused.statusCode, 422)
    await t.rejects(broadcasts.next({ topic: 'notifications' }, 200), { code: 'HTMX_SSE_TEST_TIMEOUT' }, 'an invalid post publishes nothing')
  })
}
