// A minimal, fast SSE client over a raw node:net socket: HTTP/1.1 GET, response
// head, chunked transfer decoding, and just enough SSE parsing to read each
// event's `id:` and the "<seq> <sendTimeMs>" head of its first `data:` line.
import net from 'node:net'
import type { Histogram } from './hist.js'
import { nowMs } from './payload.js'

const LF = 10
const CR = 13
const SP = 32
const DOT = 46
const COLON = 58

export interface ClientOptions {
  port: number
  path: string
  /** Number of distinct events (sequence numbers 0..count-1) expected. */
  count: number
  /** Latency histogram this client records into (shared per group). */
  hist: Histogram
  /** Events with a sequence number below this are warm-up: their latency goes to `warmHist`, not `hist`. */
  warmup: number
  warmHist: Histogram
  /** Called once per successful response head (connect or reconnect). */
  onOpen: (client: SseClient) => void
  /** Called when the connection ends for any reason. */
  onClose: (client: SseClient, reason: string) => void
}

/**
 * One read buffer for every socket of this process: `onread` skips the stream
 * machinery and per-read allocations. Safe because parsing is synchronous and
 * partial events are copied out before the next read.
 */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024)

export class SseClient {
  socket: net.Socket | null = null
  open = false
  paused = false
  status = 0
  /** Unique sequence numbers received. */
  unique = 0
  duplicates = 0
  outOfOrder = 0
  /** Events without a parsable "<seq> <ts>" head (resets, other events). */
  other = 0
  bytes = 0
  reconnects = 0
  /** Successful response heads (1 + reconnects that worked). */
  opens = 0
  lastId = ''
  lastError = ''
  /** When the newest event was received (nowMs()), 0 before any. */
  lastRecvMs = 0
  private seen: Uint8Array
  private maxSeq = -1
  private head: Buffer | null = null
  private inBody = false
  private chunked = false
  private chunkLeft = 0
  private chunkSize = 0
  private sizeDigits = 0
  private inChunkExt = false
  private pending: Buffer | null = null

  constructor (readonly opts: ClientOptions) {
    this.seen = new Uint8Array(opts.count)
  }

  get complete (): boolean {
    return this.unique === this.opts.count
  }

