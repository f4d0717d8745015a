/**
 * htmx 4 disconnects a hidden tab (`pauseOnBackground`) and reconnects when
 * it is visible again, with a Last-Event-ID header: every notification
 * published meanwhile must show exactly once. The tab is made hidden the way
 * the browser does it: document.hidden and a `visibilitychange` event.
 */
import t from 'tap'
import { publishNotification } from '../routes/notifications.js'
import { launch, startDashboard } from './helpers/browser.js'
import { STREAM_PATH, watch } from './helpers/dashboard-suite.js'
import { waitUntil } from './helpers/sse-client.js'

t.test('htmx 4: a hidden tab shows every notification published while hidden exactly once', async t => {
  const server = await startDashboard({ htmx: 4 })
  const browser = await launch()
  t.teardown(async () => { await browser.close(); await server.close() })
  const w = await watch(browser, server)
  const { page } = w
  const lastEventIds: Array<string | undefined> = []
  page.on('request', r => { if (new URL(r.url()).pathname === STREAM_PATH) lastEventIds.push(r.headers()['last-event-id']) })
  await page.goto(server.url + '/')
  await page.waitForFunction(() => document.querySelector('#metric-cpu .value')?.textContent !== '—')
  await publishNotification(server.app.sseHub, { level: 'info', text: 'before 1' })
  await page.waitForSelector('#notifications >> text=before 1')

  const setHidden = async (hidden: boolean): Promise<void> => {
    await page.evaluate((h) => {
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => h })
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => h ? 'hidden' : 'visible' })
      document.dispatchEvent(new Event('visibilitychange'))
    }, hidden)
  }
  await setHidden(true)
  await waitUntil(() => server.app.sseHub.stats().connections === 0, 5000, 'the hidden tab disconnected')
  t.pass('htmx 4 closed the stream of the hidden tab')
  const texts = Array.from({ length: 5 }, (_, i) => `while hidden ${i + 1}`)
  for (const text of texts) await publishNotification(server.app.sseHub, { level: 'warning', text })
  await page.waitForTimeout(300)
  t.equal(await page.locator('#notifications >> text=while hidden').count(), 0, 'nothing arrives while hidden')

  await setHidden(false)
  await page.waitForSelector('#notifications >> text=while hidden 5', { timeout: 10_000 })
  await publishNotification(server.app.sseHub, { level: 'success', text: 'after 1' })
  await page.waitForSelector('#notifications >> text=after 1')
  await page.waitForTimeout(300)
  const shown = await page.locator('#notifications .note .text').allInnerTexts()
  t.same(shown, ['after 1', ...[...texts].reverse(), 'before 1'], 'each exactly once, newest first')
  t.equal(server.app.sseHub.stats().connections, 1, 'one stream again')
  t.equal(w.streams(), 2, 'the first connect and one reconnect')
  t.equal(lastEventIds[0], undefined, 'the first connect sends no Last-Event-ID (the URL cursor serves it)')
  t.match(lastEventIds[1], /^\d+$/, 'the reconnect sends Last-Event-ID as a header')
  t.same(w.problems, [], 'no console errors, no htmx warnings')
})
