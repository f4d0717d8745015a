/**
 * Starts the dashboard, opens it in Chromium, waits for live data (metrics,
 * a job, an agent run, notifications and chat), and writes docs/dashboard.png.
 *
 *   npx tsx scripts/screenshot.ts [out.png] [--dark]
 *   HTMX=4 npm run screenshot docs/dashboard-htmx4.png   (the dashboard on htmx 4)
 */
import { mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import { chromium } from 'playwright-core'
import { buildApp } from '../example-app/app.js'
import { publishMessage } from '../routes/chat.js'
import { demoJob, JOB_KIND } from '../routes/jobs.js'
import { publishNotification } from '../routes/notifications.js'
import { CHROMIUM, CHROMIUM_ARGS } from '../test/helpers/browser.js'

const args = process.argv.slice(2)
const out = args.find(a => !a.startsWith('--')) ?? 'docs/dashboard.png'
const dark = args.includes('--dark')

const htmx = process.env.HTMX === '4' ? 4 : 2
const { app } = await buildApp({ echoLogs: false, metricsIntervalMs: 500, htmx })
await app.listen({ host: '127.0.0.1', port: 0 })
const address = app.server.address()
if (address === null || typeof address === 'string') throw new Error('no address')
const url = `http://127.0.0.1:${address.port}/`

const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1, colorScheme: dark ? 'dark' : 'light' })
  // What a reader of the picture cannot see: the page's console errors and warnings.
  page.on('console', m => { if (m.type() === 'error' || m.type() === 'warning') console.error(`console ${m.type()}: ${m.text()}`) })
  page.on('pageerror', e => console.error(`pageerror: ${e.message}`))
  await page.goto(url)
  // Some activity, the way users would make it (all of it arrives over SSE).
  await publishNotification(app.sseHub, { level: 'success', text: 'Deploy 2024.11.3 finished on all 6 nodes' })
  await publishNotification(app.sseHub, { level: 'warning', text: 'Disk usage on /var crossed 80% on db-2' })
  await publishNotification(app.sseHub, { level: 'info', text: 'Nightly backup started' })
  await publishMessage(app.sseHub, 'lobby', { nick: 'ada', text: 'Deploy looks good from here.' })
  await publishMessage(app.sseHub, 'lobby', { nick: 'grace', text: 'Watching the CPU card while the job runs.' })
  await publishMessage(app.sseHub, 'lobby', { nick: 'linus', text: '<b>tags</b> stay text: <img src=x onerror=alert(1)>' })
  await app.runs.start(JOB_KIND, demoJob(), { title: 'Nightly export' })
  await new Promise(resolve => setTimeout(resolve, 400))
  await app.runs.start(JOB_KIND, demoJob(), { title: 'Rebuild search index' })
  // An agent run is private to the page that asks: ask in the page.
  await page.click('.agent-card button')
  // Live data: metric values filled in and sparklines with a few points.
  await page.waitForFunction(() => document.querySelectorAll('.sparkline polyline').length >= 5, undefined, { timeout: 15_000 })
  await page.waitForSelector('#agent-run .badge-ok, #agent-run .badge-done', { timeout: 15_000 })
  await page.waitForTimeout(2_500)
  await mkdir(dirname(out), { recursive: true })
  await page.screenshot({ path: out, fullPage: true })
  const version = await page.evaluate(() => (window as unknown as { htmx: { version: string } }).htmx.version)
  console.log(`wrote ${out} (htmx ${version})`)
} finally {
  await browser.close()
  await app.close()
}
