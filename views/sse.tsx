/**
 * SSE wiring for htmx 2 (htmx-ext-sse 2.2) and htmx 4 (its `hx-sse` extension),
 * from one wire format.
 *
 * What both versions apply, from the same bytes:
 * - every DOM update is an UNNAMED event whose HTML targets itself by id
 *   (`<Oob>`: `hx-swap-oob`); htmx 4 swaps only unnamed events (named ones are
 *   DOM events), htmx 2 routes them with `sse-swap="message"`;
 * - control events (`done`, `reset`) are named and carry data;
 * - the page has one hidden connection element, a sink whose own swap is
 *   `none` (`<SseConnect htmx={2|4}>`); only its markup differs by version.
 *
 * htmx 2 only: `<Htmx2SseConnect>` with `<SseSwap>` children routes named
 * events to targets (`sse-swap`), for pages that want that style. htmx 4
 * ignores `sse-swap` (it logs "sse-swap is removed in htmx 4").
 */
import { createElement, type Children } from '@kitajs/html'
import { assertDomId, assertEventName, cx, escAttr, eventList, oneOf, urlAttr, withQuery, type ClassValue } from './util.js'
import { SseInvalidPropError } from '../plugin/errors.js'

/** The htmx majors the views speak. */
export const HTMX_VERSIONS = [2, 4] as const
export type HtmxVersion = typeof HTMX_VERSIONS[number]

/** Checks an `htmx` prop: 2 or 4 (a JS caller or a cast may pass anything). */
export function htmxVersion (value: unknown, prop = 'htmx'): HtmxVersion {
  if (value !== 2 && value !== 4) throw new SseInvalidPropError(`${prop}: htmx version must be 2 or 4, got ${JSON.stringify(value)}`)
  return value
}

/** Swap styles that make sense for an `sse-swap` target. */
export const SSE_SWAP_STYLES = ['innerHTML', 'outerHTML', 'beforeend', 'afterbegin', 'beforebegin', 'afterend', 'none'] as const
export type SseSwapStyle = typeof SSE_SWAP_STYLES[number]

/**
 * Builds a connect URL with `lastEventId` for lossless resume (first connects
 * cannot send the header). Topics are not part of it: the route decides what
 * a connection subscribes to (`reply.sse({ topics })`).
 */
export function sseConnectUrl (url: string, opts: { lastEventId?: string | undefined } = {}): string {
  return withQuery(url, {
    lastEventId: opts.lastEventId === undefined || opts.lastEventId === '' ? undefined : opts.lastEventId
  })
}

/** `{ 'sse-close': eventName }`, to spread on an htmx 2 connection element you write yourself. */
export function sseCloseAttr (eventName: string): { 'sse-close': string } {
  return { 'sse-close': assertEventName(eventName, 'sse-close') }
}

/** The event name the components use by default to end a finished stream. */
export const SSE_CLOSE_EVENT = 'done'

/** Where the plugin answers a reset with `HX-Refresh` unless its `refreshPath` option moved it. */
const DEFAULT_REFRESH_PATH = '/_sse/refresh'

/** The control event the hub sends when history no longer reaches a client's last id. */
export const SSE_RESET_EVENT = 'reset'

export interface SseConnectProps {
  /** The htmx major the page runs (the same as its `Layout`). Default 2. */
  htmx?: HtmxVersion
  /** Stream URL (http(s) or relative); anything else throws. */
  url: string
  /** Id of the newest event the page was rendered from, sent as `?lastEventId=`. */
  lastEventId?: string
  /** Event name after which the browser closes the stream for good, e.g. 'done'. */
  closeOn?: string
  /**
   * htmx 4: a URL that answers `HX-Refresh: true`, fetched when a `reset`
   * event arrives, so the page reloads its state. Default `/_sse/refresh`, the
   * plugin's default `refreshPath` (pass `app.htmxSse.refreshPath` if you moved
   * it). Never omitted: a page that ignores `reset` misses events silently.
   * (htmx 2: the resume script does it.)
   */
  resetUrl?: string
  id?: string
  /** None: the element is a hidden sink; updates target their elements by id. */
  children?: never
  /** Not allowed: the sink's routing is fixed (`sse-swap="message"` in htmx 2; htmx 4 has no sse-swap). */
  'sse-swap'?: never
  /** Not allowed: the sink swaps nothing itself (`hx-swap="none"`); updates are out of band. */
  'hx-swap'?: never
}

