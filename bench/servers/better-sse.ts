// better-sse on plain node:http (its native adapter): one Session per client,
// registered with one Channel; channel.broadcast() per event.
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createChannel, createSession } from 'better-sse'
import { runServer } from '../lib/server-harness.js'

const channel = createChannel()

const server = http.createServer((req, res) => {
  if (req.url?.startsWith('/sse') !== true) {
    res.writeHead(404).end()
    return
  }
  // keepAlive/retry off (like every variant); data is already a string.
  createSession(req, res, { keepAlive: null, retry: null, serializer: (d: unknown) => String(d) })
    .then((session) => channel.register(session))
    .catch(() => res.destroy())
})

await runServer('better-sse', {
  listen: () => new Promise((resolve) => {
    server.listen(0, '127.0.0.1', 4096, () => resolve((server.address() as AddressInfo).port))
  }),
  clients: () => channel.sessionCount,
  publish: (seq, data) => { channel.broadcast(data, 'tick', { eventId: String(seq) }) },
  close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) })
})
