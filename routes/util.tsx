/**
 * Small pieces shared by the route modules: a ref-count of watchers that
 * starts and stops a loop, the page "cursor" (which hub id a pre-rendered page
 * reflects), a guard for trusted HTML from the hub, and the Fastify plugins
 * and helpers the modules' forms and pages use.
 */
import fastifyAccepts from '@fastify/accepts'
import fastifyFormbody from '@fastify/formbody'
import { fastifyKitaHtml } from '@kitajs/fastify-html-plugin'
import { Ajv } from 'ajv'
import type { FastifyError, FastifyInstance, FastifyPluginAsync, FastifyPluginOptions, FastifyReply, FastifyRequest } from 'fastify'
import { sameOriginHook } from './same-origin.js'
import fp from 'fastify-plugin'
import type { HubMessage, SseHub } from '../plugin/index.js'
import { parseId } from '../plugin/transport.js'
import { routeStyles } from './styles.js'
import type { Children } from '@kitajs/html'
import { Layout, SseConnect } from '../views/index.js'
import { htmxVersion, type HtmxVersion } from '../views/sse.js'

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

/**
 * Wraps a route module: it must be registered after the core plugin (a clear
 * error at registration otherwise), keeps its own scope (`prefix` works, its
 * hooks and parsers stay inside), and gets `reply.html()` (from
 * `@kitajs/fastify-html-plugin`, unless the app already has it).
 */
export function routeModule<Options extends FastifyPluginOptions> (name: string, plugin: FastifyPluginAsync<Options>): FastifyPluginAsync<Options> {
  const wrapped: FastifyPluginAsync<Options> = async (app, options) => {
    if (!app.hasReplyDecorator('html')) await app.register(fastifyKitaHtml)
    // Forms of other sites must not publish here (CSRF).
    app.addHook('onRequest', sameOriginHook())
    app.setErrorHandler(unavailableHandler)
    // The module in a child scope: an error handler of its own passes what it
    // does not handle up to this one.
    await app.register(async child => await plugin(child, options))
  }
  return fp(wrapped, { fastify: '5.x', name: `fastify-htmx-sse/routes/${name}`, dependencies: ['fastify-htmx-sse'], encapsulate: true })
}

/**
 * A 503 from the hub (Redis unavailable, connection limits, shutdown) or the
 * run store (unreachable) is a clean "try again" with Retry-After, not the
 * internal message; every other error goes on to the app's error handler.
 */
function unavailableHandler (this: FastifyInstance, err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  // The run store's outage (RedisRunStore) is the same kind of "try again".
  if (err.statusCode !== 503 && err.code !== 'HTMX_SSE_RUN_STORE_UNAVAILABLE') throw err
  if (reply.getHeader('retry-after') === undefined) reply.header('retry-after', '2')
  request.log.warn({ code: err.code, reason: err.message }, 'service unavailable')
  void reply.code(503).send({ statusCode: 503, error: 'Service Unavailable', message: 'temporarily unavailable, try again in a moment' })
}

/** Route schemas are checked with every error reported (Fastify's default stops at the first), so a form can flag each field. */
const ajv = new Ajv({ allErrors: true })

/** A compiled schema check, shared by a route's `schema` and the module's exported `validate…` function. */
export const compileSchema = (schema: object): ReturnType<Ajv['compile']> => ajv.compile(schema)

/**
 * What a module with forms needs, in its own scope unless the app already has it:
 * urlencoded bodies (`@fastify/formbody`, 16 KiB), `request.accepts()`
 * (`@fastify/accepts`), and the validator that reports every field's problem.
 */
export async function acceptForms (app: FastifyInstance): Promise<void> {
  if (!app.hasContentTypeParser('application/x-www-form-urlencoded')) await app.register(fastifyFormbody, { bodyLimit: 16 * 1024 })
  if (!app.hasRequestDecorator('accepts')) await app.register(fastifyAccepts)
  app.setValidatorCompiler(({ schema }) => compileSchema(schema))
}

/** A `preValidation` hook that trims these string fields of the body and the querystring, so schemas check the trimmed text. */
export function trimFields (...names: string[]): (request: FastifyRequest) => Promise<void> {
  return async request => {
    for (const part of [request.body, request.query]) {
      if (part !== null && typeof part === 'object') trimIn(part as Record<string, unknown>, names)
    }
  }
}

/** A shallow copy of `value` with these string fields trimmed (for the exported `validate…` functions). */
export function trimmedCopy (value: unknown, names: readonly string[]): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value
  return trimIn({ ...value }, names)
}

