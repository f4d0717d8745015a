/**
 * A live tail of the app's own log. `LogFeed.stream` is a pino destination
 * (pass it as Fastify's `logger.stream`); each line is echoed to stdout and
 * published on the `logs` topic as an out-of-band slot replacement, so the
 * page holds at most `size` line elements however long it stays open.
 *
 * The tail is shown to every visitor, so what it publishes carries no
 * visitor's data: query strings are cut, and id-like tokens (a private agent
 * run's URL is its only key) are replaced, in paths and messages alike.
 */
import type { SseHub } from '../plugin/hub.js'
import { LogTail, LogTailEntry, type LogLevel, type SequencedLogLine } from '../views/logs.js'
import { RoutePage, routeModule } from './util.js'
import { SseInvalidOptionError } from '../plugin/errors.js'

const LEVELS: Record<number, LogLevel> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' }

/**
 * A token of 8+ word characters mixing letters and digits: run ids
 * (`r` + 16 hex), job ids, UUIDs, tokens. Plain words and plain numbers
 * (ports, counts, timings) are kept. The id of a private run is the key to
 * its page (and its prompt), so none reaches the tail.
 */
const ID_TOKEN = /(?<![\w-])(?=[\w-]*\d)(?=[\w-]*[a-z])[\w-]{8,}(?![\w-])/gi

/** A log line with its id-like tokens replaced (`GET /agent/runs/:id`). */
export function redactIds (text: string): string {
  return text.replace(ID_TOKEN, ':id')
}

function pathOnly (url: string): string {
  const cut = url.search(/[?#]/)
  return cut === -1 ? url : url.slice(0, cut) + '?…'
}

/** A readable one-line message from a pino JSON record (request lines get method, url, status, time). */
export function formatLogRecord (record: Record<string, unknown>): string {
  const parts: string[] = []
  if (typeof record.msg === 'string') parts.push(record.msg)
  const req = record.req as { method?: unknown, url?: unknown } | undefined
  // The path only: a query string is one visitor's data (a prompt, a search)
  // and the tail is shown to every visitor.
  if (req !== undefined && typeof req.method === 'string' && typeof req.url === 'string') parts.push(`${req.method} ${pathOnly(req.url)}`)
  const res = record.res as { statusCode?: unknown } | undefined
  if (res !== undefined && typeof res.statusCode === 'number') parts.push(String(res.statusCode))
  if (typeof record.responseTime === 'number') parts.push(`${record.responseTime.toFixed(1)} ms`)
  if (typeof record.reason === 'string') parts.push(`(${record.reason})`)
  const err = record.err as { message?: unknown } | undefined
  if (err !== undefined && typeof err.message === 'string') parts.push(`: ${err.message}`)
  // Any other path with a query (a 404 message names the URL) loses it too.
  return redactIds(parts.join(' ').replace(/(\/[^\s?#]*)[?#]\S*/g, '$1?…')).slice(0, 2_000)
}

export interface LogFeedOptions {
  /** Hub topic. Default 'logs'. */
  topic?: string
  /** Lines kept, in memory and on the page. Default 50. */
  size?: number
  /** Id of the `LogTail`. Default 'log'. */
  tailId?: string
  /** Also write every line to this stream (default process.stdout); `false` to not echo. */
  echo?: { write: (chunk: string) => unknown } | false
}

/** Collects log lines and publishes them, batched per event-loop turn. */
export class LogFeed {
  readonly topic: string
  readonly size: number
  readonly tailId: string
  /** A pino destination: `Fastify({ logger: { stream: feed.stream } })`. */
  readonly stream: { write: (chunk: string) => void }
  readonly #ring: SequencedLogLine[] = []
  readonly #echo: { write: (chunk: string) => unknown } | false
  #seq = 0
  #hub: SseHub | undefined
  #batch: SequencedLogLine[] = []
  #scheduled = false

  constructor (options: LogFeedOptions = {}) {
    this.topic = options.topic ?? 'logs'
    this.size = options.size ?? 50
    this.tailId = options.tailId ?? 'log'
    this.#echo = options.echo ?? process.stdout
    this.stream = { write: (chunk: string) => this.write(chunk) }
  }

  /** Starts publishing (lines logged before are kept for the first page render). */
  bind (hub: SseHub): void {
    this.#hub = hub
  }

  /** Stops publishing (the hub is closing); lines are still echoed. */
  unbind (): void {
    this.#hub = undefined
    this.#batch = []
  }

  /** The newest lines, oldest first. */
  get lines (): readonly SequencedLogLine[] { return this.#ring }

  write (chunk: string): void {
    if (this.#echo !== false) this.#echo.write(chunk)
    for (const text of chunk.split('\n')) {
      if (text.trim() === '') continue
      let record: Record<string, unknown>
      try {
        record = JSON.parse(text) as Record<string, unknown>
      } catch {
        record = { level: 30, time: Date.now(), msg: text }
      }
      this.add({
        level: LEVELS[record.level as number] ?? 'info',
        time: typeof record.time === 'number' ? record.time : Date.now(),
        msg: formatLogRecord(record)
      })
    }
  }

  /** Adds one line (also usable without pino); its id-like tokens are replaced here too. */
  add (line: { level: LogLevel, time: number, msg: string }): void {
    const sequenced = { ...line, msg: redactIds(line.msg), seq: this.#seq++ }
    this.#ring.push(sequenced)
    if (this.#ring.length > this.size) this.#ring.shift()
    if (this.#hub === undefined) return
    this.#batch.push(sequenced)
    if (!this.#scheduled) {
      this.#scheduled = true
      // One event per turn, and never from inside the logger call: a line
      // logged while publishing cannot recurse into publish.
      setImmediate(() => this.#flush())
    }
  }

  #flush (): void {
    this.#scheduled = false
    const lines = this.#batch.slice(-this.size)
    this.#batch = []
    const hub = this.#hub
    if (hub === undefined || lines.length === 0) return
    const data = <>{lines.map(line => <LogTailEntry tailId={this.tailId} size={this.size} line={line} />)}</>
    hub.publish(this.topic, { data }).catch(() => {
      // The hub is gone or the transport failed; logging that here would feed the loop.
    })
  }

  /** The tail as it stands; the page is live on `topic`. */
  Panel (props: { title?: string } = {}): JSX.Element {
    return <LogTail id={this.tailId} size={this.size} lines={this.#ring} title={props.title ?? 'Server log'} />
  }
}

export interface LogsRoutesOptions {
  /** The feed that receives the app's log lines (its `stream` must be the logger's destination). */
  feed: LogFeed
}

/** `GET /` a live log tail page. */
export const logsRoutes = routeModule<LogsRoutesOptions>('logs', async (app, options) => {
  const feed = options.feed
  if (!(feed instanceof LogFeed)) throw new SseInvalidOptionError('feed (logsRoutes)', 'must be a LogFeed (and its stream the logger destination)')
  feed.bind(app.sseHub)
  app.addHook('preClose', async () => feed.unbind())

  app.get('/', async (_request, reply) => {
    // Lines replace their slot by sequence number, so a line both rendered and replayed shows once.
    const live = await reply.live([feed.topic])
    return reply.html(
      <RoutePage title='Log' live={live}>
        <header class='app'><h1>Server log</h1></header>
        <main class='app'>
          {feed.Panel()}
          {live.element}
        </main>
      </RoutePage>
    )
  })
})
