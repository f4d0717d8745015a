/**
 * Each route module's own page in Chromium, under htmx 2 and htmx 4: it loads
 * its major, shows live data over one connection element, and logs no console
 * errors or htmx warnings. The agent's standalone page runs a prompt as a hub
 * run (htmx 2: the POST answers with the run's live element; htmx 4: with the
 * run's stream).
 */
import t from 'tap'
import { publishMessage } from '../routes/chat.js'
import { publishNotification } from '../routes/notifications.js'
import { demoJob, JOB_KIND } from '../routes/jobs.js'
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
      ['/hub/', async () => {}, async page => await page.waitForSelector('#hub-stats-body .num')],
      ['/jobs/', async () => { await server.app.runs.start(JOB_KIND, demoJob(), { title: `listed ${htmx}` }) }, async page => await page.waitForSelector(`#runs-job >> text=listed ${htmx}`)]
    ]
    for (const [path, act, check] of pages) {
      const w = await watch(browser, server)
      await w.page.goto(server.url + path)
      t.match(await pageHtmx(w.page), new RegExp(`^${htmx}\\.`), `${path}: htmx ${htmx}`)
      await w.page.waitForTimeout(200)
      await act()
      await check(w.page)
      t.equal(await connectElements(w.page), 1, `${path}: one connection element`)
      t.equal(w.streams(), 1, `${path}: one stream request`)
      t.same(w.problems, [], `${path}: no console errors, no htmx warnings`)
      await w.page.close()
    }

    const w = await watch(browser, server)
    await w.page.goto(server.url + '/agent/')
    await w.page.fill('input[name=prompt]', 'status <please>')
    await w.page.click('button')
    await w.page.waitForSelector('#agent-run .agent-status.state-done', { timeout: 10_000 })
    t.match(await w.page.locator('#agent-run .prompt q').innerText(), 'status <please>', 'the prompt, as text')
    t.same(await w.page.locator('#agent-run .tool .badge').allInnerTexts(), ['done', 'done'])
    const posts = w.requests.filter(r => r.method === 'POST' && r.path === '/agent/runs')
    t.equal(posts.length, 1, 'one POST for the run')
    t.match(await posts[0]!.type, htmx === 4 ? /^text\/event-stream/ : /^text\/html/)
    t.equal(w.streams(), htmx === 4 ? 0 : 1, htmx === 4 ? 'answered with the run stream itself' : 'whose live element opened the run stream once')
    t.same(w.problems, [], '/agent/: no console errors, no htmx warnings')
    await w.page.close()
  })
}