/**
 * The page's connection, a hidden sink that applies every unnamed event's
 * out-of-band fragments:
 * - htmx 2: `<div hidden hx-ext="sse" sse-connect=… sse-swap="message" hx-swap="none" sse-close=…>`
 * - htmx 4: `<div hidden hx-sse:connect=… hx-swap="none" hx-sse:close=…>`
 */
export function SseConnect (props: SseConnectProps): JSX.Element {
  const htmx = htmxVersion(props.htmx ?? 2)
  const url = urlAttr(sseConnectUrl(props.url, { lastEventId: props.lastEventId }), 'url')
  const close = props.closeOn === undefined ? undefined : assertEventName(props.closeOn, 'closeOn')
  const id = props.id === undefined ? undefined : assertDomId(props.id, 'id')
  if (props.children !== undefined) throw new SseInvalidPropError('SseConnect: no children (updates target their elements by id); for sse-swap targets use <Htmx2SseConnect>')
  if (htmx === 2) {
    return <div id={id} hidden hx-ext='sse' sse-connect={url} sse-swap='message' hx-swap='none' sse-close={close}></div>
  }
  const reset = createElement('div', {
    hidden: true,
    'hx-get': urlAttr(props.resetUrl ?? DEFAULT_REFRESH_PATH, 'resetUrl'),
    'hx-trigger': `${SSE_RESET_EVENT} from:"closest [data-sse-connect]"`,
    'hx-swap': 'none'
  })
  return createElement('div', { id, hidden: true, 'data-sse-connect': true, 'hx-sse:connect': url, 'hx-swap': 'none', 'hx-sse:close': close }, reset)
}

export interface Htmx2SseConnectProps {
  /** Stream URL (http(s) or relative); anything else throws. */
  url: string
  /** Id of the newest event the page was rendered from, sent as `?lastEventId=`. */
  lastEventId?: string
  /** Event name after which the browser closes the stream (`sse-close`), e.g. 'done'. */
  closeOn?: string
  id?: string
  class?: ClassValue
  children?: Children
  /** Not allowed: `sse-swap` on the connection element swaps the whole subtree. Use `<SseSwap>`. */
  'sse-swap'?: never
  /** Not allowed here: put `hx-swap` on each `<SseSwap>`. */
  'hx-swap'?: never
}

/**
 * htmx 2 only: a connection element that wraps `<SseSwap>` targets, each
 * swapping the named events it lists (`sse-swap`). Unnamed events are not
 * applied here: use `<SseConnect>` for the format both versions share.
 */
export function Htmx2SseConnect (props: Htmx2SseConnectProps): JSX.Element {
  const url = urlAttr(sseConnectUrl(props.url, { lastEventId: props.lastEventId }), 'url')
  const close = props.closeOn === undefined ? undefined : assertEventName(props.closeOn, 'closeOn')
  const cls = props.class === undefined ? undefined : cx(props.class) || undefined
  return (
    <div id={escAttr(props.id)} class={escAttr(cls)} hx-ext='sse' sse-connect={url} sse-close={close}>
      {props.children}
    </div>
  )
}

/** Tags allowed as swap targets. */
export const SSE_SWAP_TAGS = ['div', 'section', 'article', 'aside', 'main', 'ul', 'ol', 'tbody', 'span', 'p', 'output'] as const
export type SseSwapTag = typeof SSE_SWAP_TAGS[number]

export interface SseSwapProps {
  /** Event name(s) to swap on; no commas, whitespace, CR or LF in a name. */
  event: string | readonly [string, ...string[]]
  /** Defaults to 'innerHTML'. With 'outerHTML' the fragment replaces this element, so it must
   *  render its own `<SseSwap>` or later events have nowhere to go. */
  swap?: SseSwapStyle
  id?: string
  tag?: SseSwapTag
  class?: ClassValue
  /** Initial content (trusted markup). */
  children?: Children
  /** Extra ARIA for live regions, e.g. 'polite'. */
  'aria-live'?: 'polite' | 'assertive' | 'off'
}

/** htmx 2 only: a swap target, an element with `sse-swap` and an explicit `hx-swap`. Must sit inside `<Htmx2SseConnect>`. */
export function SseSwap (props: SseSwapProps): JSX.Element {
  const events = eventList(props.event, 'event')
  const cls = props.class === undefined ? undefined : cx(props.class) || undefined
  return createElement(
    oneOf(props.tag ?? 'div', SSE_SWAP_TAGS, 'tag'),
    {
      id: escAttr(props.id),
      class: escAttr(cls),
      'sse-swap': events,
      'hx-swap': oneOf(props.swap ?? 'innerHTML', SSE_SWAP_STYLES, 'swap'),
      'aria-live': props['aria-live'],
    },
    props.children
  )
}

