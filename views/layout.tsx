/** The page shell: doctype, htmx + SSE extension from local assets, the inline stylesheet. */
import { createRequire } from 'node:module'
import type { Children } from '@kitajs/html'
import { styles } from './styles.js'
import { assertSafeUrl, escAttr, urlAttr, withDoctype } from './util.js'

/** The client files a page needs, as absolute paths inside node_modules (serve them yourself). */
export interface AssetFiles {
  'htmx.min.js': string
  'sse.js': string
}

/**
 * Absolute paths of htmx 2 and htmx-ext-sse, resolved from this package's dependencies,
 * keyed by the file name `<Layout>` requests under `assetsPrefix`. Never a CDN.
 *
 * `clientAssetsRoutes` (`fastify-htmx-sse/routes`) serves exactly these with `@fastify/static`:
 *
 * @example
 *   await app.register(clientAssetsRoutes, { prefix: '/assets' })
 */
export function assetFiles (): AssetFiles {
  const require = createRequire(import.meta.url)
  return {
    'htmx.min.js': require.resolve('htmx.org/dist/htmx.min.js'),
    'sse.js': require.resolve('htmx-ext-sse/dist/sse.js'),
  }
}

export interface LayoutProps {
  /** Page title (escaped). */
  title: string
  /** Extra trusted markup for `<head>`. */
  head?: Children
  /** Where `htmx.min.js` and `sse.js` are served. Default '/assets'. */
  assetsPrefix?: string
  /** URL of the optional resume script (sets `htmx.createEventSource` for lossless reconnects). */
  resumeScript?: string
  /** CSP nonce for the inline `<style>` and the scripts. */
  nonce?: string
  /** `lang` of the document. Default 'en'. */
  lang?: string
  children?: Children
}

/** `<!doctype html>` + html/head/body, with local htmx and the SSE extension. */
export function Layout (props: LayoutProps): JSX.Element {
  const prefix = assertSafeUrl(props.assetsPrefix ?? '/assets', 'assetsPrefix').replace(/\/+$/, '')
  const htmxSrc = urlAttr(`${prefix}/htmx.min.js`, 'assetsPrefix')
  const sseSrc = urlAttr(`${prefix}/sse.js`, 'assetsPrefix')
  const nonce = escAttr(props.nonce)
  const resume = props.resumeScript === undefined ? undefined : urlAttr(props.resumeScript, 'resumeScript')
  return withDoctype(
    <html lang={escAttr(props.lang ?? 'en')}>
      <head>
        <meta charset='utf-8' />
        <meta name='viewport' content='width=device-width, initial-scale=1' />
        <title safe>{props.title}</title>
        <style nonce={nonce}>{styles}</style>
        <script src={htmxSrc} nonce={nonce}></script>
        {/* The resume script goes between htmx and the extension: sse.js keeps an
            htmx.createEventSource that is already set when it initialises. */}
        {resume === undefined ? '' : <script src={resume} nonce={nonce}></script>}
        <script src={sseSrc} nonce={nonce}></script>
        {props.head}
      </head>
      <body>{props.children}</body>
    </html>
  )
}
