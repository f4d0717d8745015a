/**
 * The dashboard in Chromium: live metrics, notifications across pages, jobs
 * (to 100%, and resumed after a reload), escaped chat, the agent demo, and
 * exactly one EventSource on the main page.
 */
import t from 'tap'
import { COUNT_EVENT_SOURCES, launch, openEventSources, startDashboard, type LaunchedBrowser, type RunningApp } from './helpers/browser.js'

let browser: LaunchedBrowser
let server: RunningApp

t.before(async () => {
  server = await startDashboard({
    jobs: { tickMs: 50, stages: [{ name: 'Prepare', durationMs: 400 }, { name: 'Work', durationMs: 1200 }, { name: 'Finish', durationMs: 400 }] }
  })
  browser = await launch()
  await browser.context.addInitScript(COUNT_EVENT_SOURCES)
})
t.teardown(async () => {
  await browser?.close()
  await server?.close()
})

const cpuValue = async (page: import('playwright-core').Page): Promise<string> =>
  await page.locator('#metric-cpu .value').innerText()

t.test('metrics change within 3 s, over exactly one EventSource', async t => {
  const page = await browser.newPage()
  t.teardown(() => page.close())
  await page.goto(server.url + '/')
  await page.waitForFunction(() => document.querySelector('#metric-cpu .value')?.textContent !== '—', undefined, { timeout: 3000 })
  const first = await cpuValue(page)
  await page.waitForFunction((v) => document.querySelector('#metric-cpu .value')?.textContent !== v, first, { timeout: 3000 })
  t.not(await cpuValue(page), first, 'the CPU value changed')
  t.ok(await page.locator('#metric-cpu polyline').count() === 1, 'sparkline drawn')
  t.ok(await page.locator('#metric-cores li').count() >= 2, 'core bars')
  await page.waitForSelector('#hub-stats-body .num')
  await page.waitForTimeout(500)
  t.equal(await openEventSources(page), 1, 'one open EventSource')
  t.equal(await page.evaluate(() => (window as unknown as { __eventSources: unknown[] }).__eventSources.length), 1, 'and only one was ever created')
  t.equal(server.app.sseHub.stats().connections, 1, 'the server sees one hub connection')
})

t.test('a notification posted in one page appears in a second page; invalid input shows inline', async t => {
  const a = await browser.newPage()
  const b = await browser.newPage()
  t.teardown(async () => { await a.close(); await b.close() })
  await a.goto(server.url + '/')
  await b.goto(server.url + '/')
  await b.waitForFunction(() => document.querySelector('#metric-cpu .value')?.textContent !== '—')
  await a.selectOption('#notify-form select[name=level]', 'warning')
  await a.fill('#notify-form input[name=text]', 'Deploy paused <by ops>')
  await a.click('#notify-form button')
  await b.waitForSelector('#notifications .note-warning >> text=Deploy paused <by ops>', { timeout: 5000 })
  t.equal(await b.locator('#notifications li').count(), 1)
  await a.waitForSelector('#notify-form .form-ok')
  t.equal(await a.inputValue('#notify-form input[name=text]'), '', 'the form was cleared')
  await a.waitForSelector('#notifications >> text=Deploy paused <by ops>')

  await a.fill('#notify-form input[name=text]', 'x'.repeat(501))
  await a.click('#notify-form button')
  await a.waitForSelector('#notify-form .form-error', { timeout: 5000 })
  t.match(await a.locator('#notify-form .form-error').innerText(), /under 500 characters/, 'the 422 answer was swapped in')
  t.equal(await b.locator('#notifications li').count(), 1, 'nothing published')
})

t.test('a job runs to 100% with its banner; a reload mid-job resumes', async t => {
  const page = await browser.newPage()
  t.teardown(() => page.close())
  await page.goto(server.url + '/jobs/')
  await page.click('text=Start job')
  await page.waitForURL(/\/jobs\/[0-9a-f]{8}$/)
  const id = page.url().split('/').pop()!
  const overall = page.locator(`#job-${id}-overall [role=progressbar]`)
  await page.waitForFunction((sel) => Number(document.querySelector(sel)?.getAttribute('aria-valuenow')) >= 15, `#job-${id}-overall [role=progressbar]`, { timeout: 5000 })
  await page.reload()
  const after = Number(await overall.getAttribute('aria-valuenow'))
  t.ok(after >= 15, `the reloaded page shows the progress so far (${after}%)`)
  await page.waitForSelector(`#job-${id}-banner .banner-success`, { timeout: 8000 })
  t.equal(await overall.getAttribute('aria-valuenow'), '100')
  t.equal(await page.locator(`#run-${id}-status`).innerText(), 'done')
  t.equal(await openEventSources(page), 0, 'the stream was closed (sse-close)')
  await page.reload()
  t.equal(await page.locator('[sse-connect]').count(), 0, 'a finished job page is static')
  t.equal(await page.locator(`#job-${id}-banner .banner-success`).count(), 1)
})

t.test('chat renders hostile input as text and no dialog fires', async t => {
  const page = await browser.newPage()
  t.teardown(() => page.close())
  let dialogs = 0
  page.on('dialog', d => { dialogs++; void d.dismiss() })
  await page.goto(server.url + '/')
  await page.waitForFunction(() => document.querySelector('#metric-cpu .value')?.textContent !== '—')
  const payload = '<img src=x onerror=alert(1)>'
  await page.fill('#chat-form input[name=nick]', '<b>mallory</b>')
  await page.fill('#chat-form input[name=text]', payload)
  await page.click('#chat-form button')
  const message = page.locator('#chat-messages .msg .text').last()
  await message.waitFor({ timeout: 5000 })
  t.equal(await message.innerText(), payload, 'shown as text')
  t.equal(await page.locator('#chat-messages img').count(), 0, 'no element was created')
  t.equal(await page.locator('#chat-messages .nick').last().innerText(), '<b>mallory</b>')
  await page.reload()
  await page.waitForTimeout(300)
  t.equal(await page.locator('#chat-messages img').count(), 0, 'pre-rendered history is escaped too')
  t.equal(dialogs, 0, 'no dialog')
  t.equal(await page.inputValue('#chat-form input[name=nick]'), '', 'fresh page: empty nick')
})

t.test('the agent demo completes with its tool cards updated', async t => {
  const page = await browser.newPage()
  t.teardown(() => page.close())
  await page.goto(server.url + '/')
  await page.waitForFunction(() => document.querySelector('#metric-cpu .value')?.textContent !== '—')
  await page.click('.agent-card button')
  await page.waitForSelector('#agent-run .agent-status.state-done', { timeout: 10_000 })
  const badges = await page.locator('#agent-run .tool .badge').allInnerTexts()
  t.same(badges, ['done', 'done'], 'both tool cards switched from pending to done')
  t.match(await page.locator('#agent-run .tool-result').first().innerText(), /cpu_avg_pct/)
  t.match(await page.locator('#agent-run .agent-output').innerText(), /no action is needed/)
  await page.reload()
  t.equal(await page.locator('#agent-run .tool .badge-ok').count(), 2, 'a reload renders the finished run')
  t.equal(await page.locator('#agent-run .agent-status.state-done').count(), 1)

  await page.fill('.agent-card input[name=prompt]', 'make it fail')
  await page.click('.agent-card button')
  await page.waitForSelector('#agent-run .agent-error[role=alert]', { timeout: 10_000 })
  t.equal(await page.locator('#agent-run .tool .badge-error').count(), 1, 'the failed tool shows an error badge')
})
