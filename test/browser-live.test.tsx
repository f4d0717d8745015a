/**
 * A live page built only with `reply.live`, `publish` and a fragment helper,
 * in Chromium under htmx 2 and htmx 4: connection cuts, a 503 outage and a
 * server restart (a new in-process hub: the page gets `reset` and reloads),
 * and every order is on the page exactly once, newest first, with no htmx
 * swap error. The only console errors allowed are the browser's own reports
 * of the failed connections.
 */
import t from 'tap'
import { Html } from '@kitajs/html'
import Fastify, { type FastifyInstance } from 'fastify'
import type { ConsoleMessage } from 'playwright-core'
import htmxSse from '../plugin/index.js'
import { Prepend } from '../views/index.js'
import { launch } from './helpers/browser.js'

const SECRET = 'browser-live-test-secret-0123456789'

interface Server { app: FastifyInstance, port: number }

/** The whole app a user writes: register, one page, one publish. */
async function start (htmx: 2 | 4, db: number[], port = 0, outage = { on: false }): Promise<Server> {
  const app = Fastify()
  await app.register(htmxSse, { htmx, secret: SECRET, retryMs: 300 })
  app.addHook('onRequest', async (request, reply) => {
    if (outage.on && request.url.startsWith('/_sse/stream')) await reply.code(503).header('retry-after', '1').send('maintenance')
  })
  app.get('/orders', async (request, reply) => {
    const live = await reply.live(['orders'])
    const page = (
      <html>
        <head>{live.scripts}</head>
        <body>
          <ul id='orders'>{db.map(n => <li id={`order-${n}`} safe>{`order ${n}`}</li>)}</ul>
          {live.element}
        </body>
      </html>
    )
    return await reply.type('text/html; charset=utf-8').send('<!doctype html>' + await page)
  })
  await app.listen({ host: '127.0.0.1', port })
  return { app, port: (app.server.address() as { port: number }).port }
}

async function addOrder (app: FastifyInstance, db: number[], n: number): Promise<void> {
  db.unshift(n)
  await app.sseHub.publish('orders', { data: <Prepend to='orders' id={`order-${n}`} tag='li'>{Html.escapeHtml(`order ${n}`)}</Prepend> })
}

const browser = await launch()
t.teardown(() => browser.close())

for (const htmx of [2, 4] as const) {
  t.test(`htmx ${htmx}: cuts, a 503 outage and a restart; every order exactly once`, async t => {
    const db: number[] = []
    const outage = { on: false }
    let server = await start(htmx, db, 0, outage)
    t.teardown(() => server.app.close())
    const page = await browser.newPage()
    t.teardown(() => page.close())
    const errors: string[] = []
    page.on('console', (m: ConsoleMessage) => { if (m.type() === 'error' || m.type() === 'warning') errors.push(m.text()) })
    page.on('pageerror', err => errors.push(`pageerror: ${err.message}`))
    // Every htmx error event, by name (htmx 2 logs them as "[object Event]").
    await page.addInitScript(() => {
      const w = window as unknown as { htmxErrors: string[] }
      w.htmxErrors = []
      for (const name of ['htmx:oobErrorNoTarget', 'htmx:swapError', 'htmx:targetError', 'htmx:sseError', 'htmx:error', 'htmx:sse:error']) {
        document.addEventListener(name, () => w.htmxErrors.push(name), true)
      }
    })
    const shown = async (): Promise<number[]> =>
      (await page.locator('#orders > li').evaluateAll(els => els.map(e => e.id))).map(id => Number(id.slice('order-'.length)))
    const waitFor = async (n: number): Promise<void> => { await page.waitForSelector(`#order-${n}`, { state: 'attached', timeout: 20_000 }) }

    let loads = 0
    page.on('load', () => { loads++ })
    await addOrder(server.app, db, 1)
    await page.goto(`http://127.0.0.1:${server.port}/orders`)
    await addOrder(server.app, db, 2)
    await addOrder(server.app, db, 3)
    await waitFor(3)

    // Connection cuts: the server drops every socket; the page resumes from its last id.
    server.app.server.closeAllConnections()
    await addOrder(server.app, db, 4)
    await addOrder(server.app, db, 5)
    await waitFor(5)

    // A 503 outage of the stream route.
    outage.on = true
    server.app.server.closeAllConnections()
    await addOrder(server.app, db, 6)
    await page.waitForTimeout(1500)
    await addOrder(server.app, db, 7)
    outage.on = false
    await waitFor(7)
    t.same(await shown(), [7, 6, 5, 4, 3, 2, 1], 'after cuts and an outage')
    t.equal(loads, 1, 'cuts and the outage healed by replay, without a reload')

    // Restart: a new process's hub has none of the old ids; the page gets reset and reloads.
    const port = server.port
    await server.app.close()
    server = await start(htmx, db, port, outage)
    await addOrder(server.app, db, 8)
    await addOrder(server.app, db, 9)
    await waitFor(9)
    await page.waitForTimeout(500)
    t.same(await shown(), [9, 8, 7, 6, 5, 4, 3, 2, 1], 'after a restart: every order exactly once, newest first')
    t.equal(loads, 2, 'the restart (history gone) reloaded the page once')

    // The cuts, the outage and the restart fail connections on purpose: the
    // browser reports those; anything else (a swap, a script) is a defect.
    const connection = /^Failed to load resource: (net::ERR_INCOMPLETE_CHUNKED_ENCODING|net::ERR_CONNECTION_REFUSED|the server responded with a status of 503|the server responded with a status of 404 \(Not Found\)$)|^htmx: htmx:sse:error: (network error|SSE reconnect failed with status 503)|^\[object Event\]$/
    t.same(errors.filter(e => !connection.test(e)), [], 'no console error but the failed connections')
    const htmxErrors = await page.evaluate(() => (window as unknown as { htmxErrors: string[] }).htmxErrors)
    t.same(htmxErrors.filter(e => e !== 'htmx:sseError' && e !== 'htmx:sse:error' && e !== 'htmx:error'), [], 'no htmx error event but the connection ones')
    t.ok(htmxErrors.every(e => e !== 'htmx:error') || htmx === 2, 'htmx 4 raised only sse errors')
    await page.screenshot({ path: `/tmp/browser-live-htmx${htmx}.png` })
  })
}
