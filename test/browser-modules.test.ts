/**
 * Each route module's own page in Chromium, under htmx 2 and htmx 4: it loads
 * its major, shows live data over one connection element, and logs no console
 * errors or htmx warnings. The agent's standalone page runs a prompt over a
 * stream of its own (htmx 2: a connect element it fetches; htmx 4: the form's
 * GET answers with the stream).
 */
import t from 'tap'
import { publishMessage, publishNotification } from '../routes/index.js'
import { launch, startDashboard, type LaunchedBrowser } from './helpers/browser.js'
import { connectElements, pageHtmx, watch } from './helpers/dashboard-suite.js'

let browser: LaunchedBrowser
t.before(async () => { browser = await launch() })
t.teardown(async () => { await browser?.close() })

for (const htmx of [2, 4] as const) {
  t.test(`htmx ${htmx}: every module page is live`, async t => {
    const server = await startDashboard({ htmx })
    t.teardown(async () => { await server.close() })
    const pages: Array<[string, () => Promise<void>, (page: import('playwright-core').Page) => Promise<unknown>]> = [
      ['/metrics/', async () => {}, async page => await page.waitForFunction(() => document.querySelector('#metric-cpu .value')?.textContent !== '—')],
      ['/notifications', async () => { await publishNotification(server.app.sseHub, { level: 'info', text: `module ${htmx}` }) }, async page => await page.waitForSelector(`#notifications >> text=module ${htmx}`)],
      ['/chat/lobby', async () => { await publishMessage(server.app.sseHub, 'lobby', { nick: 'ann', text: `hello ${htmx}` }) }, async page => await page.waitForSelector(`#chat-messages >> text=hello ${htmx}`)],
      ['/logs/', async () => { server.app.log.warn(`a warning ${htmx}`) }, async page => await page.waitForSelector(`.log-tail >> text=a warning ${htmx}`)],
      ['/hub/', async () => {}, async page => await page.waitForSelector('#hub-stats-body .num')]
    ]
    for (const [path, act, check] of pages) {
      const w = await watch(browser, server)
      await w.page.goto(server.url + path)
      t.match(await pageHtmx(w.page), new RegExp(`^${htmx}\\.`), `${path}: htmx ${htmx}`)
      await w.page.waitForTimeout(200)
      await act()
      await check(w.page)
      t.equal(await connectElements(w.page), 1, `${path}: one connection element`)
      t.same(w.problems, [], `${path}: no console errors, no htmx warnings`)
      await w.page.close()
    }

    const w = await watch(browser, server)
    await w.page.goto(server.url + '/agent/')
    await w.page.fill('input[name=prompt]', 'status <please>')
    await w.page.click('button')
    await w.page.waitForSelector('#agent-session-run .agent-status.state-done', { timeout: 10_000 })
    t.match(await w.page.locator('#agent-session-run .prompt q').innerText(), 'status <please>', 'the prompt, as text')
    t.equal(await w.page.locator('#agent-session-run .tool .badge-ok').count(), 2)
    const streams = w.requests.filter(r => r.path === '/agent/stream')
    t.equal(streams.length, 1, 'one stream for the run')
    t.match(await streams[0]!.type, /^text\/event-stream/)
    t.same(w.problems, [], '/agent/: no console errors, no htmx warnings')
    await w.page.close()
  })
}
