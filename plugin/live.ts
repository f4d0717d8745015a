/**
 * Live pages: `reply.live(topics)` signs the page's topics into the URL of
 * the plugin's one stream route and returns the markup the page needs, with
 * everything lossless resume needs built in, for the app's htmx major:
 *
 * - the cursor (the hub's head) is read before the page reads its data, so
 *   anything published while the page renders is replayed on connect (the
 *   fragments are idempotent, so an item both rendered and replayed appears once);
 * - htmx 2: `scripts` loads htmx, the resume script (EventSource reconnects
 *   carry `lastEventId`; a `reset` reloads the page) and htmx-ext-sse; the
 *   resume script marks its connections, and the stream route refuses an
 *   htmx 2 connection without that mark, so a page that forgot `scripts` fails
 *   loudly (a 400 in the console and the log) instead of missing events;
 * - htmx 4: the element carries the reset trigger that fetches the refresh
 *   route (`HX-Refresh`), htmx 4 sends Last-Event-ID by itself.
 *
 * The stream route checks the signature before any byte: a tampered or
 * foreign token is a 403; an expired one gets a `reset` event, so the old
 * tab reloads and renders a fresh token.
 */
import type { Children } from '@kitajs/html'
import type { FastifyInstance, FastifyReply } from 'fastify'
import { assetScripts } from './assets.js'
import type { SseCounters } from './counters.js'
import { SseInvalidTokenError } from './errors.js'
import type { SseHub } from './hub.js'
import { signTopics, verifyTopics, type HtmxMajor } from './live-token.js'
import { RESUME_MARK } from './resume.js'
import { topicsOf } from './reply.js'
import { eventNameProblem } from './encode.js'
import { parseId } from './transport.js'
import * as option from './options.js'

export interface LiveOptions {
  /**
   * Go live after this hub id instead of the head: for a page that renders
   * state which is not idempotent to replay (appended text) up to an event it
   * knows, e.g. the last stored entry of a run. The page then gets exactly
   * what came after it. Default: the hub's head, read now.
   */
  since?: string
  /** Event name after which the page stops listening for good, e.g. `'done'` for a finished run. */
  closeOn?: string
  /** How long the page's signed topics stay valid; an older tab reloads on its next reconnect. Default: the plugin's `liveTtlMs`. */
  ttlMs?: number
  /** This page's htmx major, for apps moving page by page. Default: the plugin's `htmx`. */
  htmx?: HtmxMajor
}

/**
 * Typed as `Children` (trusted markup) so `{live.element}` passes `xss-scan`: it is the plugin's own markup, every value in it escaped.
 */
export interface LivePage {
  /** The hidden connect element: put it once in the page's `<body>`. */
  readonly element: Children
  /** The `<script>` tags of htmx and its SSE extension (and, htmx 2, the resume script): put them in `<head>`. */
  readonly scripts: Children
  /** The stream URL (signed topics and the cursor), for pages that write their own connect element. */
  readonly url: string
  /** The hub id the page reflects (read before the page's data), or undefined on an empty hub. */
  readonly cursor: string | undefined
}

export interface LiveSettings {
  readonly htmx: HtmxMajor
  readonly secrets: readonly Buffer[]
  /** No `secret` option: a random one of this process, so tokens of a previous process are expected. */
  readonly ownSecret: boolean
  readonly ttlMs: number
  readonly streamPath: string
  readonly assetsPath: string
  readonly resumeScriptPath: string
  readonly refreshPath: string
  /** Where refused and expired tokens are counted. */
  readonly counters: SseCounters
}

/** Every key of LiveOptions: the compiler refuses this object when one is missing or extra. */
const LIVE_OPTION_KEYS = Object.keys({ since: 0, closeOn: 0, ttlMs: 0, htmx: 0 } satisfies Record<keyof LiveOptions, 0>)

const RESET_EVENT = 'reset'
const EXPIRED_DATA = 'this page\'s live token expired; reload'