export interface SseSinkProps {
  /** Events whose data only carries `hx-swap-oob` fragments. */
  events: string | readonly [string, ...string[]]
  id?: string
}

/**
 * htmx 2 only: a hidden out-of-band sink for named events, inside `<Htmx2SseConnect>`:
 * `sse-swap` for the listed events with `hx-swap="none"`.
 * htmx still applies every `hx-swap-oob` fragment in the data, and no visible element is
 * blanked by the (empty) main swap.
 */
export function SseSink (props: SseSinkProps): JSX.Element {
  const events = eventList(props.events, 'events')
  return <div id={escAttr(props.id)} class='sse-sink' hidden style='display:none' aria-hidden='true' sse-swap={events} hx-swap='none'></div>
}

/** Out-of-band swap styles. 'true' = 'outerHTML' by id. */
export const OOB_SWAPS = ['true', 'outerHTML', 'innerHTML', 'beforeend', 'afterbegin', 'delete'] as const
export type OobSwap = typeof OOB_SWAPS[number]

/** Wrapper tags for out-of-band fragments. */
export const OOB_ROLES = ['status', 'alert', 'log', 'region'] as const
export const OOB_TAGS = ['div', 'section', 'article', 'span', 'li', 'p', 'ul', 'ol', 'tbody', 'tr'] as const
export type OobTag = typeof OOB_TAGS[number]

export interface OobProps {
  /** Target element id (required: an OOB fragment without a target does nothing). */
  id: string
  /** Default 'true' (replace the element with this id). */
  swap?: OobSwap
  /**
   * Table parts: the fragment is a `<tr>` ('true'/'outerHTML') or a `<tbody>`
   * of rows (the others). Not wrapped in `<template>`: htmx 4 does not look for
   * out-of-band elements inside one. The HTML parser picks its context from the
   * first element of an event's data, so a row fragment must come FIRST in its
   * event (one row fragment per event is the simple rule).
   */
  asTableRows?: boolean
  tag?: OobTag
  /** Class of the replacing element (only meaningful for 'true'/'outerHTML'). */
  class?: ClassValue
  /** ARIA role of the replacing element ('true'/'outerHTML'), so a live region stays one after the swap. */
  role?: typeof OOB_ROLES[number]
  children?: Children
}

/**
 * An out-of-band fragment.
 * - 'true' / 'outerHTML': `<div id="x" hx-swap-oob="true">…</div>` replaces `#x`.
 * - 'innerHTML' / 'beforeend' / 'afterbegin' / 'delete': `<div hx-swap-oob="beforeend:#x">…</div>`;
 *   htmx inserts the wrapper's children into `#x` (the wrapper itself is dropped).
 */
export function Oob (props: OobProps): JSX.Element {
  const id = assertDomId(props.id, 'id')
  const swap = oneOf(props.swap ?? 'true', OOB_SWAPS, 'swap')
  const outer = swap === 'true' || swap === 'outerHTML'
  const tag = oneOf(props.tag ?? (props.asTableRows ? (outer ? 'tr' : 'tbody') : 'div'), OOB_TAGS, 'tag')
  const role = props.role === undefined ? undefined : oneOf(props.role, OOB_ROLES, 'role')
  const cls = outer && props.class !== undefined ? cx(props.class) || undefined : undefined
  const fragment = outer
    ? createElement(tag, { id, class: escAttr(cls), role, 'hx-swap-oob': swap }, props.children)
    : createElement(tag, { 'hx-swap-oob': `${swap}:#${id}` }, props.children)
  return fragment
}

const WRAPPED = /^<([a-z]+) hx-swap-oob="(?:innerHTML|beforeend|afterbegin):#[A-Za-z][A-Za-z0-9_-]*">([\s\S]*)<\/\1>$/

/**
 * The content of an `<Oob swap="beforeend|afterbegin|innerHTML">` fragment,
 * without its wrapper: what a page renders in place when it pre-renders list
 * items from hub history (`history()` keeps the event's data as sent).
 * Anything else comes back unchanged.
 */
export function oobContent (html: string): string {
  const m = WRAPPED.exec(html)
  return m === null ? html : m[2]!
}
