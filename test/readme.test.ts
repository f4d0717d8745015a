/**
 * The README's snippets ("A live page", "A task with live progress", "Register it in your own Fastify app",
 * the testing helpers' example test), run as written (imports by package name, as a
 * user would) and checked over real sockets.
 */
import t, { type Test } from 'tap'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { connect, request } from './helpers/sse-client.js'
import { liveUrl } from './helpers/live-page.js'
import { freePort, spawnTsx, waitForHttp } from './helpers/process.js'

/** Runs a README snippet as written (tsx, package names) on a free port; resolves with its base URL once it answers. */
async function runSnippet (t: Test, heading: RegExp, name: string): Promise<{ base: string, snippet: string }> {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const snippet = new RegExp(`${heading.source}[\\s\\S]*?\`\`\`tsx\\n([\\s\\S]*?)\`\`\``).exec(readme)?.[1]
  t.ok(snippet, 'found the snippet')
  const port = await freePort()
  const file = fileURLToPath(new URL(`./tmp-readme-snippet-${name}-${process.pid}.tsx`, import.meta.url))
  writeFileSync(file, `${snippet!}\nawait app.listen({ port: ${port}, host: '127.0.0.1' })\nprocess.on('SIGTERM', () => { void app.close().then(() => process.exit(0)) })\n`)
  t.teardown(() => rmSync(file, { force: true }))
  const child = spawnTsx(file)
  t.teardown(() => { child.kill('SIGTERM') })
  const base = `http://127.0.0.1:${port}`
  await waitForHttp(`${base}/nothing`, child)
  return { base, snippet: snippet! }
}

t.test('the README snippet runs and streams', async t => {
  const { base } = await runSnippet(t, /## Register it in your own Fastify app\n/, 'register')

  const clock = await connect(`${base}/clock`)
  const [tick] = await clock.waitFor(1, 5000)
  clock.close()
  t.equal(tick!.event, 'tick')
  t.match(tick!.data, /^<time datetime="\d{4}-\d\d-\d\dT[^"]+">\d\d:\d\d:\d\d<\/time>$/)

  const count = await connect(`${base}/count`)
  await count.ended
  t.same(count.events.map(e => [e.event, e.data]), [...Array(10).keys()].map(i => ['n', `<b>${i}</b>`]), 'the generator streams 10 events, then the stream ends')

  const hub = await connect(`${base}/dashboard/stream`)
  t.equal(hub.status, 200)
  t.match(hub.headers['content-type'], /^text\/event-stream/)
  hub.close()
})

t.test('the README live page runs: page, stream, publish', async t => {
  const { base, snippet } = await runSnippet(t, /### A live page\n/, 'live')
  t.ok(snippet.split('\n').length <= 30, 'about 20 lines')
  t.equal((await request(`${base}/orders/first`, { method: 'POST' })).status, 200)
  const page = await request(`${base}/orders`)
  t.match(page.body, /<li id="order-1">first<\/li>/)
  const url = /sse-connect="([^"]+)"/.exec(page.body)![1]!.replace(/&amp;/g, '&')
  const stream = await connect(`${base}${url}&sseResume=1`)
  t.teardown(() => stream.close())
  t.equal(stream.status, 200)
  await request(`${base}/orders/${encodeURIComponent('<b>second</b>')}`, { method: 'POST' })
  const [event] = await stream.waitFor(1)
  t.match(event!.data, /id="order-2"/)
  t.match(event!.data, /&lt;b>second&lt;\/b>|&lt;b&gt;second&lt;\/b&gt;/, 'user text escaped')
})

t.test('the README example test of fastify-htmx-sse/testing runs and passes under node:test', async t => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const snippet = /## Test your live pages \(`fastify-htmx-sse\/testing`\)\n[\s\S]*?```tsx\n([\s\S]*?)```/.exec(readme)?.[1]
  t.ok(snippet, 'found the snippet')
  t.match(snippet, /from 'node:test'/, 'no tap: any runner')
  const file = fileURLToPath(new URL(`./tmp-readme-snippet-testing-${process.pid}.tsx`, import.meta.url))
  writeFileSync(file, snippet!)
  t.teardown(() => rmSync(file, { force: true }))
  const child = spawnTsx(file, {}, { capture: true })
  let out = ''
  child.stdout!.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr!.on('data', (d: Buffer) => { out += d.toString() })
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  const status = await new Promise<number | null>(resolve => child.once('exit', resolve))
  clearTimeout(timer)
  t.equal(status, 0, `the test file passes: ${out}`)
  // Node 20 reports TAP when not on a terminal, Node 23+ its spec format.
  t.match(out, /(#|ℹ) pass 1\b/)
  t.match(out, /(#|ℹ) fail 0\b/)
})

t.test('the README progress recipe runs: a run of the user\'s function streams to 100%, then its result', async t => {
  const { base, snippet } = await runSnippet(t, /### A task with live progress\n/, 'progress')
  const lines = snippet.trim().split('\n').filter(line => line.trim() !== '')
  t.ok(lines.length <= 18, `${lines.length} lines, imports included`)
  const started = await request(`${base}/reports`, { method: 'POST' })
  t.equal(started.status, 303)
  const url = started.headers.location!
  t.match(url, /^\/runs\/report\/[0-9a-f]{16}$/)
  const page = await request(base + url)
  t.match(page.body, /<h2>Monthly report<\/h2>[\s\S]*data-status="running"|data-status="running"[\s\S]*<h2>Monthly report<\/h2>/, 'its page, running')
  const stream = await connect(liveUrl(base, page.body)!)
  t.teardown(() => stream.close())
  await stream.waitUntil(() => stream.events.some(e => e.event === 'done'), 15_000)
  const bars = stream.events.filter(e => /innerHTML: #run-[0-9a-f]+-progress/.test(e.data)).map(e => Number(/aria-valuenow="(\d+)"/.exec(e.data)?.[1]))
  t.equal(bars.at(-1), 100, `the bar reaches 100% (${bars.join(', ')})`)
  t.ok(bars.some(p => p < 100), 'after steps below it')
  t.match(stream.events.at(-2)?.data, /data-status="done"[\s\S]*Step 5 of 5[\s\S]*Report ready: 42 rows/, 'then the run, static, with its result')
  const json = JSON.parse((await request(base + url, { headers: { accept: 'application/json' } })).body) as Record<string, unknown>
  t.match(json, { kind: 'report', title: 'Monthly report', status: 'done', progress: 1, label: 'Step 5 of 5', result: 'Report ready: 42 rows' })
})
