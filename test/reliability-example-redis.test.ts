/**
 * Issue 11, item 8 (c): the example app in Redis mode with Redis down answers
 * a state-changing POST with a clean 503 + Retry-After, and the body carries
 * no internal error message ("redis unavailable: …", commands, addresses).
 */
import t from 'tap'
import { Redis } from 'ioredis'
import { buildApp } from '../example-app/app.js'
import { redisTransport } from '../plugin/transports/redis.js'
import { fakeSampler } from '../routes/index.js'
import { startRedisServer } from './helpers/redis-server.js'
import { request } from './helpers/sse-client.js'

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
