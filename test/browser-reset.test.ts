/**
 * When history no longer reaches what a page last saw, the hub sends `reset`
 * and the page reloads its state, under both htmx majors: htmx 2 through the
 * resume script, htmx 4 through the connect element's reset trigger, which
 * fetches the plugin's refreshPath (204 + HX-Refresh). The page is away (the
 * server restarts) while more notifications are published than the history keeps.
 */
import t from 'tap'
import { MemoryTransport } from '../plugin/transports/memory.js'
import { publishNotification } from '../routes/notifications.js'
import { browserForFile } from './helpers/browser.js'

const fixture = browserForFile(t)

for (const htmx of [2, 4] as const) {
  t.test(`htmx ${htmx}: a reset reloads the page once, with the newest state`, async t => {
    const transport = new MemoryTransport({ history: 5 })
    const first = await fixture.start({ transport, htmx })
    const page = await fixture.browser.newPage()
    t.teardown(() => page.close())
    let loads = 0
    page.on('load', () => { loads++ })
    await page.goto(first.url + '/')
    await page.waitForFunction(() => document.querySelector('#metric-cpu .value')?.textContent !== '—')
    await publishNotification(first.app.sseHub, { level: 'info', text: `seen ${htmx}` })
    await page.waitForSelector(`#notifications >> text=seen ${htmx}`)
    await first.close()

    // Published before the page can reconnect: 12 notifications, history keeps 5.
    const second = await fixture.start({
      transport,
      htmx,
      port: first.port,
      beforeListen: async d => {
        for (let i = 1; i <= 12; i++) await publishNotification(d.app.sseHub, { level: 'warning', text: `missed ${htmx}.${i}` })
      }
    })
    await page.waitForSelector(`#notifications >> text=missed ${htmx}.12`, { timeout: 15_000 })
    await page.waitForTimeout(1500)
    t.equal(loads, 2, 'reloaded exactly once')
    t.ok(second.app.sseHub.stats().resets >= 1, 'the hub sent a reset')
    const shown = await page.locator('#notifications .note .text').allInnerTexts()
    t.same(new Set(shown).size, shown.length, 'no notification twice')
    t.equal(shown[0], `missed ${htmx}.12`, 'newest first')
    t.equal(second.app.sseHub.stats().connections, 1, 'connected again after the reload')
    await second.close()
  })
}

t.test('refreshPath answers 204 with HX-Refresh', async t => {
  const server = await fixture.start({ htmx: 4 })
  const res = await fetch(server.url + server.app.htmxSse.refreshPath)
  t.equal(res.status, 204)
  t.equal(res.headers.get('hx-refresh'), 'true')
  t.equal(res.headers.get('cache-control'), 'no-store')
})
