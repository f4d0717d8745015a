/**
 * Fragment helpers: `<Prepend>`, `<Append>`, `<Replace>`, `<Update>`, `<Remove>`.
 *
 * Each renders the data of one UNNAMED SSE event: out-of-band parts
 * (`hx-swap-oob`) that target elements by id, so htmx 2.0.x (htmx-ext-sse)
 * and htmx 4.0.x (hx-sse) apply the same bytes. No script, no page setup
 * beyond the list itself: `<Prepend to='orders' id='order-7'>` needs an
 * element `#orders` whose items are its direct children with their ids.
 *
 * Why these parts (read from the clients' code, not their docs):
 *
 * - htmx 2 `oobSwap` resolves each part's selector when that part runs, in
 *   document order, so a part sees what the parts before it did; a selector
 *   that matches nothing fires `htmx:oobErrorNoTarget` (logged with
 *   console.error). It splits the selector at the FIRST ':' and then on commas
 *   (`querySelectorAllExt`) and swaps into EVERY element that matches.
 * - htmx 4 `#processOOB` resolves the selectors of ALL parts first
 *   (`#createOOBTask` → `#findAllExt`), then runs the tasks in order; a
 *   selector that matches nothing makes no task, silently. It splits
 *   `style:selector` with `/^(\S+):(.+)/`: greedy up to the last ':' before
 *   the first whitespace, so `afterbegin:#l:not(…)` would split inside the
 *   selector. Every value here has a space after its first ':'
 *   (`afterbegin: #l…`), which both clients trim.
 *
 * So a part must do the right thing whether it is evaluated before the other
 * parts ran (htmx 4) or after (htmx 2), and, for htmx 2, always match
 * something. Prepend (Append likewise with `beforeend`):
 *
 * 1. `afterbegin: #to:not(:has(> #id)), #to > #id` with the item: inserted at
 *    the top when the list lacks it; otherwise it lands, transiently, INSIDE
 *    the existing item, which part 2 replaces.
 * 2. `outerHTML: #to > #id` with the item: replaces the existing item in
 *    place (htmx 4: only if it existed before; htmx 2: always, part 1 made
 *    sure one exists, so a fresh insert is replaced by the same markup).
 * 3. with `limit`: `delete: #to > :nth-child(n+N of :not(#id))` drops the
 *    other items past N-1; it ignores `#id`, so it selects the same elements
 *    before and after the insert.
 *
 * Re-applying an item therefore keeps ONE element with its id, at its
 * position, with the newest content (newest content wins, nothing jumps).
 *
 * A delete that may match nothing (a limit not reached, a Remove of a missing
 * id) also targets a sink the event ships itself: part 0 appends
 * `<template data-sse-sink>` to `<head>`, and the delete's selector list ends
 * with `head > template[data-sse-sink]`. htmx 2 deletes that sink in the same
 * event; htmx 4 resolved the delete before the sink existed, so it keeps the
 * last event's sink (an empty template in head) and deletes it with the next
 * one: at most one per such part of the latest event.
 *
 * Table rows (`tag='tr'`): wrappers are `<tbody>` so the HTML parser keeps the
 * rows; a row fragment must come FIRST in its event's data (the parser picks
 * its mode from the first element).
 */
import { createElement, type Children } from '@kitajs/html'
import { OOB_TAGS, type OobTag } from './sse.js'
import { assertDomId, cx, escAttr, oneOf, type ClassValue } from './util.js'
import { SseInvalidPropError } from '../plugin/errors.js'
import { FRAGMENT_SINK_ATTR } from '../plugin/fragment-sink.js'

const SINK_SELECTOR = `head > template[${FRAGMENT_SINK_ATTR}]`

/** Elements an item of a `<Prepend>`/`<Append>` list can be. */
export const ITEM_TAGS = ['div', 'li', 'tr', 'article', 'section', 'p'] as const
export type ItemTag = typeof ITEM_TAGS[number]

/** The largest `limit` accepted: a live list longer than this is a bug, not a setting. */
export const MAX_LIST_LIMIT = 10_000

