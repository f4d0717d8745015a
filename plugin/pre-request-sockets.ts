/**
 * Sockets a browser opened speculatively and never sent a request on.
 *
 * Chromium keeps a spare connection open per origin. Node's
 * `closeIdleConnections()` (what Fastify's default `forceCloseConnections:
 * 'idle'` calls) does not count a socket that has not begun a request as idle
 * (nodejs/node#63452), so one visit from Chromium holds `app.close()` until
 * `headersTimeout` reaps it — a minute or more. No request can be lost by
 * closing such a socket, so on close we do.
 */
import type { Server as HttpServer } from 'node:http'
import type { Socket } from 'node:net'
import { Server as TlsServer } from 'node:tls'

const GRACE_MS = 500

/** @internal */
export class PreRequestSockets {
  readonly #waiting = new Set<Socket>()
  readonly #tls: boolean
  #closing = false

  constructor (server: HttpServer) {
    // https emits the TLS socket on `secureConnection`; that is the one a request arrives on.
    this.#tls = server instanceof TlsServer
    const event = this.#tls ? 'secureConnection' : 'connection'
    server.on(event, (socket: Socket) => {
      this.#waiting.add(socket)
      socket.once('close', () => this.#waiting.delete(socket))
      // While closing, a client that connects to send a request gets Fastify's
      // 503; one that connects to send nothing gets a moment, then is let go.
      if (this.#closing) setTimeout(() => { this.#reap(socket) }, GRACE_MS).unref()
    })
    server.on('request', (request: { socket: Socket }) => { this.#waiting.delete(request.socket) })
  }

  /** Destroys every socket that has not begun a request, now and (after a grace) from here on. */
  close (): void {
    this.#closing = true
    for (const socket of this.#waiting) this.#reap(socket)
  }

  #reap (socket: Socket): void {
    // A plain socket that has read bytes is mid-request: leave it to finish.
    if (this.#waiting.has(socket) && (this.#tls || socket.bytesRead === 0)) socket.destroy()
  }

  get size (): number { return this.#waiting.size }
}
