/**
 * Small pieces shared by the route modules: a ref-count of watchers that
 * starts and stops a loop, the page "cursor" (which hub id a pre-rendered page
 * reflects), urlencoded form parsing, and a guard for trusted HTML from the hub.
 */
import type { FastifyInstance, FastifyReply } from 'fastify'
import { parseId, type HubMessage, type SseHub } from '../plugin/index.js'
import { routeStyles } from './styles.js'

/**
 * Counts live watchers (SSE streams) and runs `start` with the first and
 * `stop` after the last. Each watcher is identified by its stream's abort
 * signal: the count drops when the signal aborts (client gone, eviction,
 * shutdown), so nothing leaks if a handler forgets to clean up.
 */
export class Watchers {
  #count = 0
  #stopTimer: NodeJS.Timeout | undefined
  #running = false
  #closed = false

  /**
   * @param start called when the first watcher arrives
   * @param stop called when the last watcher has left (after `lingerMs`)
   * @param lingerMs keep running this long after the last watcher left, so a page
   *   reload does not restart (and re-warm) the loop. Default 0.
   */
  constructor (
    readonly start: () => void,
    readonly stop: () => void,
    readonly lingerMs = 0
  ) {}

  get count (): number { return this.#count }
  get running (): boolean { return this.#running }

  /** Adds a watcher for as long as `signal` is not aborted. */
  watch (signal: AbortSignal): void {
    if (this.#closed || signal.aborted) return
    this.#count++
    if (this.#stopTimer !== undefined) {
      clearTimeout(this.#stopTimer)
      this.#stopTimer = undefined
    }
    if (!this.#running) {
      this.#running = true
      this.start()
    }
    signal.addEventListener('abort', () => this.#release(), { once: true })
  }

  /** Stops for good (app close). */
  close (): void {
    this.#closed = true
    if (this.#stopTimer !== undefined) clearTimeout(this.#stopTimer)
    this.#stopTimer = undefined
    if (this.#running) {
      this.#running = false
      this.stop()
    }
  }

  #release (): void {
    this.#count--
    if (this.#count > 0 || !this.#running) return
    if (this.lingerMs <= 0) {
      this.#running = false
      this.stop()
      return
    }
    this.#stopTimer = setTimeout(() => {
      this.#stopTimer = undefined
      if (this.#count === 0 && this.#running) {
        this.#running = false
        this.stop()
      }
    }, this.lingerMs)
    this.#stopTimer.unref()
  }
}

/**
 * The id a pre-rendered page reflects. Read it BEFORE reading any state:
 * every event published after it is replayed on connect, so the page can
 * only miss nothing. Append-style lists must then render only events with an
 * id at or below the cursor (see `upTo`), or the replay would duplicate them.
 */
export async function pageCursor (hub: SseHub): Promise<string | undefined> {
  return await hub.head()
}

/** Messages with an id at or below `cursor` (all of them when there is no cursor). */
export function upTo (messages: readonly HubMessage[], cursor: string | undefined): HubMessage[] {
  const limit = parseId(cursor)
  if (limit === undefined) return [...messages]
  return messages.filter(m => (parseId(m.id) ?? Infinity) <= limit)
}

/**
 * HTML that this app rendered itself and stored in the hub (history). It was
 * escaped when it was rendered, so it is inserted as is.
 */
export function trusted (html: string): JSX.Element {
  return html
}

/**
 * `GET /stream` for a feed that samples only while watched: subscribes the
 * connection to the feed's topic and counts it as a watcher until it closes.
 */
export function watchedStreamRoute (app: FastifyInstance, feed: { topic: string, watch: (signal: AbortSignal) => void }): void {
  app.get('/stream', (_request, reply) => {
    const stream = reply.sse({ topics: [feed.topic] })
    feed.watch(stream.signal)
    return stream
  })
}

/** Parses `application/x-www-form-urlencoded` bodies (htmx's default) in this plugin's scope. */
export function acceptForms (app: FastifyInstance): void {
  const type = 'application/x-www-form-urlencoded'
  if (app.hasContentTypeParser(type)) return
  app.addContentTypeParser(type, { parseAs: 'string', bodyLimit: 16 * 1024 }, (_request, body, done) => {
    const out: Record<string, string> = {}
    for (const [key, value] of new URLSearchParams(body as string)) out[key] = value
    done(null, out)
  })
}

/** A string field of a parsed form or JSON body ('' when missing). */
export function field (body: unknown, name: string): string {
  if (body === null || typeof body !== 'object') return ''
  const value = (body as Record<string, unknown>)[name]
  return typeof value === 'string' ? value : ''
}

/** Sends an HTML fragment or page (awaiting async components). */
export async function html (reply: FastifyReply, body: JSX.Element, status = 200): Promise<FastifyReply> {
  const text = await body
  return await reply.code(status).type('text/html; charset=utf-8').send(text)
}

/** True for requests made by htmx (`HX-Request: true`). */
export function isHtmx (headers: Record<string, unknown>): boolean {
  return headers['hx-request'] === 'true'
}

/**
 * `htmx.config.responseHandling` that also swaps 422 responses, so a form can
 * answer invalid input with its own re-rendered fragment and a 4xx status.
 * htmx 2 does not swap 4xx/5xx by default. Put `<HtmxConfig />` in the layout head.
 */
export const HTMX_CONFIG = JSON.stringify({
  responseHandling: [
    { code: '204', swap: false },
    { code: '[23]..', swap: true },
    { code: '422', swap: true, error: false },
    { code: '[45]..', swap: false, error: true },
    { code: '...', swap: false }
  ]
})

export function HtmxConfig (): JSX.Element {
  return <meta name='htmx-config' content={HTMX_CONFIG} />
}

/** The route modules' extra stylesheet (a constant of this package, not user input). */
export function RouteStyles (props: { nonce?: string }): JSX.Element {
  return <style nonce={props.nonce}>{trusted(routeStyles)}</style>
}

/** What route pages put in `<Layout head>`: the htmx config (422 swaps) and the route styles. */
export function RouteHead (props: { nonce?: string }): JSX.Element {
  return <><HtmxConfig /><RouteStyles nonce={props.nonce} /></>
}
