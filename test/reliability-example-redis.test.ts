/**
 * Issue 11, item 8 (c): the example app in Redis mode with Redis down answers
 * a state-changing POST with a clean 503 + Retry-After, and the body carries
 * no internal error message ("redis unavailable: …", commands, addresses).
 */
import t from 'tap'
import { Redis } from 'ioredis'
import { buildApp } from '../example-app/app.js'
import { redisTransport } from '../plugin/transports/redis.js'
import { fakeSampler } from './helpers/routes.js'
import { startRedisServer } from './helpers/redis-server.js'
import { request, waitUntil } from './helpers/sse-client.js'
import { freePort, spawnTsx, waitForHttp } from './helpers/process.js'

t.test('(c) Redis down: POST /notifications is a clean 503 with Retry-After', async t => {
  const server = await startRedisServer()
  t.teardown(() => server.stop())
  const redis = new Redis(server.url, { maxRetriesPerRequest: 1 })
  redis.on('error', () => {})
  t.teardown(() => redis.disconnect())
  const { app } = await buildApp({
    transport: redisTransport({ redis, publishTimeoutMs: 300, blockMs: 500 }),
    sampler: fakeSampler(),
    echoLogs: false,
    logLevel: 'fatal',
    heartbeatMs: false
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const post = async (): Promise<{ status: number, headers: Record<string, unknown>, body: string }> => await request(`${url}/notifications`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'level=info&text=hello'
  })

  const up = await post()
  t.equal(up.status, 303, 'with Redis up the post is accepted')

  await server.kill()
  const down = await post()
  t.equal(down.status, 503, `with Redis down: 503 (got ${down.status})`)
  t.match(down.headers['retry-after'], /^\d+$/, 'with a Retry-After')
  t.notMatch(down.body, /redis unavailable/i, 'no internal error message in the body')
  t.notMatch(down.body, /ECONNREFUSED|EVALSHA|XADD|127\.0\.0\.1|not confirmed within/i, 'nor any internal detail')
  t.comment(`body: ${down.body.slice(0, 200)}`)
})

t.test('(c) npm start with REDIS_URL: Redis going away is one log line, not "Unhandled error event" per retry', async t => {
  const server = await startRedisServer()
  t.teardown(() => server.stop())
  const port = await freePort()
  const child = spawnTsx('example-app/server.tsx', { PORT: String(port), REDIS_URL: server.url, SSE_SECRET: 'example-test-secret-0123456789', LOG_LEVEL: 'info' }, { capture: true })
  let out = ''
  child.stdout!.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr!.on('data', (d: Buffer) => { out += d.toString() })
  t.teardown(() => { child.kill('SIGKILL') })
  await waitForHttp(`http://127.0.0.1:${port}/`, child)
  await server.kill()
  // ioredis retries every 50-2000 ms; give it several attempts.
  await waitUntil(() => /connection lost|Unhandled error event/.test(out), 10_000, 'the outage to show')
  await new Promise(resolve => setTimeout(resolve, 3000))
  t.equal((out.match(/Unhandled error event/g) ?? []).length, 0, 'no "Unhandled error event"')
  t.equal((out.match(/redis: connection lost/g) ?? []).length, 1, 'one line for the outage')
  await server.start()
  await waitUntil(() => /redis: connected again/.test(out), 10_000, 'the recovery to be logged')
  t.pass('and one line when it is back')
})
