/**
 * A local LLM API for the adapter tests: a node:http server that records each
 * request (path, headers, JSON body, whether the client hung up) and answers
 * with scripted replies, in order — streaming responses in a provider's wire
 * format (server-sent events, one frame per write, each frame split in two
 * writes so the SDK's parser sees partial lines), or an HTTP error. The real
 * SDKs are pointed at it with `baseURL`; nothing leaves the machine.
 */
import http, { type IncomingHttpHeaders, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

export interface LlmRequest {
  method: string
  path: string
  headers: IncomingHttpHeaders
  /** The JSON body (undefined when it was not JSON). */
  body: unknown
  /** Resolves when the client closed the connection before the reply ended. */
  hungUp: Promise<void>
  /** True once the client closed the connection before the reply ended. */
  clientClosed: () => boolean
}

/** One SSE frame: `event:` (optional) and `data:` (JSON-encoded unless a string). */
export interface SseFrame {
  event?: string
  data: unknown
}

export type Reply = (res: ServerResponse, req: LlmRequest) => Promise<void>

export interface LlmServer {
  /** http://127.0.0.1:port */
  url: string
  requests: LlmRequest[]
  /** Queues the answers to the next requests, in order; a request with none queued gets a 500. */
  reply: (...replies: Reply[]) => void
  close: () => Promise<void>
}

export async function startLlmServer (): Promise<LlmServer> {
  const requests: LlmRequest[] = []
  const queue: Reply[] = []
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      let closed = false
      let hungUp!: () => void
      const recorded: LlmRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: parseJson(Buffer.concat(chunks).toString('utf8')),
        hungUp: new Promise<void>(resolve => { hungUp = resolve }),
        clientClosed: () => closed
      }
      res.on('close', () => {
        if (res.writableFinished) return
        closed = true
        hungUp()
      })
      requests.push(recorded)
      const reply = queue.shift() ?? jsonError(500, { error: 'no reply scripted for this request' })
      reply(res, recorded).catch(err => {
        if (!res.headersSent) res.writeHead(500)
        res.end(String(err))
      })
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    reply: (...replies) => { queue.push(...replies) },
    close: async () => {
      // A client that aborted a streamed read may leave an idle keep-alive socket behind.
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => resolve()))
    }
  }
}

function parseJson (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

function encode (frame: SseFrame): string {
  const data = typeof frame.data === 'string' ? frame.data : JSON.stringify(frame.data)
  return `${frame.event === undefined ? '' : `event: ${frame.event}\n`}data: ${data}\n\n`
}

async function write (res: ServerResponse, text: string): Promise<void> {
  if (res.destroyed) return
  if (!res.write(text)) await new Promise(resolve => res.once('drain', resolve))
}

export interface SseReplyOptions {
  /** After the frames, keep the response open until the client hangs up (bounded by `holdMs`). */
  hold?: boolean
  holdMs?: number
  /** Answers only after this resolves (e.g. to pace a test). */
  before?: Promise<unknown>
}

/** A 200 text/event-stream answer: each frame in two writes, a tick apart (deltas arrive one by one, lines split). */
export function sse (frames: readonly SseFrame[], options: SseReplyOptions = {}): Reply {
  return async (res, req) => {
    await options.before
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'request-id': 'req_test_1' })
    for (const frame of frames) {
      if (req.clientClosed()) return
      const text = encode(frame)
      const cut = Math.max(1, Math.floor(text.length / 2))
      await write(res, text.slice(0, cut))
      await sleep(1)
      await write(res, text.slice(cut))
      await sleep(1)
    }
    if (options.hold === true) {
      // Unref'd: a hold the client ended must not keep the test process alive.
      await Promise.race([req.hungUp, sleep(options.holdMs ?? 10_000, undefined, { ref: false })])
    }
    res.end()
  }
}

/** An HTTP error answer with a JSON body. */
export function jsonError (status: number, body: unknown): Reply {
  return async res => {
    res.writeHead(status, { 'content-type': 'application/json', 'request-id': 'req_test_err' })
    res.end(JSON.stringify(body))
  }
}
