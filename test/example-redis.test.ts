/**
 * `npm start` with REDIS_URL: two dashboard processes on two ports share the
 * hub, so a notification posted to one appears on the other's page stream.
 */
import t from 'tap'
import type { ChildProcess } from 'node:child_process'
import { liveUrl } from './helpers/live-page.js'
import { connect, request } from './helpers/sse-client.js'
import { startRedisServer } from './helpers/redis-server.js'
import { freePort, spawnTsx, waitForHttp } from './helpers/process.js'

async function startServer (port: number, redisUrl: string): Promise<ChildProcess> {
  const child = spawnTsx('example-app/server.tsx', { PORT: String(port), HOST: '127.0.0.1', REDIS_URL: redisUrl, SSE_SECRET: 'example-test-secret-0123456789', LOG_LEVEL: 'warn' })
  const status = await waitForHttp(`http://127.0.0.1:${port}/`, child)
  if (status !== 200) throw new Error(`dashboard on ${port} answered ${status}`)
  return child
}

t.test('two dashboard instances with REDIS_URL show the same notifications', async t => {
  const redis = await startRedisServer()
  const servers: ChildProcess[] = []
  t.teardown(async () => {
    // Servers first (they quit their Redis clients on SIGTERM), then Redis.
    await Promise.all(servers.map(s => new Promise(resolve => {
      if (s.exitCode !== null) return resolve(undefined)
      s.once('exit', resolve)
      s.kill('SIGTERM')
    })))
    await redis.stop()
  })
  const [portA, portB] = [await freePort(), await freePort()]
  // Without a shared secret, neither instance could verify the pages the other signed: refused at start.
  const unsigned = spawnTsx('example-app/server.tsx', { PORT: String(portA), HOST: '127.0.0.1', REDIS_URL: redis.url, SSE_SECRET: '', LOG_LEVEL: 'warn' }, { capture: true })
  let said = ''
  unsigned.stderr!.on('data', (chunk: Buffer) => { said += chunk.toString() })
  const code = await new Promise(resolve => unsigned.once('exit', resolve))
  t.equal(code, 1, 'REDIS_URL without SSE_SECRET: exits')
  t.match(said, /REDIS_URL needs SSE_SECRET/, 'saying what to set')
  servers.push(await startServer(portA, redis.url))
  servers.push(await startServer(portB, redis.url))

  const page = (await request(`http://127.0.0.1:${portB}/`)).body
  const connectUrl = liveUrl(`http://127.0.0.1:${portB}`, page)
  t.ok(connectUrl, 'the page on B carries its one sse-connect URL')
  t.equal(page.match(/sse-connect=/g)?.length, 1, 'one')
  const stream = await connect(connectUrl!)
  t.teardown(() => stream.close())

  const posted = await request(`http://127.0.0.1:${portA}/notifications`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'hx-request': 'true' },
    body: 'level=warning&text=' + encodeURIComponent('from instance A <b>bold</b>')
  })
  t.equal(posted.status, 200, 'accepted by A')
  await stream.waitUntil(() => stream.events.some(e => e.data.includes('from instance A')), 15_000)
  const note = stream.events.find(e => e.data.includes('from instance A'))!
  t.match(note.data, /from instance A &lt;b>bold&lt;\/b>/, 'arrives on B, escaped')
  t.match(note.id ?? '', /^\d+$/, 'with a hub id from Redis')

  // Per-instance panels are on per-instance topics: B's page watches B's metrics, not A's too.
  const hubPage = (await request(`http://127.0.0.1:${portB}/hub/`)).body
  t.match(hubPage, new RegExp(`metrics:[A-Za-z0-9_.-]+-${portB} ×1`), 'B\'s page subscribes to B\'s own metrics topic')
  t.notMatch(hubPage, new RegExp(`metrics:[A-Za-z0-9_.-]+-${portA}`), 'and not to A\'s')

  // The same notification is in the history B pre-renders for a new page.
  const later = (await request(`http://127.0.0.1:${portB}/`)).body
  t.match(later, /from instance A &lt;b>bold&lt;\/b>/, 'and in B\'s pre-rendered feed')
})