function trimIn (record: Record<string, unknown>, names: readonly string[]): Record<string, unknown> {
  for (const name of names) {
    const value = record[name]
    if (typeof value === 'string') record[name] = value.trim()
  }
  return record
}

/** One Ajv error, as Fastify attaches them (`request.validationError.validation`). */
export interface SchemaError {
  keyword: string
  instancePath: string
  params: Record<string, unknown>
}

/**
 * The first problem of each field in a schema check's errors: `tooLong`
 * (maxLength) or `invalid` (missing, empty, wrong type, not allowed). An error
 * on the value itself (not an object) marks every one of `fields`.
 */
export function fieldProblems<F extends string> (errors: readonly SchemaError[] | null | undefined, fields: readonly F[]): Partial<Record<F, 'tooLong' | 'invalid'>> {
  const problems: Partial<Record<F, 'tooLong' | 'invalid'>> = {}
  for (const error of errors ?? []) {
    const name = error.keyword === 'required' ? String(error.params.missingProperty) : error.instancePath.split('/')[1] ?? ''
    for (const field of fields) {
      if (name === '' || name === field) problems[field] ??= error.keyword === 'maxLength' ? 'tooLong' : 'invalid'
    }
  }
  return problems
}

/** Characters as a schema's `maxLength` counts them (code points). */
export const charCount = (text: string): number => [...text].length

/** A string field of a parsed form or JSON body ('' when missing). */
export function field (body: unknown, name: string): string {
  if (body === null || typeof body !== 'object') return ''
  const value = (body as Record<string, unknown>)[name]
  return typeof value === 'string' ? value : ''
}

/**
 * Whether to answer JSON: when the client prefers `application/json` to
 * `text/html` in `Accept`. A client that takes both alike (a wildcard Accept,
 * or none, as curl and fetch send) gets the format it posted: JSON for a JSON
 * body, HTML for a form.
 */
export function wantsJson (request: FastifyRequest): boolean {
  const sentJson = request.headers['content-type']?.startsWith('application/json') === true
  return request.accepts().type(sentJson ? ['json', 'html'] : ['html', 'json']) === 'json'
}

/** True for requests made by htmx (`HX-Request: true`). */
export function isHtmx (headers: Record<string, unknown>): boolean {
  return headers['hx-request'] === 'true'
}

/** The resume script `Layout` should load: the core plugin's `resumeScriptPath`, or none when it is off. */
export function resumeScriptOf (app: FastifyInstance): string | undefined {
  const path = app.htmxSse.resumeScriptPath
  return path === false ? undefined : path
}

/** The route modules' extra stylesheet (a constant of this package, not user input). */
export function RouteStyles (props: { nonce?: string }): JSX.Element {
  return <style nonce={props.nonce}>{trusted(routeStyles)}</style>
}

/** What every route module takes to pick the htmx major of its pages (2 by default). */
export interface HtmxOption {
  /** The htmx major the module's pages load and speak: 2 (htmx 2.0.x + htmx-ext-sse, default) or 4 (htmx 4.0.x + hx-sse). */
  htmx?: HtmxVersion
}

/** The htmx major of a module's options, checked. */
export function htmxOf (options: HtmxOption): HtmxVersion {
  return htmxVersion(options.htmx ?? 2, 'option htmx')
}

/**
 * A route module's page: `Layout` for the module's htmx version, with the
 * resume script (htmx 2, at the plugin's `resumeScriptPath`) and the route styles.
 */
export function RoutePage (props: { app: FastifyInstance, htmx: HtmxVersion, title: string, head?: Children, children?: Children }): JSX.Element {
  return (
    <Layout htmx={props.htmx} title={props.title} resumeScript={props.htmx === 2 ? resumeScriptOf(props.app) : undefined} head={<><RouteStyles />{props.head}</>}>
      {props.children}
    </Layout>
  )
}

/** The page's connection element for the module's htmx version (htmx 4: `reset` reloads through the plugin's `refreshPath`). */
export function PageConnect (props: { app: FastifyInstance, htmx: HtmxVersion, url: string, lastEventId?: string | undefined, closeOn?: string, id?: string }): JSX.Element {
  const refresh = props.app.htmxSse.refreshPath
  return (
    <SseConnect
      htmx={props.htmx} id={props.id} url={props.url} lastEventId={props.lastEventId} closeOn={props.closeOn}
      resetUrl={props.htmx === 4 && refresh !== false ? refresh : undefined}
    />
  )
}
