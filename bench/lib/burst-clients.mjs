// Child process for bench/redis-burst.ts: `count` SSE clients over node:http on
// one URL. Each keeps the ids it got, its resets, and (every `sampleEvery`-th
// client) the latency of each event: receipt time minus the publish time the
// event's data starts with (`t=<ms>;`, same machine, same clock).
// On 'check' (the ids whose publish resolved) it reports, summed over its
// clients: events lost, duplicates, out-of-order, resets, latency samples, and
// how many events whose publish was rejected were delivered anyway.
import http from 'node:http'

const [url, count, sampleEvery] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4] ?? 10)]
const clients = []
let lastReceipt = 0

function open (index) {
  const c = { ids: [], resets: 0, latencies: index % sampleEvery === 0 ? [] : null, connected: false, closed: false }
  clients.push(c)
  const req = http.get(url, { agent: false }, res => {
    c.connected = true
    res.setEncoding('utf8')
    let buffer = ''
    res.on('data', chunk => {
      const now = Date.now()
      lastReceipt = now
      buffer += chunk
      let end
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        let id
        let event
        let data
        for (const line of frame.split('\n')) {
          if (line.startsWith('id: ')) id = line.slice(4)
          else if (line.startsWith('event: ')) event = line.slice(7)
          else if (line.startsWith('data: ') && data === undefined) data = line.slice(6)
        }
        if (event === 'reset') c.resets++
        else if (id !== undefined) {
          c.ids.push(Number(id))
          if (c.latencies !== null && data?.startsWith('t=')) c.latencies.push(now - Number(data.slice(2, data.indexOf(';'))))
        }
      }
    })
    res.on('close', () => { c.closed = true })
  })
  req.on('error', () => { c.closed = true })
}

for (let i = 0; i < count; i++) open(i)

const timer = setInterval(() => {
  process.send({ type: 'progress', connected: clients.filter(c => c.connected).length, received: clients.reduce((n, c) => n + c.ids.length, 0), lastReceipt })
}, 50)

process.on('message', msg => {
  if (msg.type === 'check') {
    const accepted = new Set(msg.ids)
    let lost = 0
    let duplicates = 0
    let unordered = 0
    let resets = 0
    let closed = 0
    let clientsMissing = 0
    const latencies = []
    const foreign = new Set()
    for (const c of clients) {
      for (const id of c.ids) if (!accepted.has(id)) foreign.add(id)
      const got = new Set(c.ids)
      duplicates += c.ids.length - got.size
      for (let i = 1; i < c.ids.length; i++) if (c.ids[i] <= c.ids[i - 1]) unordered++
      let missing = 0
      for (const id of accepted) if (!got.has(id)) missing++
      lost += missing
      if (missing > 0) clientsMissing++
      resets += c.resets
      if (c.closed) closed++
      if (c.latencies !== null) latencies.push(...c.latencies)
    }
    process.send({ type: 'report', lost, duplicates, unordered, resets, closed, clientsMissing, latencies, rejectedButDelivered: foreign.size })
  }
  if (msg.type === 'exit') { clearInterval(timer); process.exit(0) }
})
