/** The page shell: doctype, the live page's scripts, the inline stylesheet. */
import type { Children } from '@kitajs/html'
import { styles } from './styles.js'
import { htmxVersion, type HtmxVersion } from './sse.js'
import { escAttr, withDoctype } from './util.js'
import { SseInvalidPropError } from '../plugin/errors.js'

/**
 * The `htmx-config` each version needs for the route modules' forms: answer
 * invalid input with a 422 and the re-rendered form, swapped like a success,
 * while other errors swap nothing. htmx 2 does not swap 4xx by default
 * (`responseHandling` below adds 422); htmx 4 swaps every status by default,
 * so 4xx/5xx are turned off here and a form opts in with
 * `hx-status:422` (`swap422()`).
 */
export function htmxConfig (htmx: HtmxVersion): Record<string, unknown> {
  if (htmxVersion(htmx) === 4) return { noSwap: [204, 304, '4xx', '5xx'] }
  return {
    responseHandling: [
      { code: '204', swap: false },
      { code: '[23]..', swap: true },
      { code: '422', swap: true, error: false },
      { code: '[45]..', swap: false, error: true },
      { code: '...', swap: false }
    ]
  }
}

/** htmx 4: `hx-status:422="swap:<style>"` for a form that answers invalid input with a 422 (htmx 2 ignores it; its config swaps 422). */
export function swap422 (style: 'outerHTML' | 'innerHTML'): Record<'hx-status:422', string> {
  return { 'hx-status:422': `swap:${style}` }
}

const TAG = /<([a-zA-Z][\w:-]*)((?:\s+[^\s"'>/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*)\s*\/?>/g
const ATTR = /\s+([^\s"'>/=]+)(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?/g
// Connection markup only: a close attribute of the other major on a form is
// ignored by this one (the agent form carries `hx-sse:close` for htmx 4).
const HTMX2_ONLY = new Set(['sse-connect', 'sse-swap'])
const HTMX4_ONLY = new Set(['hx-sse:connect'])

/**
 * The SSE dialects a page's markup uses, read from attribute names in tags
 * (not from text or attribute values, so user content cannot trip it).
 */
export function sseDialects (html: string): Set<HtmxVersion> {
  const found = new Set<HtmxVersion>()
  for (const tag of html.matchAll(TAG)) {
    for (const attr of (tag[2] ?? '').matchAll(ATTR)) {
      const name = attr[1]!.toLowerCase()
      if (HTMX2_ONLY.has(name)) found.add(2)
      else if (HTMX4_ONLY.has(name)) found.add(4)
    }
  }
  return found
}

function assertDialect (html: string, htmx: HtmxVersion): string {
  const other = htmx === 2 ? 4 : 2
  if (sseDialects(html).has(other)) {
    throw new SseInvalidPropError(`Layout: the page loads htmx ${htmx} but contains htmx ${other} SSE markup (${other === 2 ? 'sse-connect/sse-swap' : 'hx-sse:connect'}); render its connection with live.element`)
  }
  return html
}

/** What `Layout` needs of a live page (`await reply.live(topics)`): its scripts, and its element to tell its htmx major. */
export interface LayoutLive {
  readonly scripts: Children
  readonly element: Children
  /** The major, when `element` is empty (scripts for a page that follows no topic). */
  readonly htmx?: HtmxVersion
}

export interface LayoutProps {
  /** Page title (escaped). */
  title: string
  /**
   * The page's `reply.live(…)`: its scripts (htmx, its SSE extension, and for
   * htmx 2 the resume script) go in `<head>`. Put `live.element` in the body
   * yourself. Without it the page loads no script (a static page).
   */
  live?: LayoutLive
  /** No dashboard stylesheet and no `htmx-config` unless `config` is given: the shell and the scripts only. */
  bare?: boolean
  /** Extra trusted markup for `<head>`. */
  head?: Children
  /** `htmx-config` (merged over `htmxConfig(htmx)`; bare pages: this alone), or false for none. */
  config?: Record<string, unknown> | false
  /** CSP nonce for the inline `<style>`. */
  nonce?: string
  /** `lang` of the document. Default 'en'. */
  lang?: string
  children?: Children
}

/** The htmx major of a live page's markup (its connect element), or undefined for none. */
function liveMajor (live: LayoutLive | undefined): HtmxVersion | undefined {
  if (live === undefined) return undefined
  if (live.htmx !== undefined) return htmxVersion(live.htmx, 'live.htmx')
  const found = sseDialects(String(live.element))
  if (found.size !== 1) throw new SseInvalidPropError('Layout: live must be what reply.live() returned')
  return [...found][0]
}

/**
 * `<!doctype html>` + html/head/body with the live page's scripts. A page
 * that mixes in the other major's SSE markup is a render error, not a page
 * that silently never updates.
 */
export function Layout (props: LayoutProps): JSX.Element {
  const htmx = liveMajor(props.live)
  const nonce = escAttr(props.nonce)
  const base = htmx === undefined || props.bare === true ? {} : htmxConfig(htmx)
  const merged = props.config === false ? undefined : { ...base, ...props.config }
  const config = merged === undefined || Object.keys(merged).length === 0 ? undefined : escAttr(JSON.stringify(merged))
  const page = withDoctype(
    <html lang={escAttr(props.lang ?? 'en')}>
      <head>
        <meta charset='utf-8' />
        <meta name='viewport' content='width=device-width, initial-scale=1' />
        <title safe>{props.title}</title>
        {config === undefined ? '' : <meta name='htmx-config' content={config} />}
        {props.bare === true ? '' : <style nonce={nonce}>{styles}</style>}
        {props.live?.scripts ?? ''}
        {props.head}
      </head>
      <body>{props.children}</body>
    </html>
  )
  if (htmx === undefined) return page
  return typeof page === 'string' ? assertDialect(page, htmx) : page.then(html => assertDialect(html, htmx))
}
