/**
 * SSE wiring for htmx 2 + htmx-ext-sse 2.2.
 *
 * The shapes here encode the rules the extension actually follows:
 * - one connection element (`hx-ext="sse"` + `sse-connect`), never with `sse-swap` on it;
 * - one child per swap target, each with its own `sse-swap` and an explicit `hx-swap`
 *   (`hx-swap` is inherited in htmx 2, so an ancestor's value would otherwise leak in);
 * - a hidden `hx-swap="none"` sink for events that only carry out-of-band fragments;
 * - out-of-band fragments that always carry a target id, with `<template>` for table rows;
 * - `sse-close` on the connection element for streams that finish.
 */
import { createElement, type Children } from '@kitajs/html'
import { assertDomId, assertEventName, cx, escAttr, eventList, oneOf, urlAttr, withQuery, type ClassValue } from './util.js'

/** Swap styles that make sense for an `sse-swap` target. */
export const SSE_SWAP_STYLES = ['innerHTML', 'outerHTML', 'beforeend', 'afterbegin', 'beforebegin', 'afterend', 'none'] as const
export type SseSwapStyle = typeof SSE_SWAP_STYLES[number]

/**
 * Builds a connect URL with `lastEventId` for lossless resume. Topics are not
 * part of it: the route decides what a connection subscribes to
 * (`reply.sse({ topics })`), so a page cannot ask for topics it was not given.
 */
export function sseConnectUrl (url: string, opts: { lastEventId?: string | undefined } = {}): string {
  return withQuery(url, {
    lastEventId: opts.lastEventId === undefined || opts.lastEventId === '' ? undefined : opts.lastEventId
  })
}

/** `{ 'sse-close': eventName }`, to spread on a connection element you write yourself. */
export function sseCloseAttr (eventName: string): { 'sse-close': string } {
  return { 'sse-close': assertEventName(eventName, 'sse-close') }
}

/** The event name the components use by default to end a finished stream. */
export const SSE_CLOSE_EVENT = 'done'

export interface SseConnectProps {
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

/** The connection element: `<div hx-ext="sse" sse-connect="…">`. Swap targets go inside. */
export function SseConnect (props: SseConnectProps): JSX.Element {
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

/** A swap target: an element with `sse-swap` and an explicit `hx-swap`. Must sit inside `<SseConnect>`. */
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
 * A hidden out-of-band sink: `sse-swap` for the listed events with `hx-swap="none"`.
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
   * Wrap in `<template>` so table parts (`<tr>`, `<td>`) survive HTML parsing.
   * Default tag becomes 'tr' for 'true'/'outerHTML' and 'tbody' for the others.
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
  return props.asTableRows ? <template>{fragment}</template> : fragment
}
