/**
 * Chromium (Debian package) driven by playwright-core, with a fresh profile
 * per launch, and small helpers to start the dashboard app for a test.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { buildApp, type BuildAppOptions, type DashboardApp } from '../../example-app/app.js'
import { fakeSampler } from '../../routes/metrics.js'

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'
]

export interface LaunchedBrowser {
  context: BrowserContext
  newPage: () => Promise<Page>
  close: () => Promise<void>
}

/** A persistent context on a fresh temporary user-data-dir (removed on close). */
export async function launch (): Promise<LaunchedBrowser> {
  const dir = await mkdtemp(join(tmpdir(), 'htmx-sse-chromium-'))
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1440, height: 1000 }
  })
  context.setDefaultTimeout(10_000)
  return {
    context,
    newPage: async () => await context.newPage(),
    close: async () => {
      await context.close().catch(() => {})
      await rm(dir, { recursive: true, force: true })
    }
  }
}

export async function launchBrowser (): Promise<Browser> {
  return await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS })
}

export interface RunningApp extends DashboardApp {
  url: string
  port: number
  close: () => Promise<void>
}

/** Signs the test dashboards' live pages: one value for every app of a test, so a page open across a restart stays valid. */
export const TEST_SECRET = 'dashboard-test-secret-0123456789'

/** The dashboard with test-friendly defaults: fake sampler, fast intervals, quiet logs, a fast agent, a fixed secret. */
export async function startDashboard (options: BuildAppOptions & { port?: number, beforeListen?: (d: DashboardApp) => Promise<void> } = {}): Promise<RunningApp> {
  const dashboard = await buildApp({
    sampler: fakeSampler(),
    metricsIntervalMs: 200,
    metricsLingerMs: 0,
    statsIntervalMs: 500,
    echoLogs: false,
    retryMs: 300,
    agent: { tokenMs: 5, toolMs: 150, thinkMs: 50 },
    jobs: { tickMs: 50, stages: [{ name: 'Prepare', durationMs: 300 }, { name: 'Work', durationMs: 600 }, { name: 'Finish', durationMs: 300 }] },
    secret: TEST_SECRET,
    ...options
  })
  await dashboard.app.ready()
  await options.beforeListen?.(dashboard)
  await dashboard.app.listen({ host: '127.0.0.1', port: options.port ?? 0 })
  const address = dashboard.app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no address')
  return {
    ...dashboard,
    port: address.port,
    url: `http://127.0.0.1:${address.port}`,
    close: async () => { await dashboard.app.close() }
  }
}

/**
 * An init script that counts EventSource objects the page creates and keeps
 * them in `window.__eventSources` (for "one connection" assertions).
 */
export const COUNT_EVENT_SOURCES = `(() => {
  const Native = window.EventSource;
  window.__eventSources = [];
  window.EventSource = function (url, init) {
    const source = new Native(url, init);
    window.__eventSources.push(source);
    return source;
  };
  window.EventSource.prototype = Native.prototype;
  window.EventSource.CONNECTING = 0; window.EventSource.OPEN = 1; window.EventSource.CLOSED = 2;
})();`

/** Open EventSources of a page (created by the init script above). */
export async function openEventSources (page: Page): Promise<number> {
  return await page.evaluate(() => (window as unknown as { __eventSources: EventSource[] }).__eventSources.filter(s => s.readyState !== 2).length)
}

/**
 * One browser for a test file, launched before its first test, plus the
 * servers its tests start (restart tests start more than one): all closed at
 * the end, browser first so no page reconnects to a closing server.
 */
export function browserForFile (t: Test): { readonly browser: LaunchedBrowser, start: (options?: Parameters<typeof startDashboard>[0]) => Promise<RunningApp> } {
  let browser: LaunchedBrowser | undefined
  const servers: RunningApp[] = []
  t.before(async () => { browser = await launch() })
  t.teardown(async () => {
    await browser?.close()
    for (const s of servers) await s.close().catch(() => {})
  })
  return {
    get browser () {
      if (browser === undefined) throw new Error('browserForFile: the browser is launched in t.before')
      return browser
    },
    start: async options => {
      const server = await startDashboard(options)
      servers.push(server)
      return server
    }
  }
}