export interface ListItemProps {
  /** Id of the list element (its items are its direct children). */
  to: string
  /** Id of the item: the element the helper wraps the children in. */
  id: string
  /** The item element: 'div' (default), 'li' (in ul/ol), 'tr' (in tbody), 'article', 'section', 'p'. */
  tag?: ItemTag
  /** Class of the item element. */
  class?: ClassValue
  /** Keep at most this many items in the list after the insert (an integer from 1). */
  limit?: number
  /** The item's content (trusted markup, as with every JSX child). */
  children?: Children
}

function listLimit (value: unknown): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_LIST_LIMIT) {
    throw new SseInvalidPropError(`limit: ${JSON.stringify(value) ?? String(value)} is not an integer from 1 to ${MAX_LIST_LIMIT}`)
  }
  return value
}

/** The oob wrapper a part's content travels in: `<tbody>` around rows, so the parser keeps them. */
function wrapper (rows: boolean): 'tbody' | 'div' {
  return rows ? 'tbody' : 'div'
}

/** Part 0 of a delete that may match nothing: a sink for it to match (see the file comment). */
function sink (rows: boolean): JSX.Element {
  return createElement(wrapper(rows), { 'hx-swap-oob': 'beforeend: head' }, createElement('template', { [FRAGMENT_SINK_ATTR]: true }))
}

/** Concatenates rendered parts, staying synchronous unless a child was async. */
function join (...parts: JSX.Element[]): JSX.Element {
  if (parts.every((p): p is string => typeof p === 'string')) return parts.join('')
  return Promise.all(parts).then(all => all.join(''))
}

/** A delete of everything `selector` matches, silent when that is nothing. */
function deleteAll (selector: string, rows: boolean): JSX.Element {
  return join(sink(rows), createElement(wrapper(rows), { 'hx-swap-oob': `delete: ${selector}, ${SINK_SELECTOR}` }))
}

function listItem (props: ListItemProps, at: 'afterbegin' | 'beforeend'): JSX.Element {
  const to = assertDomId(props.to, 'to')
  const id = assertDomId(props.id, 'id')
  if (to === id) throw new SseInvalidPropError(`id: the item id must differ from the list id (both ${JSON.stringify(id)})`)
  const tag = oneOf(props.tag ?? 'div', ITEM_TAGS, 'tag')
  const limit = listLimit(props.limit)
  const cls = props.class === undefined ? undefined : cx(props.class) || undefined
  const rows = tag === 'tr'
  const children = props.children
  const item = (attrs: Record<string, string>): JSX.Element => createElement(tag, { id, class: escAttr(cls), ...attrs }, children)
  const insert = createElement(wrapper(rows), { 'hx-swap-oob': `${at}: #${to}:not(:has(> #${id})), #${to} > #${id}` }, item({}))
  const replace = item({ 'hx-swap-oob': `outerHTML: #${to} > #${id}` })
  // A row after the first part parses only inside a table section; both clients apply a nested oob part (htmx 2: allowNestedOobSwaps, on by default).
  const parts = [insert, rows ? createElement('tbody', {}, replace) : replace]
  if (limit !== undefined) {
    const others = `${at === 'afterbegin' ? 'nth-child' : 'nth-last-child'}(n+${limit} of :not(#${id}))`
    parts.push(deleteAll(`#${to} > :${others}`, rows))
  }
  return join(...parts)
}

/**
 * Inserts an item at the start of `#to`, once: if `#to` already has a child
 * `#id` (the page rendered it, or the event is replayed), that element is
 * replaced in place with this content instead. With `limit`, the list then
 * keeps its first `limit` items (the oldest, at the end, are dropped).
 *
 * @example <Prepend to='orders' id={`order-${o.id}`} tag='li' limit={20}><OrderRow {...o} /></Prepend>
 */
export function Prepend (props: ListItemProps): JSX.Element {
  return listItem(props, 'afterbegin')
}

/**
 * `<Prepend>` at the end: inserts at the end of `#to`, or replaces the
 * existing `#id` child in place. With `limit`, keeps the last `limit` items
 * (the oldest, at the start, are dropped).
 */
export function Append (props: ListItemProps): JSX.Element {
  return listItem(props, 'beforeend')
}

export interface ReplaceProps {
  /** Id of the element to replace; the replacement keeps it, so later events find it again. */
  id: string
  /** The replacing element. Default 'div'. 'tr' must come first in its event's data. */
  tag?: OobTag
  class?: ClassValue
  /** The new content (trusted markup). */
  children?: Children
}

