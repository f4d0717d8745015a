// Child process: many SSE clients over node:http, so their buffers don't count
// against the server's memory in the parent. Some stop reading until told to
// resume; a client whose stream is closed reconnects with Last-Event-ID.
// Reports, per client, how many events it got and whether ids were strictly
// increasing and contiguous with what was published (no gap, no duplicate).
import http from 'node:http'

const [url, fastN, slowN, expected] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5])]

class Client {
  constructor (slow) {
    this.slow = slow
    this.ids = []
    this.lastId = undefined
    this.connections = 0
    this.buffer = ''
    this.paused = slow
    this.done = false
    this.resets = 0
  }

  open () {
    this.connections++
    this.buffer = '' // a partial event from a dropped connection is not an event
    const headers = this.lastId === undefined ? {} : { 'last-event-id': this.lastId }
    const req = http.get(url, { agent: false, headers }, res => {
      this.res = res
      res.setEncoding('utf8')
      res.on('data', chunk => this.feed(chunk))
      res.on('close', () => { if (!this.done) setTimeout(() => this.open(), 20) })
    })
    req.on('error', () => { if (!this.done) setTimeout(() => this.open(), 50) })
  }

  feed (chunk) {
    this.buffer += chunk
    let end
    while ((end = this.buffer.indexOf('\n\n')) >= 0) {
      const block = this.buffer.slice(0, end)
      this.buffer = this.buffer.slice(end + 2)
      let id
      let event
      for (const line of block.split('\n')) {
        if (line.startsWith('id: ')) id = line.slice(4)
        else if (line.startsWith('event: ')) event = line.slice(7)
      }
      if (event === 'reset') this.resets++
      else if (id !== undefined) this.ids.push(Number(id))
      if (id !== undefined) this.lastId = id
      if (this.slow && this.paused && this.ids.length === 1) this.res.pause()
    }
    if (this.ids.length >= expected) this.finish()
  }

  resume () {
    this.paused = false
    this.res?.resume()
  }

  finish () {
    if (this.done) return
    this.done = true
    this.res?.destroy()
    report()
  }
}

const clients = []
for (let i = 0; i < fastN; i++) clients.push(new Client(false))
for (let i = 0; i < slowN; i++) clients.push(new Client(true))
for (const c of clients) c.open()

let reported = false
function report () {
  if (reported || !clients.every(c => c.done)) return
  reported = true
  const summary = clients.map(c => {
    let ordered = true
    for (let i = 1; i < c.ids.length; i++) if (c.ids[i] !== c.ids[i - 1] + 1) ordered = false
    return { slow: c.slow, count: c.ids.length, unique: new Set(c.ids).size, ordered, connections: c.connections, resets: c.resets, first: c.ids[0], last: c.ids.at(-1) }
  })
  process.send({ type: 'done', summary })
}

const timer = setInterval(() => {
  const connected = clients.filter(c => c.connections > 0 && c.ids.length > 0).length
  const receivedFast = clients.reduce((n, c) => c.slow ? n : n + c.ids.length, 0)
  // The reader furthest behind: pacing on a sum would let one reader fall
  // arbitrarily far behind while the others keep the average up.
  const minFast = clients.reduce((n, c) => c.slow ? n : Math.min(n, c.ids.length), Infinity)
  process.send({ type: 'progress', connected, received: clients.reduce((n, c) => n + c.ids.length, 0), receivedFast, minFast })
}, 20)
process.on('message', msg => {
  if (msg === 'resume') for (const c of clients) if (c.slow) c.resume()
  if (msg === 'exit') { clearInterval(timer); process.exit(0) }
})
