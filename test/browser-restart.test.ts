/**
 * Stopping and restarting the server mid-stream, under htmx 2 and htmx 4: the
 * hub transport (a MemoryTransport object) outlives the Fastify app, a new app
 * takes the same port, and the page ends with every notification exactly once
 * (htmx 2: EventSource + the resume script; htmx 4: its own reconnect with a
 * Last-Event-ID header).
 */
import t from 'tap'
import { MemoryTransport } from '../plugin/transports/memory.js'
import { publishNotification } from '../routes/notifications.js'
import { browserForFile } from './helpers/browser.js'

const fixture = browserForFile(t)

for (const htmx of [2, 4] as const) {
  t.test(`htmx ${htmx}: restart mid-stream, every notification exactly once`, async t => {
    const transport = new MemoryTransport({ history: 1000 })
    const first = await fixture.start({ transport, htmx })
    const page = await fixture.browser.newPage()
    t.teardown(() => page.close())
    await page.goto(first.url + '/')
    await page.waitForFunction(() => document.querySelector('#metric-cpu .value')?.textContent !== '—')

    const texts = Array.from({ length: 8 }, (_, i) => `note ${htmx}.${i + 1}`)
    await publishNotification(first.app.sseHub, { level: 'info', text: texts[0]! })
    await publishNotification(first.app.sseHub, { level: 'info', text: texts[1]! })
    await page.waitForSelector(`#notifications >> text=${texts[1]}`)

    await first.close()
    // While no server runs the page keeps retrying. The next app shares the
    // transport (its history) and takes the same port.
    const second = await fixture.start({ transport, port: first.port, htmx })
    for (const text of texts.slice(2, 5)) await publishNotification(second.app.sseHub, { level: 'warning', text })
    await page.waitForSelector(`#notifications >> text=${texts[4]}`, { timeout: 15_000 })
    for (const text of texts.slice(5)) await publishNotification(second.app.sseHub, { level: 'success', text })
    await page.waitForSelector(`#notifications >> text=${texts[7]}`, { timeout: 10_000 })
    await page.waitForTimeout(300)

    const shown = await page.locator('#notifications .note .text').allInnerTexts()
    t.same([...shown].sort(), [...texts].sort(), 'each notification exactly once')
    t.same(shown, [...texts].reverse(), 'newest first, in order')
    t.equal(second.app.sseHub.stats().connections, 1, 'the page reconnected once')
    await second.close()
  })
}
