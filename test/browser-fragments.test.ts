/**
 * The fragment helpers in Chromium, under htmx 2.0.x (htmx-ext-sse) and htmx
 * 4.0.x (hx-sse): the same published bytes, applied to a page that already
 * rendered some items itself. Checked in the DOM: one element per id after
 * replays, in-place replacement, limits, rows in a tbody, silent removes of
 * missing ids, and no console error/warning and no htmx error event at all.
 */
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import type { Page } from 'playwright-core'
import type { LivePage } from '../plugin/live.js'
import { Append, Layout, Oob, Prepend, Remove, Replace, Update, type HtmxVersion } from './helpers/views.js'
import { browserForFile } from './helpers/browser.js'
import { startApp } from './helpers/app.js'
import { waitUntil } from './helpers/sse-client.js'

const VERSIONS: HtmxVersion[] = [2, 4]
const chromium = browserForFile(t)

let app: FastifyInstance
let url: string

/** The page a server renders from its own database: two orders, one row, a few widgets. */
function page (htmx: HtmxVersion, live: LivePage): JSX.Element {
  return Layout({
    live,
    title: `fragments htmx ${htmx}`,
    config: false,
    head: '<link rel="icon" href="data:,">',
    children: [
      '<ul id="orders"><li id="order-1">db order 1</li><li id="order-2">db order 2</li></ul>',
      '<ol id="feed"></ol>',
      '<table><tbody id="rows"><tr id="row-1"><td>db row 1</td></tr></tbody></table>',
      '<div id="cpu" class="old">cpu 0</div>',
      '<div id="stat" data-keep="yes"><b>old stat</b></div>',
      '<div id="gone">to be removed</div>',
      '<p id="marker">0</p>',
      String(live.element)
    ].join('')
  })
}

t.before(async () => {
  ({ app, url } = await startApp({ heartbeatMs: false }, async app => {
    // One app, both majors: each page picks its own (reply.live's per-page option).
    app.get('/page/:v', async (request, reply) => {
      const v = Number((request.params as { v: string }).v) as HtmxVersion
      const live = await reply.live([`t${v}`], { htmx: v })
      return await reply.type('text/html; charset=utf-8').send(await page(v, live))
    })
  }))
})
t.teardown(async () => { await app?.close() })

/** Console errors/warnings and every htmx event whose name mentions an error, of either major. */
const RECORD_HTMX_ERRORS = `(() => {
  window.__htmxErrors = [];
  const dispatch = EventTarget.prototype.dispatchEvent;
  EventTarget.prototype.dispatchEvent = function (event) {
    if (/^htmx:/.test(event.type) && /error/i.test(event.type)) window.__htmxErrors.push(event.type);
    return dispatch.call(this, event);
  };
})();`

interface Watched { page: Page, problems: string[], htmxErrors: () => Promise<string[]> }

