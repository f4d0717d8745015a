/**
 * `oobParts()`: an event's HTML read as what it does to the page. Each
 * fragment helper renders several out-of-band parts so that htmx 2 and 4
 * both apply it idempotently (views/fragments.tsx says why); a test wants
 * to read "a prepend of `#order-7` to `#orders`", not those mechanics. So
 * the parts of one `<Prepend>`/`<Append>` (insert, in-place replace, the
 * `limit` delete and its sink) are read back as one part, and every other
 * `hx-swap-oob` element, the app's own included, as one part each.
 */
import { FRAGMENT_SINK_ATTR } from '../fragment-sink.js'
import { elements, type Element } from './html.js'

/** One thing an event does to the page. */
export interface OobPart {
  /**
   * `prepend` / `append` (`<Prepend>`/`<Append>`, or an `afterbegin` /
   * `beforeend` part), `replace` (`<Replace>`, outerHTML), `update`
   * (`<Update>`, innerHTML), `remove` (`<Remove>`, delete), or htmx's own
   * swap style for any other part (`beforebegin`, `afterend`, `none`…).
   */
  swap: string
  /** The target's CSS selector: `#orders` for a list, `#cpu` for a Replace. */
  target: string
  /**
   * The markup it puts there: the item (prepend, append), the new element
   * without its `hx-swap-oob` (replace), the new content (update and any
   * other style), `''` for remove.
   */
  html: string
  /** `prepend`/`append` of a fragment helper: the item's id. */
  id?: string
  /** `prepend`/`append` with `limit`: the number of items the list keeps. */
  limit?: number
}

const SINK = `head > template[${FRAGMENT_SINK_ATTR}]`
const LIST_TARGET = /^#([A-Za-z][\w-]*):not\(:has\(> #([A-Za-z][\w-]*)\)\), #\1 > #\2$/
const LIST_LIMIT = /^#([A-Za-z][\w-]*) > :nth(?:-last)?-child\(n\+(\d+) of :not\(#([A-Za-z][\w-]*)\)\)$/
const NAMES: Record<string, string> = { afterbegin: 'prepend', beforeend: 'append', outerhtml: 'replace', innerhtml: 'update', delete: 'remove' }

function oobValue (element: Element): string | undefined {
  return element.attrs.get('hx-swap-oob') ?? element.attrs.get('data-hx-swap-oob')
}

/** The element as htmx swaps it in: its markup without the `hx-swap-oob` attribute. */
function withoutOob (html: string, element: Element): string {
  const span = element.spans.get('hx-swap-oob') ?? element.spans.get('data-hx-swap-oob')!
  return html.slice(element.start, span[0]) + html.slice(span[1], element.end)
}

/**
 * The out-of-band parts of an event's HTML (`event.data`, or the event or
 * broadcast itself), in document order, as `{ swap, target, html }`.
 */
export function oobParts (event: string | { readonly data: string }): OobPart[] {
  const html = typeof event === 'string' ? event : event.data
  const parts: OobPart[] = []
  let list: OobPart | undefined
  let listId: string | undefined
  let listTo: string | undefined
  for (const element of elements(html)) {
    const value = oobValue(element)
    // A part's content is its own: htmx applies an oob element inside one only through its enclosing part.
    if (value === undefined || hasOobAncestor(element)) continue
    const colon = value.indexOf(':')
    const style = value === 'true' ? 'outerHTML' : (colon > 0 ? value.slice(0, colon) : value).trim()
    const selector = value === 'true' || colon <= 0 ? `#${element.attrs.get('id') ?? ''}` : value.slice(colon + 1).trim()
    const inner = html.slice(element.openEnd, element.closeStart)
    const lower = style.toLowerCase()

    if (lower === 'beforeend' && selector === 'head' && elements(inner).some(e => e.name === 'template' && e.attrs.has(FRAGMENT_SINK_ATTR))) continue
    const listMatch = lower === 'afterbegin' || lower === 'beforeend' ? LIST_TARGET.exec(selector) : null
    if (listMatch !== null) {
      listTo = listMatch[1]
      listId = listMatch[2]
      list = { swap: NAMES[lower]!, target: `#${listTo!}`, html: inner, id: listId }
      parts.push(list)
      continue
    }
    if (lower === 'outerhtml' && list !== undefined && selector === `#${listTo!} > #${listId!}`) continue
    if (lower === 'delete') {
      const targets = selector.split(/,\s*/).filter(s => s !== SINK).join(', ')
      const limit = LIST_LIMIT.exec(targets)
      if (limit !== null && list !== undefined && limit[1] === listTo && limit[3] === listId) {
        list.limit = Number(limit[2])
        continue
      }
      parts.push({ swap: 'remove', target: targets, html: '' })
      continue
    }
    list = undefined
    if (lower === 'outerhtml') parts.push({ swap: 'replace', target: selector, html: withoutOob(html, element) })
    else parts.push({ swap: NAMES[lower] ?? style, target: selector, html: inner })
  }
  return parts
}

function hasOobAncestor (element: Element): boolean {
  for (let p = element.parent; p !== undefined; p = p.parent) if (oobValue(p) !== undefined) return true
  return false
}
