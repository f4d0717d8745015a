/**
 * `fastify-htmx-sse/testing`: test an app's live behaviour without a
 * browser, with any test runner (the helpers return values and throw coded
 * errors; none asserts by itself). One name, `sseTest(app)`, whose helpers
 * are:
 *
 * - `captureBroadcasts()`: what routes published to the hub;
 * - `openStream(url)`: a real SSE client on a real socket, for a
 *   `reply.sse()` route or a live page (it follows the page's connect element);
 * - `oobParts(event)`: what an event's HTML does to the page
 *   (`{ swap: 'prepend', target: '#orders', html }`).
 *
 * One exported name, because the package's names are budgeted (every one a
 * semver promise): the helpers are members, as the hub's methods are.
 */
import type { FastifyInstance } from 'fastify'
import { captureBroadcasts, type BroadcastCapture } from './capture.js'
import { oobParts, type OobPart } from './oob.js'
import { openStream, type OpenStreamOptions, type TestStream } from './stream.js'

/** What `sseTest(app)` returns (name it with `ReturnType<typeof sseTest>`). */
interface SseTest {
  /**
   * Records what is published to `app.sseHub` from now on, until `stop()`:
   * `{ topic, id, event, data }`, data being the HTML every subscriber gets.
   */
  captureBroadcasts (): BroadcastCapture
  /**
   * Opens `path` over a real socket (the app listens on a loopback port
   * first if it does not listen yet): a `reply.sse()` route is the stream; a
   * live page is fetched and its connect element's stream opened.
   */
  openStream (path: string, options?: OpenStreamOptions): Promise<TestStream>
  /** What an event's HTML (or the event itself) does to the page: one part per fragment helper or `hx-swap-oob` element. */
  oobParts (event: string | { readonly data: string }): OobPart[]
}

/**
 * The testing helpers for `app` (after the plugin registered).
 *
 * @example
 * const sse = sseTest(app)
 * const broadcasts = sse.captureBroadcasts()
 * const page = await sse.openStream('/orders')
 * await app.inject({ method: 'POST', url: '/orders', payload: { item: 'tea' } })
 * const [part] = sse.oobParts(await broadcasts.next({ topic: 'orders' }))  // { swap: 'prepend', target: '#orders', … }
 * const event = await page.next()
 */
export function sseTest (app: FastifyInstance): SseTest {
  return {
    captureBroadcasts: () => captureBroadcasts(app),
    openStream: async (path, options) => await openStream(app, path, options),
    oobParts
  }
}
