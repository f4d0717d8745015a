/**
 * The README's "Register it in your own Fastify app" snippet, run as written
 * (imports by package name, as a user would) and checked over real sockets.
 */
import t from 'tap'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { connect } from './helpers/sse-client.js'
import { freePort, spawnTsx, waitForHttp } from './helpers/process.js'

t.test('the README snippet runs and streams', async t => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const snippet = /## Register it in your own Fastify app\n\n```tsx\n([\s\S]*?)```/.exec(readme)?.[1]
  t.ok(snippet, 'found the snippet')
  const port = await freePort()
  const file = fileURLToPath(new URL(`./tmp-readme-snippet-${process.pid}.tsx`, import.meta.url))
  writeFileSync(file, `${snippet!}\nawait app.listen({ port: ${port}, host: '127.0.0.1' })\nprocess.on('SIGTERM', () => { void app.close().then(() => process.exit(0)) })\n`)
  t.teardown(() => rmSync(file, { force: true }))
  const child = spawnTsx(file)
  t.teardown(() => { child.kill('SIGTERM') })
  const base = `http://127.0.0.1:${port}`
  await waitForHttp(`${base}/nothing`, child)

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