  connect (): void {
    this.resetConnectionState()
    const { port, path } = this.opts
    const socket = net.connect({
      host: '127.0.0.1',
      port,
      noDelay: true,
      onread: { buffer: READ_BUFFER, callback: (n: number, buf: Uint8Array) => { this.onData(buf as Buffer, n); return true } }
    })
    this.socket = socket
    let req = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n`
    if (this.lastId !== '') req += `Last-Event-ID: ${this.lastId}\r\n`
    req += '\r\n'
    socket.once('connect', () => socket.write(req))
    socket.on('error', (err: NodeJS.ErrnoException) => { this.lastError = err.code ?? err.message })
    socket.once('close', () => {
      const wasOpen = this.open
      this.open = false
      if (this.socket === socket) this.socket = null
      this.opts.onClose(this, wasOpen ? 'closed' : `failed:${this.lastError || this.status || 'eof'}`)
    })
  }

  /** Stop reading (the kernel buffers fill, then the server sees backpressure). */
  pause (): void {
    this.paused = true
    this.socket?.pause()
  }

  resume (): void {
    this.paused = false
    this.socket?.resume()
  }

  destroy (): void {
    this.socket?.destroy()
  }

  private resetConnectionState (): void {
    this.open = false
    this.status = 0
    this.head = null
    this.inBody = false
    this.chunked = false
    this.chunkLeft = 0
    this.chunkSize = 0
    this.sizeDigits = 0
    this.inChunkExt = false
    this.pending = null
  }

  private onData (shared: Buffer, n: number): void {
    const buf = shared.subarray(0, n)
    this.bytes += n
    if (this.inBody) {
      if (this.chunked) this.dechunk(buf, 0)
      else this.feed(buf, 0, buf.length)
      return
    }
    const all = this.head ? Buffer.concat([this.head, buf]) : buf
    const end = all.indexOf('\r\n\r\n')
    if (end === -1) {
      if (all.length > 16384) this.fail('response head too large')
      this.head = all.length === buf.length ? Buffer.from(all) : all
      return
    }
    const headText = all.toString('latin1', 0, end)
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(headText)
    this.status = m ? Number(m[1]) : 0
    if (this.status !== 200) {
      this.fail(`status ${this.status}`)
      return
    }
    this.chunked = /\r\ntransfer-encoding:[^\r]*chunked/i.test(headText)
    this.inBody = true
    this.head = null
    this.open = true
    this.opens++
    this.opts.onOpen(this)
    if (this.paused) this.socket?.pause()
    const start = end + 4
    if (start < all.length) {
      if (this.chunked) this.dechunk(all, start)
      else this.feed(all, start, all.length)
    }
  }

  private fail (reason: string): void {
    this.lastError = reason
    this.socket?.destroy()
  }

  /** Decode HTTP/1.1 chunked framing and feed the body bytes to the SSE parser. */
  private dechunk (buf: Buffer, i: number): void {
    const n = buf.length
    while (i < n) {
      if (this.chunkLeft > 0) {
        const take = Math.min(this.chunkLeft, n - i)
        this.feed(buf, i, i + take)
        i += take
        this.chunkLeft -= take
        continue
      }
      const c = buf[i++]!
      if (c === LF) {
        // End of a size line (or of the CRLF that trails each chunk's data).
        if (this.sizeDigits > 0) {
          if (this.chunkSize === 0) { // last-chunk: the response is over
            this.socket?.end()
            return
          }
          this.chunkLeft = this.chunkSize
        }
        this.chunkSize = 0
        this.sizeDigits = 0
        this.inChunkExt = false
      } else if (c === CR || this.inChunkExt) {
        // skip
      } else if (c === 59 /* ; */) {
        this.inChunkExt = true
      } else {
        const d = c <= 57 ? c - 48 : (c | 32) - 87
        this.chunkSize = this.chunkSize * 16 + d
        this.sizeDigits++
      }
    }
  }

  /** Parse complete SSE events out of buf[start, end). */
  private feed (buf: Buffer, start: number, end: number): void {
    const recvMs = nowMs()
    let b: Buffer
    if (this.pending) {
      b = Buffer.concat([this.pending, buf.subarray(start, end)])
      this.pending = null
    } else {
      b = start === 0 && end === buf.length ? buf : buf.subarray(start, end)
    }
    const len = b.length
    let pos = 0
    let idStart = -1
    let idEnd = -1
    for (;;) {
      const term = b.indexOf('\n\n', pos)
      if (term === -1) break
      // One event in b[pos, term]. Walk its lines.
      let dataAt = -1
      let line = pos
      while (line < term) {
        let eol = b.indexOf(LF, line)
        if (eol === -1 || eol > term) eol = term
        const c0 = b[line]
        if (c0 === 100 /* d */ && dataAt === -1 && b[line + 1] === 97 && b[line + 2] === 116 && b[line + 3] === 97 && b[line + 4] === COLON) {
          dataAt = b[line + 5] === SP ? line + 6 : line + 5
        } else if (c0 === 105 /* i */ && b[line + 1] === 100 && b[line + 2] === COLON) {
          idStart = b[line + 3] === SP ? line + 4 : line + 3
          idEnd = eol > idStart && b[eol - 1] === CR ? eol - 1 : eol
        }
        line = eol + 1
      }
      if (dataAt !== -1) this.record(b, dataAt, term, recvMs)
      pos = term + 2
    }
    if (idStart !== -1) this.lastId = b.toString('latin1', idStart, idEnd)
    if (pos < len) this.pending = Buffer.from(b.subarray(pos))
  }

  private record (b: Buffer, i: number, end: number, recvMs: number): void {
    let seq = 0
    let digits = 0
    let c = b[i]!
    while (i < end && c >= 48 && c <= 57) { seq = seq * 10 + (c - 48); digits++; c = b[++i]! }
    if (digits === 0 || c !== SP || seq >= this.opts.count) { this.other++; return }
    c = b[++i]!
    let ts = 0
    let scale = 0
    digits = 0
    while (i < end && ((c >= 48 && c <= 57) || c === DOT)) {
      if (c === DOT) scale = 1
      else { ts = ts * 10 + (c - 48); if (scale > 0) scale *= 10; digits++ }
      c = b[++i]!
    }
    if (digits === 0) { this.other++; return }
    if (scale > 1) ts /= scale
    if (this.seen[seq] === 1) { this.duplicates++; return }
    this.seen[seq] = 1
    this.unique++
    this.lastRecvMs = recvMs
    if (seq < this.maxSeq) this.outOfOrder++
    else this.maxSeq = seq
    ;(seq < this.opts.warmup ? this.opts.warmHist : this.opts.hist).add(recvMs - ts)
  }
}
