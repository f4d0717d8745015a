/**
 * Connection adapters: the thinnest layer that puts pre-encoded frames on the
 * wire for one response, over HTTP/1.x or HTTP/2, and reports how many bytes
 * are still unsent. Everything above (stream, hub) is protocol-agnostic.
 */
import type { ServerResponse } from 'node:http'
import type { Http2ServerResponse, ServerHttp2Stream } from 'node:http2'
import type { Socket } from 'node:net'
import type { Frame } from './encode.js'

export interface Connection {
  /** Writes one frame; the return value is not a signal, check `buffered`. */
  write (frame: Frame): void
  /** Bytes accepted but not yet handed to the kernel. */
  readonly buffered: number
  /** Calls `fn` once when the buffer drains (or the connection closes). */
  onDrain (fn: () => void): void
  /** Ends the response cleanly (HTTP/1.1 last chunk, HTTP/2 END_STREAM). */
  end (): void
  /** Ends the response and, for HTTP/1.1, the keep-alive connection under it (shutdown). */
  endAndClose (): void
  /** Tears the connection down without a clean end. */
  destroy (): void
  /** Resolves once the response has closed. */
  closed (): Promise<void>
}

export type RawResponse = ServerResponse | Http2ServerResponse

export function isHttp2Response (res: RawResponse): res is Http2ServerResponse {
  return 'stream' in res && (res as Http2ServerResponse).stream !== undefined
}

interface OutgoingInternals { chunkedEncoding?: boolean; outputData?: unknown[] }

/**
 * HTTP/1.x. Once the head is flushed, frames go straight to the socket: the
 * chunk framing is pre-built once per frame instead of `res.write()` adding
 * three writes and a cork per socket per event, which is most of the cost of
 * a broadcast. `res.end()` still writes the terminating chunk, so the
 * response stays well-formed for Node's HTTP state machine.
 */
class Http1Connection implements Connection {
  readonly #res: ServerResponse
  readonly #socket: Socket | null
  readonly #chunked: boolean

  constructor (res: ServerResponse) {
    this.#res = res
    const internals = res as unknown as OutgoingInternals
    const socket = res.socket
    // Pipelined responses wait for their turn in res.outputData; only the
    // response that owns the socket may bypass ServerResponse.
    const owns = socket !== null && (socket as unknown as { _httpMessage?: unknown })._httpMessage === res &&
      (internals.outputData?.length ?? 0) === 0
    this.#socket = owns ? socket : null
    this.#chunked = internals.chunkedEncoding === true
  }

  write (frame: Frame): void {
    const bytes = this.#chunked ? frame.chunked : frame.bytes
    if (this.#socket !== null) this.#socket.write(bytes)
    else this.#res.write(frame.bytes)
  }

  get buffered (): number {
    return this.#res.writableLength
  }

  onDrain (fn: () => void): void {
    const target = this.#socket ?? this.#res
    const done = (): void => {
      target.removeListener('drain', done)
      this.#res.removeListener('close', done)
      fn()
    }
    target.on('drain', done)
    this.#res.on('close', done)
  }

  end (): void {
    this.#res.end()
  }

  endAndClose (): void {
    this.#res.end()
    this.#res.socket?.end()
  }

  destroy (): void {
    this.#res.destroy()
  }

  closed (): Promise<void> {
    return closedPromise(this.#res)
  }
}

function closedPromise (res: RawResponse): Promise<void> {
  if ((res as { closed?: boolean }).closed === true || res.socket?.destroyed === true) return Promise.resolve()
  return new Promise(resolve => res.once('close', () => resolve()))
}

class Http2Connection implements Connection {
  readonly #res: Http2ServerResponse
  readonly #stream: ServerHttp2Stream

  constructor (res: Http2ServerResponse) {
    this.#res = res
    this.#stream = res.stream
  }

  write (frame: Frame): void {
    this.#stream.write(frame.bytes)
  }

  get buffered (): number {
    return this.#stream.writableLength
  }

  onDrain (fn: () => void): void {
    const done = (): void => {
      this.#stream.removeListener('drain', done)
      this.#res.removeListener('close', done)
      fn()
    }
    this.#stream.on('drain', done)
    this.#res.on('close', done)
  }

  end (): void {
    this.#res.end()
  }

  endAndClose (): void {
    this.#res.end()
  }

  destroy (): void {
    this.#stream.destroy()
  }

  closed (): Promise<void> {
    return this.#stream.closed ? Promise.resolve() : closedPromise(this.#res)
  }
}

/** Call after the head has been flushed. */
export function connectionFor (res: RawResponse): Connection {
  return isHttp2Response(res) ? new Http2Connection(res) : new Http1Connection(res)
}

type Gone = () => void
const watchers = new WeakMap<Socket, Set<Gone>>()

function onSocketClose (socket: Socket, fn: Gone): () => void {
  let fns = watchers.get(socket)
  if (fns === undefined) {
    const set = fns = new Set()
    watchers.set(socket, set)
    // One listener per socket, however many (pipelined) streams it carries.
    socket.once('close', () => {
      watchers.delete(socket)
      for (const f of [...set]) f()
    })
  }
  fns.add(fn)
  return () => { fns.delete(fn) }
}

/**
 * Calls `fn` once when the client is gone: the response closed, or (HTTP/1.1)
 * its socket closed. The socket matters under pipelining: a response queued
 * behind another one on the same socket never emits 'close' of its own.
 * Returns a function that stops watching (call it when the stream ends, so a
 * keep-alive socket does not collect listeners).
 */
export function onClientGone (res: RawResponse, socket: Socket | null | undefined, fn: Gone): () => void {
  let called = false
  const once = (): void => {
    if (called) return
    called = true
    stop()
    fn()
  }
  res.once('close', once)
  const unwatch = !isHttp2Response(res) && socket != null && !socket.destroyed ? onSocketClose(socket, once) : undefined
  const stop = (): void => {
    res.removeListener('close', once)
    unwatch?.()
  }
  if (!isHttp2Response(res) && socket?.destroyed === true) queueMicrotask(once)
  return stop
}
