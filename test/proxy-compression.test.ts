/**
 * What the README's "Behind a proxy" says of the app side: streams carry the
 * headers that keep proxies from buffering them, and they bypass `onSend`
 * hooks, where compression plugins (`@fastify/compress`'s global mode) work,
 * so an app that compresses every other response still streams events
 * uncompressed, one at a time.
 */
import t from 'tap'
import { gzipSync } from 'node:zlib'
import { sseTest } from 'fastify-htmx-sse/testing'
import { startApp } from './helpers/app.js'
import { request } from './helpers/sse-client.js'

t.test('an onSend compressor compresses other responses, never a stream; streams say not to buffer them', async t => {
  const { app, url } = await startApp({ heartbeatMs: false }, app => {
    // How a global compression plugin works: it replaces each payload in onSend.
    app.addHook('onSend', async (_request, reply, payload) => {
      if (typeof payload !== 'string') return payload
      reply.header('content-encoding', 'gzip').removeHeader('content-length')
      return gzipSync(payload)
    })
    app.get('/json', async () => ({ hello: 'x'.repeat(200) }))
    app.get('/one', (_request, reply) => {
      const stream = reply.sse()
      void stream.send('first')
      return stream
    })
    app.get('/hub', (_request, reply) => reply.sse({ topics: ['t'] }))
  })
  t.teardown(() => app.close())
  const plain = await request(`${url}/json`, { headers: { 'accept-encoding': 'gzip' } })
  t.equal(plain.headers['content-encoding'], 'gzip', 'the compressor is at work on ordinary responses')

  for (const path of ['/one', '/hub']) {
    const stream = await sseTest(app).openStream(path, { headers: { 'accept-encoding': 'gzip' } })
    t.equal(stream.headers['content-encoding'], undefined, `${path}: not compressed`)
    t.equal(stream.headers['x-accel-buffering'], 'no', `${path}: nginx is told not to buffer it`)
    t.equal(stream.headers['cache-control'], 'no-cache')
    t.equal(stream.headers['content-type'], 'text/event-stream; charset=utf-8')
    if (path === '/hub') await app.sseHub.publish('t', { data: 'first' })
    t.equal((await stream.next()).data, 'first', `${path}: the event arrives while the stream is open`)
    t.notOk(stream.ended)
    stream.close()
  }
})
