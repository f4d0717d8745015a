/**
 * A live page as its browser would use it: fetch the HTML, read its connect
 * element's URL (the plugin's stream route, signed topics and cursor), and
 * connect there (htmx 2 pages: with the resume script's mark, as it would).
 */
import { connect, request, type ConnectOptions, type SseClient } from './sse-client.js'

/** The stream URL of a page's connect element (either major), absolute, or undefined when it has none. */
export function liveUrl (base: string, html: string): string | undefined {
  const m = / (sse-connect|hx-sse:connect)="([^"]+)"/.exec(html)
  if (m === null) return undefined
  const url = new URL(m[2]!.replaceAll('&amp;', '&'), base)
  if (m[1] === 'sse-connect') url.searchParams.set('sseResume', '1')
  return url.toString()
}

export interface OpenedPage {
  status: number
  html: string
  /** Connects the page's stream; throws when the page has no connect element. */
  connect: (options?: ConnectOptions) => Promise<SseClient>
}

export async function openPage (base: string, path: string): Promise<OpenedPage> {
  const res = await request(base + path)
  return {
    status: res.status,
    html: res.body,
    connect: async (options?: ConnectOptions) => {
      const url = liveUrl(base, res.body)
      if (url === undefined) throw new Error(`${path}: no connect element in the page`)
      return await connect(url, options)
    }
  }
}
