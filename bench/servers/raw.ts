// Baseline: plain node:http, a Set of responses, one preformatted string
// written to every response. No ids, no replay, no slow-consumer policy.
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { runServer } from '../lib/server-harness.js'

const clients = new Set<http.ServerResponse>()

const server = http.createServer((req, res) => {
  if (req.url?.startsWith('/sse') !== true) {
    res.writeHead(404).end()
    return
  }
  res.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache',
    'X-Accel-Buffering': 'no'
  })
  res.flushHeaders()
  clients.add(res)
  res.on('close', () => clients.delete(res))
})

await runServer('raw', {
  listen: () => new Promise((resolve) => {
    server.listen(0, '127.0.0.1', 4096, () => resolve((server.address() as AddressInfo).port))
  }),
  clients: () => clients.size,
  publish: (_seq, data) => {
    const frame = `event: tick\ndata: ${data}\n\n`
    for (const res of clients) res.write(frame)
  },
  close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) })
})
