/**
 * One wire format for both htmx majors: a page on htmx 2 and a page on htmx 4
 * subscribed to the same topic get byte-identical frames from one render and
 * one encode per publish (no per-version or per-subscriber work).
 */
import t from 'tap'
import Fastify from 'fastify'
import htmxSse from '../plugin/index.js'
import { NotificationItem, Oob } from './helpers/views.js'
import { liveUrl } from './helpers/live-page.js'
import { connect } from './helpers/sse-client.js'

t.test('an htmx 2 and an htmx 4 subscriber of one topic: one render, byte-identical frames', async t => {
  const app = Fastify({ logger: false })
  await app.register(htmxSse, { heartbeatMs: false })
  // An app moving page by page: each page picks its major (reply.live's htmx option).
  for (const htmx of [2, 4] as const) {
    app.get(htmx === 2 ? '/two' : '/four', async (_request, reply) => {
      const live = await reply.live(['notifications'], { htmx })
      return await reply.type('text/html').send(`<!doctype html><html><head>${String(live.scripts)}</head><body><ol id="notifications"></ol>${String(live.element)}</body></html>`)
    })
  }
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

  const pages = [await (await fetch(`${base}/two`)).text(), await (await fetch(`${base}/four`)).text()]
  t.match(pages[0], /sse-connect="\/_sse\/stream/, 'the htmx 2 page')
  t.match(pages[1], /hx-sse:connect="\/_sse\/stream/, 'the htmx 4 page')
  // What each client sends: EventSource (htmx-ext-sse), and htmx 4's fetch.
  const two = await connect(liveUrl(base, pages[0]!)!, { headers: { accept: 'text/event-stream' } })
  const four = await connect(liveUrl(base, pages[1]!)!, { headers: { accept: 'text/html, text/event-stream', 'hx-request': 'true' } })
  t.equal(app.sseHub.stats().topics.notifications, 2)

  let renders = 0
  function Counted (props: { n: number }): JSX.Element {
    renders++
    return <Oob id='notifications' swap='afterbegin'><NotificationItem id={`n${props.n}`} level='info' text={`note ${props.n} <b>`} at={0} /></Oob>
  }
  const N = 20
  for (let n = 1; n <= N; n++) await app.sseHub.publish('notifications', { data: <Counted n={n} /> })
  await two.waitFor(N)
  await four.waitFor(N)
  t.equal(renders, N, 'one render per publish')
  const frames = (raw: string): string => raw.slice(raw.indexOf('id:'))
  t.equal(frames(four.raw()), frames(two.raw()), 'byte-identical frames')
  t.ok(two.events.every(e => e.event === undefined), 'unnamed events (applied by both majors)')
  t.match(two.events[0]!.data, /^<div hx-swap-oob="afterbegin:#notifications"><li id="n1"/)
  two.close()
  four.close()
})