/** Escapes a value for a double-quoted attribute (all of ours are URLs and event names, but never trust that). */
function attr (value: string): string {
  return value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

export async function livePage (hub: SseHub, settings: LiveSettings, topics: readonly string[], options: LiveOptions = {}): Promise<LivePage> {
  const list = topicsOf({ topics })
  option.onlyKnown(options, LIVE_OPTION_KEYS, 'reply.live')
  const htmx = option.oneOf('htmx (reply.live)', options.htmx, [2, 4] as const, settings.htmx)
  const ttlMs = option.duration('ttlMs (reply.live)', options.ttlMs, settings.ttlMs, 1000)
  const closeOn = options.closeOn
  const problem = closeOn === undefined ? undefined : eventNameProblem(closeOn)
  if (problem !== undefined) throw option.invalidOption('closeOn (reply.live)', problem)
  if (options.since !== undefined && parseId(options.since) === undefined) throw option.invalidOption('since (reply.live)', `must be a hub id (a decimal integer string), got ${JSON.stringify(options.since)}`)
  // First: whatever is published from now on is replayed to the page.
  const cursor = options.since ?? await hub.head()
  const token = signTopics(settings.secrets, { topics: list, htmx, expires: Date.now() + ttlMs })
  const query = new URLSearchParams({ t: token })
  if (cursor !== undefined) query.set('lastEventId', cursor)
  const url = `${settings.streamPath}?${query.toString()}`
  const close = closeOn === undefined ? '' : htmx === 2 ? ` sse-close="${attr(closeOn)}"` : ` hx-sse:close="${attr(closeOn)}"`
  const [htmxFile, extFile] = assetScripts(htmx)
  const src = (file: string): string => `<script src="${attr(`${settings.assetsPath}/${file}`)}"></script>`
  let element: string
  let scripts: string
  if (htmx === 2) {
    element = `<div hidden hx-ext="sse" sse-connect="${attr(url)}" sse-swap="message" hx-swap="none"${close}></div>`
    // The resume script sits between htmx and the extension: sse.js keeps an htmx.createEventSource already set.
    scripts = src(htmxFile) + `<script src="${attr(settings.resumeScriptPath)}"></script>` + src(extFile)
  } else {
    const reset = `<div hidden hx-get="${attr(settings.refreshPath)}" hx-trigger="${attr(`${RESET_EVENT} from:"closest [data-sse-connect]"`)}" hx-swap="none"></div>`
    element = `<div hidden data-sse-connect hx-sse:connect="${attr(url)}" hx-swap="none"${close}>${reset}</div>`
    scripts = src(htmxFile) + src(extFile)
  }
  return { element, scripts, url, cursor }
}

function expired (reply: FastifyReply): unknown {
  const stream = reply.sse()
  void stream.send({ event: RESET_EVENT, data: EXPIRED_DATA })
  stream.close()
  return stream
}

/** The one stream route of live pages: verify, then subscribe. */
export function liveStreamRoute (app: FastifyInstance, settings: LiveSettings, openTopics: (reply: FastifyReply, topics: readonly string[]) => unknown): void {
  app.get(settings.streamPath, (request, reply) => {
    const query = request.query as Record<string, unknown>
    const result = verifyTopics(settings.secrets, query.t)
    if (!result.ok && !result.expired) {
      // Without a configured secret, a token from before a restart cannot be
      // told from a forged one; a reload (the reset) is what that page needs,
      // and a reset carries nothing a forger could use.
      if (!settings.ownSecret || typeof query.t !== 'string' || !query.t.startsWith('v1.')) {
        settings.counters.tokensInvalid++
        throw new SseInvalidTokenError(result.problem)
      }
      settings.counters.tokensExpired++
      request.log.info('sse: live token not signed by this process (no `secret` option, restarted?); the page gets reset and reloads')
      return expired(reply)
    }
    if (result.claims.htmx === 2 && query[RESUME_MARK] === undefined) {
      // htmx 2 without the resume script reconnects from the page's first
      // cursor and loses what it missed: refuse, loudly, instead.
      return reply.code(400).type('text/plain; charset=utf-8')
        .send('fastify-htmx-sse: this htmx 2 live page does not load the resume script; put live.scripts in its <head>')
    }
    if (!result.ok) {
      settings.counters.tokensExpired++
      return expired(reply)
    }
    return openTopics(reply, result.claims.topics)
  })
}
