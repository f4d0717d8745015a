/** The page shell: doctype, htmx + SSE extension from local assets, the inline stylesheet. */
import { createRequire } from 'node:module'
import type { Children } from '@kitajs/html'
import { styles } from './styles.js'
import { htmxVersion, type HtmxVersion } from './sse.js'
import { assertSafeUrl, escAttr, urlAttr, withDoctype } from './util.js'

/**
 * The client files a page needs, keyed by the path `<Layout>` requests under
 * `assetsPrefix`, as absolute paths inside node_modules (never a CDN):
 * htmx 2.0.x + htmx-ext-sse (`htmx.min.js`, `sse.js`), and htmx 4.0.x + its
 * `hx-sse` extension (`htmx4/htmx.min.js`, `htmx4/hx-sse.js`). Without a
 * version, both sets.
 *
 * `clientAssetsRoutes` (`fastify-htmx-sse/routes`) serves exactly these with `@fastify/static`:
 *
 * @example
 *   await app.register(clientAssetsRoutes, { prefix: '/assets' })
 */
export function assetFiles (htmx?: HtmxVersion): Record<string, string> {
  const require = createRequire(import.meta.url)
  const two = {
    'htmx.min.js': require.resolve('htmx.org/dist/htmx.min.js'),
    'sse.js': require.resolve('htmx-ext-sse/dist/sse.js')
  }
  const four = {
    'htmx4/htmx.min.js': require.resolve('htmx.org-4/dist/htmx.min.js'),
    'htmx4/hx-sse.js': require.resolve('htmx.org-4/dist/ext/hx-sse.js')
  }
  if (htmx === undefined) return { ...two, ...four }
  return htmxVersion(htmx) === 2 ? two : four
}

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
const HTMX2_ONLY = new Set(['sse-connect', 'sse-swap', 'sse-close'])
const HTMX4_ONLY = new Set(['hx-sse:connect', 'hx-sse:close'])

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
    throw new TypeError(`Layout htmx={${htmx}}: the page contains htmx ${other} SSE markup (${other === 2 ? 'sse-connect/sse-swap/sse-close' : 'hx-sse:connect/hx-sse:close'}); render its connection with <SseConnect htmx={${htmx}}>`)
  }
  return html
}

export interface LayoutProps {
  /** Page title (escaped). */
  title: string
  /** The htmx major the page loads: 2 (htmx 2.0.x + htmx-ext-sse, the default) or 4 (htmx 4.0.x + hx-sse). */
  htmx?: HtmxVersion
  /** Extra trusted markup for `<head>`. */
  head?: Children
  /** Where the client files of `assetFiles()` are served. Default '/assets'. */
  assetsPrefix?: string
  /** htmx 2 only: URL of the resume script (sets `htmx.createEventSource` for lossless reconnects, reloads on `reset`). */
  resumeScript?: string
  /** `htmx-config` (merged over `htmxConfig(htmx)`), or false for none. */
  config?: Record<string, unknown> | false
  /** CSP nonce for the inline `<style>` and the scripts. */
  nonce?: string
  /** `lang` of the document. Default 'en'. */
  lang?: string
  children?: Children
}

/**
 * `<!doctype html>` + html/head/body, with local htmx and its SSE extension
 * for the chosen version. A page that mixes in the other version's SSE
 * markup is a render error, not a page that silently never updates.
 */
export function Layout (props: LayoutProps): JSX.Element {
  const htmx = htmxVersion(props.htmx ?? 2)
  const prefix = assertSafeUrl(props.assetsPrefix ?? '/assets', 'assetsPrefix').replace(/\/+$/, '')
  const [htmxFile, sseFile] = htmx === 2 ? ['htmx.min.js', 'sse.js'] : ['htmx4/htmx.min.js', 'htmx4/hx-sse.js']
  const htmxSrc = urlAttr(`${prefix}/${htmxFile}`, 'assetsPrefix')
  const sseSrc = urlAttr(`${prefix}/${sseFile}`, 'assetsPrefix')
  const nonce = escAttr(props.nonce)
  if (htmx === 4 && props.resumeScript !== undefined) throw new TypeError('Layout htmx={4}: no resumeScript (htmx 4 resumes with Last-Event-ID by itself; the script is for htmx 2)')
  const resume = props.resumeScript === undefined ? undefined : urlAttr(props.resumeScript, 'resumeScript')
  const config = props.config === false ? undefined : escAttr(JSON.stringify({ ...htmxConfig(htmx), ...props.config }))
  const page = withDoctype(
    <html lang={escAttr(props.lang ?? 'en')}>
      <head>
        <meta charset='utf-8' />
        <meta name='viewport' content='width=device-width, initial-scale=1' />
        <title safe>{props.title}</title>
        {config === undefined ? '' : <meta name='htmx-config' content={config} />}
        <style nonce={nonce}>{styles}</style>
        <script src={htmxSrc} nonce={nonce}></script>
        {/* htmx 2: the resume script goes between htmx and the extension: sse.js
            keeps an htmx.createEventSource that is already set when it initialises. */}
        {resume === undefined ? '' : <script src={resume} nonce={nonce}></script>}
        <script src={sseSrc} nonce={nonce}></script>
        {props.head}
      </head>
      <body>{props.children}</body>
    </html>
  )
  return typeof page === 'string' ? assertDialect(page, htmx) : page.then(html => assertDialect(html, htmx))
}