async function open (htmx: HtmxVersion): Promise<Watched> {
  const page = await chromium.browser.newPage()
  await page.addInitScript(RECORD_HTMX_ERRORS)
  const problems: string[] = []
  page.on('console', m => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`) })
  page.on('pageerror', e => problems.push(`pageerror: ${e.message}`))
  const subscribers = (): number => app.sseHub.stats().topics[`t${htmx}`] ?? 0
  const before = subscribers()
  await page.goto(`${url}/page/${htmx}`)
  await waitUntil(() => subscribers() > before, 5000, `htmx ${htmx} page connected`)
  return { page, problems, htmxErrors: async () => await page.evaluate(() => (window as unknown as { __htmxErrors: string[] }).__htmxErrors) }
}

let markers = 0
/** Publishes, then waits for a marker published last (events apply in order, so everything before it is applied) and for htmx to settle. */
async function publishAll (htmx: HtmxVersion, p: Page, events: JSX.Element[]): Promise<void> {
  for (const data of events) await app.sseHub.publish(`t${htmx}`, { data })
  const mark = String(++markers)
  await app.sseHub.publish(`t${htmx}`, { data: Replace({ id: 'marker', tag: 'p', children: mark }) })
  await p.waitForFunction((m) => document.getElementById('marker')?.textContent === m, mark, { timeout: 5000 })
  // htmx settles after a swap (htmx 2 keeps the old element's attributes on the new one until then).
  await p.waitForFunction(() => document.querySelector('.htmx-added, .htmx-settling, .htmx-swapping') === null, undefined, { timeout: 5000 })
}

const texts = async (p: Page, selector: string): Promise<string[]> => await p.locator(selector).allInnerTexts()
const ids = async (p: Page, selector: string): Promise<string[]> => await p.locator(selector).evaluateAll(els => els.map(e => e.id))

async function clean (t: Test, w: Watched): Promise<void> {
  t.same(w.problems, [], 'no console error or warning')
  t.same(await w.htmxErrors(), [], 'no htmx error event')
  const duplicates = await w.page.evaluate(() => {
    const seen = new Set<string>()
    return Array.from(document.querySelectorAll('[id]'), e => e.id).filter(id => seen.has(id) || !seen.add(id))
  })
  t.same(duplicates, [], 'every id is on one element only')
}

for (const htmx of VERSIONS) {
  t.test(`htmx ${htmx}: idempotent Prepend/Append with limits, Replace, Update, Remove, rows`, async t => {
    const w = await open(htmx)
    const { page: p } = w
    t.teardown(() => p.close())
    t.match(await p.evaluate(() => (window as unknown as { htmx: { version: string } }).htmx.version), new RegExp(`^${htmx}\\.`), `the page runs htmx ${htmx}`)

    const order3 = Prepend({ to: 'orders', id: 'order-3', tag: 'li', children: 'live order 3' })
    await publishAll(htmx, p, [order3, order3])
    t.same(await ids(p, '#orders > li'), ['order-3', 'order-1', 'order-2'], 'a new item goes on top; the same event twice leaves one')

    await publishAll(htmx, p, [Prepend({ to: 'orders', id: 'order-1', tag: 'li', class: 'fresh', children: 'live order 1' })])
    t.same(await ids(p, '#orders > li'), ['order-3', 'order-1', 'order-2'], 'an item the page rendered is not inserted again, and does not move')
    t.equal(await p.locator('#order-1').innerText(), 'live order 1', 'its content is the newest')
    t.equal(await p.locator('#order-1').getAttribute('class'), 'fresh', 'and so is its element')

    const limited = (n: number): JSX.Element => Prepend({ to: 'orders', id: `order-${n}`, tag: 'li', limit: 4, children: `live order ${n}` })
    await publishAll(htmx, p, [4, 5, 6, 7, 8].map(limited))
    t.same(await ids(p, '#orders > li'), ['order-8', 'order-7', 'order-6', 'order-5'], 'limit 4 keeps the 4 newest')
    await publishAll(htmx, p, [limited(8), limited(6)])
    t.same(await ids(p, '#orders > li'), ['order-8', 'order-7', 'order-6', 'order-5'], 'replaying items already in a full list drops nothing')

    const feed = (n: number, text = `entry ${n}`): JSX.Element => Append({ to: 'feed', id: `entry-${n}`, tag: 'li', limit: 2, children: text })
    await publishAll(htmx, p, [feed(1), feed(2), feed(3), feed(2, 'entry 2 again')])
    t.same(await texts(p, '#feed > li'), ['entry 2 again', 'entry 3'], 'Append adds at the end, limit drops from the start, a replay stays in place')

    const row = (n: number, limit?: number): JSX.Element => Prepend({ to: 'rows', id: `row-${n}`, tag: 'tr', limit, children: `<td>live row ${n}</td><td>#${n}</td>` })
    await publishAll(htmx, p, [row(2), row(2), row(1)])
    t.same(await ids(p, '#rows > tr'), ['row-2', 'row-1'], 'a row goes on top of the tbody, once')
    t.same(await texts(p, '#rows td'), ['live row 2', '#2', 'live row 1', '#1'], 'its cells are cells')
    await publishAll(htmx, p, [row(3, 2)])
    t.same(await ids(p, '#rows > tr'), ['row-3', 'row-2'], 'a row limit keeps 2')

    await publishAll(htmx, p, [Replace({ id: 'cpu', class: 'new', children: 'cpu 1' }), Replace({ id: 'cpu', class: 'new', children: 'cpu 2' })])
    t.equal(await p.locator('#cpu').count(), 1, 'Replace keeps one #cpu')
    t.equal(await p.locator('#cpu').innerText(), 'cpu 2', 'with the newest content')
    t.equal(await p.locator('#cpu').getAttribute('class'), 'new', 'the element is the new one (outerHTML)')

    await publishAll(htmx, p, [Update({ id: 'stat', children: '<i>new stat</i>' })])
    t.equal(await p.locator('#stat').innerHTML(), '<i>new stat</i>', 'Update replaces the content')
    t.equal(await p.locator('#stat').getAttribute('data-keep'), 'yes', 'and keeps the element (innerHTML)')

    await publishAll(htmx, p, [Remove({ id: 'gone' })])
    t.equal(await p.locator('#gone').count(), 0, 'Remove deletes the element')
    await publishAll(htmx, p, [Remove({ id: 'gone' }), Remove({ id: 'never-there' })])
    t.equal(await p.locator('#marker').count(), 1, 'removing missing ids harms nothing')

    const sinks = await p.locator('template[data-sse-sink]').count()
    t.ok(sinks <= 1, `at most one sink is left (${sinks})`)
    t.equal(await p.locator('body template[data-sse-sink]').count(), 0, 'never in the body')
    await clean(t, w)
    await p.screenshot({ path: `/tmp/fragments-htmx${htmx}.png`, fullPage: true })
  })
}

for (const htmx of VERSIONS) {
  t.test(`htmx ${htmx}: controls: what the helpers avoid is seen by these checks`, async t => {
    const w = await open(htmx)
    const { page: p } = w
    t.teardown(() => p.close())
    const naive = Oob({ id: 'orders', swap: 'afterbegin', children: '<li id="order-9">naive</li>' })
    await publishAll(htmx, p, [naive, naive])
    t.equal(await p.locator('#order-9').count(), 2, 'a plain afterbegin applied twice duplicates the item')
    t.same(await w.htmxErrors(), [], 'and reports nothing')
    if (htmx === 2) {
      await publishAll(htmx, p, ['<div hx-swap-oob="delete: #never-there"></div>'])
      t.ok((await w.htmxErrors()).includes('htmx:oobErrorNoTarget'), 'htmx 2: a delete of a missing id is an htmx:oobErrorNoTarget')
      t.match(w.problems, [/oobErrorNoTarget/], 'logged as a console error')
    } else {
      // The space after "afterbegin:" is what keeps htmx 4's greedy /^(\S+):(.+)/ from splitting inside ":not(:has(".
      await publishAll(htmx, p, ['<div hx-swap-oob="afterbegin:#orders:not(:has(> #order-10))"><li id="order-10">x</li></div>'])
      t.equal(await p.locator('#order-10').count(), 0, 'htmx 4: "style:#a:not(…)" without a space inserts nothing')
      t.ok((await w.htmxErrors()).includes('htmx:sse:error'), 'htmx 4: it is an htmx:sse:error (an invalid selector)')
      t.match(w.problems, [/not a valid selector/], 'logged as a console error')
    }
  })
}