/**
 * Replaces `#id` (outerHTML) with `<tag id>children</tag>`. The element must
 * be on the page: htmx 2 reports a missing one (`htmx:oobErrorNoTarget`), htmx 4 skips it.
 */
export function Replace (props: ReplaceProps): JSX.Element {
  const id = assertDomId(props.id, 'id')
  const tag = oneOf(props.tag ?? 'div', OOB_TAGS, 'tag')
  const cls = props.class === undefined ? undefined : cx(props.class) || undefined
  return createElement(tag, { id, class: escAttr(cls), 'hx-swap-oob': `outerHTML: #${id}` }, props.children)
}

/** What an `<Update>`'s children are, which decides how they are parsed. */
export const UPDATE_CONTENTS = ['flow', 'rows', 'cells'] as const
export type UpdateContent = typeof UPDATE_CONTENTS[number]

export interface UpdateProps {
  /** Id of the element whose content is replaced. */
  id: string
  /**
   * 'flow' (default): ordinary markup; 'rows': `<tr>`s for a table section;
   * 'cells': `<td>`/`<th>`s for a row. Rows and cells must come first in their event's data.
   */
  content?: UpdateContent
  /** The new content (trusted markup). */
  children?: Children
}

/**
 * Replaces the content of `#id` (innerHTML); the element itself, its id and
 * attributes stay. Like `<Replace>`, the element must be on the page.
 */
export function Update (props: UpdateProps): JSX.Element {
  const id = assertDomId(props.id, 'id')
  const content = oneOf(props.content ?? 'flow', UPDATE_CONTENTS, 'content')
  const tag = content === 'rows' ? 'tbody' : content === 'cells' ? 'tr' : 'div'
  return createElement(tag, { 'hx-swap-oob': `innerHTML: #${id}` }, props.children)
}

export interface RemoveProps {
  /** Id of the element to delete; nothing happens, and nothing is reported, if there is none. */
  id: string
  children?: never
}

/** Deletes `#id` if it is on the page; silent (in both htmx majors) if it is not. */
export function Remove (props: RemoveProps): JSX.Element {
  const id = assertDomId(props.id, 'id')
  if (props.children !== undefined) throw new SseInvalidPropError('Remove: no children')
  return deleteAll(`#${id}`, false)
}

const LIST_PART = /^<(div|tbody) hx-swap-oob="(afterbegin|beforeend): #([A-Za-z][\w-]*):not\(:has\(> #([A-Za-z][\w-]*)\)\), #\3 > #\4">/

/** The item a `<Prepend>`/`<Append>` event carries, and where it goes; undefined for any other event. */
function listItemOf (data: string): { id: string, at: 'afterbegin' | 'beforeend', html: string } | undefined {
  const m = LIST_PART.exec(data)
  if (m === null) return undefined
  const [open, wrap, at, to, id] = m as unknown as [string, string, 'afterbegin' | 'beforeend', string, string]
  // The insert part ends where the replace part (the same item, out of band) begins.
  const replace = data.indexOf(` hx-swap-oob="outerHTML: #${to} > #${id}">`, open.length)
  const close = replace < 0 ? -1 : data.lastIndexOf(`</${wrap}>`, data.lastIndexOf('<', replace))
  if (close < open.length) return undefined
  return { id, at, html: data.slice(open.length, close) }
}

export interface ItemsProps {
  /** Events of a list topic, oldest first (`(await app.sseHub.snapshot(topic)).items`). */
  of: ReadonlyArray<{ readonly data: string }>
}

/**
 * The items that `<Prepend>`/`<Append>` events put in a list, rendered as the
 * list shows them (Prepend's newest first, Append's oldest first; an item
 * published again appears once, with its newest content), so a page whose
 * state is the hub's history renders it with `snapshot()` and this. Other
 * events are skipped. The items are markup this app rendered and published.
 */
export function Items (props: ItemsProps): JSX.Element {
  const order: string[] = []
  const html = new Map<string, string>()
  for (const message of props.of) {
    const item = listItemOf(message.data)
    if (item === undefined) continue
    if (!html.has(item.id)) {
      if (item.at === 'afterbegin') order.unshift(item.id)
      else order.push(item.id)
    }
    html.set(item.id, item.html)
  }
  return order.map(id => html.get(id)!).join('')
}
