/**
 * The dashboard in Chromium, for one htmx major: live metrics, notifications
 * across pages with the inline 422, a job to 100% (and resumed after a
 * reload), escaped chat, the agent with tool cards and an error, one stream
 * per page, and no console errors or htmx warnings. test/browser-dashboard*.test.ts
 * run it under htmx 2 and htmx 4.
 */
import t, { type Test } from 'tap'
import type { Page } from 'playwright-core'
import { launch, startDashboard, type LaunchedBrowser, type RunningApp } from './browser.js'

/** The plugin's one stream route: every live page (and an htmx 2 agent run) connects there. */
export const STREAM_PATH = '/_sse/stream'

/** Requests a page made to the live stream route, and its console errors and warnings. */
export interface Watched {
  page: Page
  streams: () => number
  /** Every request the page made: method, path, and the response's content-type. */
  requests: Array<{ method: string, path: string, type: Promise<string> }>
  problems: string[]
}

export async function watch (browser: LaunchedBrowser, server: RunningApp): Promise<Watched> {
  const page = await browser.newPage()
  const problems: string[] = []
  let streams = 0
  const requests: Watched['requests'] = []
  page.on('request', r => {
    const path = new URL(r.url()).pathname
    if (path === STREAM_PATH) streams++
    requests.push({ method: r.method(), path, type: r.response().then(res => res?.headers()['content-type'] ?? '', () => '') })
  })
  page.on('console', m => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`) })
  page.on('pageerror', e => problems.push(`pageerror: ${e.message}`))
  void server
  return { page, streams: () => streams, requests, problems }
}

/** The htmx version the page runs (htmx.version). */
export async function pageHtmx (page: Page): Promise<string> {
  return await page.evaluate(() => (window as unknown as { htmx: { version: string } }).htmx.version)
}

/** Connection elements still in the page, of either dialect. */
export async function connectElements (page: Page): Promise<number> {
  return await page.locator('[sse-connect], [hx-sse\\:connect]').count()
}

export function dashboardSuite (htmx: 2 | 4): void {
  let browser: LaunchedBrowser
  let server: RunningApp

  t.before(async () => {
    server = await startDashboard({
      htmx,
      jobs: { tickMs: 50, stages: [{ name: 'Prepare', durationMs: 400 }, { name: 'Work', durationMs: 1200 }, { name: 'Finish', durationMs: 400 }] }
    })
    browser = await launch()
  })
  t.teardown(async () => {
    await browser?.close()
    await server?.close()
  })

  const cpuValue = async (page: Page): Promise<string> => await page.locator('#metric-cpu .value').innerText()
  const clean = (t: Test, w: Watched): void => {
    t.same(w.problems, [], 'no console errors, no htmx warnings')
  }

  t.test(`htmx ${htmx}: metrics change within 3 s, over exactly one stream`, async t => {
    const w = await watch(browser, server)
    const { page } = w
    t.teardown(() => page.close())
    await page.goto(server.url + '/')
    t.match(await pageHtmx(page), new RegExp(`^${htmx}\\.`), `htmx.version is ${htmx}.x`)
    await page.waitForFunction(() => document.querySelector('#metric-cpu .value')?.textContent !== '—', undefined, { timeout: 3000 })
    const first = await cpuValue(page)
    await page.waitForFunction((v) => document.querySelector('#metric-cpu .value')?.textContent !== v, first, { timeout: 3000 })
    t.not(await cpuValue(page), first, 'the CPU value changed')
    t.ok(await page.locator('#metric-cpu polyline').count() === 1, 'sparkline drawn')
    t.ok(await page.locator('#metric-cores li').count() >= 2, 'core bars')
    await page.waitForSelector('#hub-stats-body .num')
    await page.waitForTimeout(500)
    t.equal(w.streams(), 1, 'the page requested its stream once')
    t.equal(server.app.sseHub.stats().connections, 1, 'the server sees one hub connection')
    t.equal(await connectElements(page), 1, 'one connection element')
    clean(t, w)
  })

  t.test(`htmx ${htmx}: a notification posted in one page appears in a second page; invalid input shows inline`, async t => {
    const a = await watch(browser, server)
    const b = await watch(browser, server)
    t.teardown(async () => { await a.page.close(); await b.page.close() })
    await a.page.goto(server.url + '/')
    await b.page.goto(server.url + '/')
    await b.page.waitForFunction(() => document.querySelector('#metric-cpu .value')?.textContent !== '—')
    await a.page.selectOption('#notify-form select[name=level]', 'warning')
    await a.page.fill('#notify-form input[name=text]', 'Deploy paused <by ops>')
    await a.page.click('#notify-form button')
    await b.page.waitForSelector('#notifications .note-warning >> text=Deploy paused <by ops>', { timeout: 5000 })
    t.equal(await b.page.locator('#notifications li').count(), 1)
    await a.page.waitForSelector('#notify-form .form-ok')
    t.equal(await a.page.inputValue('#notify-form input[name=text]'), '', 'the form was cleared')
    await a.page.waitForSelector('#notifications >> text=Deploy paused <by ops>')

    await a.page.fill('#notify-form input[name=text]', 'x'.repeat(501))
    await a.page.click('#notify-form button')
    await a.page.waitForSelector('#notify-form .form-error', { timeout: 5000 })
    t.match(await a.page.locator('#notify-form .form-error').innerText(), /under 500 characters/, 'the 422 answer was swapped in')
    t.equal(await b.page.locator('#notifications li').count(), 1, 'nothing published')
    // a 422 is an answer the page shows, not an error: the browser logs the response status only
    t.same(a.problems.filter(p => !/status of 422/.test(p)), [], 'no console errors, no htmx warnings')
    clean(t, b)
  })

  t.test(`htmx ${htmx}: a job runs to 100% with its banner; a reload mid-job resumes; the dashboard lists it`, async t => {
    const w = await watch(browser, server)
    const { page } = w
    t.teardown(() => page.close())
    await page.goto(server.url + '/jobs/')
    await page.click('text=Start job')
    await page.waitForURL(/\/runs\/job\/[0-9a-f]{16}$/)
    const id = page.url().split('/').pop()!
    const bar = `#run-${id}-progress [role=progressbar]`
    const overall = page.locator(bar)
    await page.waitForFunction((sel) => Number(document.querySelector(sel)?.getAttribute('aria-valuenow')) >= 15, bar, { timeout: 5000 })
    await page.reload()
    const after = Number(await overall.getAttribute('aria-valuenow'))
    t.ok(after >= 15, `the reloaded page shows the progress so far (${after}%)`)
    await page.waitForSelector(`#run-${id} .banner-success`, { timeout: 8000 })
    t.equal(await overall.getAttribute('aria-valuenow'), '100')
    t.equal(await page.locator(`#run-${id}-status`).innerText(), 'done')
    t.equal(await page.locator(`#run-${id}`).getAttribute('data-status'), 'done')
    t.equal(await page.locator(`#run-${id}-log li`).count(), 3, 'a log line per stage')
    t.equal(await connectElements(page), 0, 'the last update replaced the run with its static form')
    await page.waitForTimeout(1500)
    t.equal(server.app.sseHub.stats().topics[`run:job:${id}`], undefined, 'and the stream is closed (no reconnect)')
    await page.reload()
    t.equal(await connectElements(page), 0, 'a finished job page is static')
    t.equal(await page.locator(`#run-${id} .banner-success`).count(), 1)
    clean(t, w)

    // The dashboard's panel starts one with htmx and shows it live in its list, to 100%.
    const d = await watch(browser, server)
    t.teardown(() => d.page.close())
    await d.page.goto(server.url + '/')
    await d.page.click('.jobs-card button')
    await d.page.waitForSelector('#runs-job > li.run-row-running', { timeout: 5000 })
    await d.page.waitForSelector('#runs-job > li:first-child.run-row-done', { timeout: 8000 })
    t.equal(await d.page.locator('#runs-job > li:first-child [role=progressbar]').getAttribute('aria-valuenow'), '100')
    clean(t, d)
  })

  t.test(`htmx ${htmx}: chat renders hostile input as text and no dialog fires`, async t => {
    const w = await watch(browser, server)
    const { page } = w
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
    clean(t, w)
  })

  t.test(`htmx ${htmx}: the agent run completes with its tool cards updated, every token in place`, async t => {
    const w = await watch(browser, server)
    const { page } = w
    t.teardown(() => page.close())
    await page.goto(server.url + '/')
    await page.waitForFunction(() => document.querySelector('#metric-cpu .value')?.textContent !== '—')
    await page.click('.agent-card button')
    await page.waitForSelector('#agent-run .agent-status.state-done', { timeout: 10_000 })
    const badges = await page.locator('#agent-run .tool .badge').allInnerTexts()
    t.same(badges, ['done', 'done'], 'both tool cards switched from pending to done')
    t.match(await page.locator('#agent-run .tool-result').first().innerText(), /cpu_avg_pct/)
    const text = await page.evaluate(() => Array.from(document.querySelectorAll('#agent-run .chunk'), c => c.textContent).join(''))
    t.match(text, /so there is headroom\. The runbook says to scale out only when the 5-minute load stays above the core count\. It does not, so no action is needed right now; I will keep watching the dashboard\.$/, 'every word and space arrived, in order')
    t.match(text, /^Let me look at the live metrics and the runbook before answering “Is the server healthy\?”\. CPU averaged/)
    await page.waitForTimeout(300)
    t.equal(server.app.sseHub.stats().connections, 1, 'the run stream closed on done; only the page stream is left')
    const posts = w.requests.filter(r => r.method === 'POST' && r.path === '/agent/runs')
    t.equal(posts.length, 1, 'one POST')
    if (htmx === 4) {
      t.match(await posts[0]!.type, /^text\/event-stream/, 'htmx 4: the POST answered with the run stream itself')
      t.equal(w.streams(), 1, 'and no separate connect: the page\'s own stream only')
    } else {
      t.match(await posts[0]!.type, /^text\/html/, 'htmx 2: the POST answered with the run\'s live connect element')
      t.equal(w.streams(), 2, 'which opened the run stream once, beside the page\'s')
    }

    const runPage = await page.locator('#agent-run .run-link').getAttribute('href')
    t.match(runPage, /^\/agent\/runs\/r[0-9a-f]{16}$/)
    await page.goto(server.url + runPage!)
    t.equal(await page.locator('#agent-run .tool .badge-ok').count(), 2, 'the run page renders the finished run')
    t.equal(await page.locator('#agent-run .agent-status.state-done').count(), 1)
    t.equal(await connectElements(page), 0, 'statically')

    await page.goto(server.url + '/')
    await page.fill('.agent-card input[name=prompt]', 'make it fail')
    await page.click('.agent-card button')
    await page.waitForSelector('#agent-run .agent-error[role=alert]', { timeout: 10_000 })
    t.equal(await page.locator('#agent-run .tool .badge-error').count(), 1, 'the failed tool shows an error badge')
    clean(t, w)
  })
}
