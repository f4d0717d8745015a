/**
 * `fastify-htmx-sse/testing`: test an app's live behaviour without a
 * browser, with any test runner (the helpers return values and throw coded
 * errors; none asserts by itself):
 *
 * - `captureBroadcasts(app)`: what routes published to the hub;
 * - `openStream(app, url)`: a real SSE client on a real socket, for a
 *   `reply.sse()` route or a live page (it follows the page's connect element);
 * - `oobParts(event)`: what an event's HTML does to the page
 *   (`{ swap: 'prepend', target: '#orders', html }`).
 */
export { captureBroadcasts } from './capture.js'
export { openStream, type TestEvent } from './stream.js'
export { oobParts, type OobPart } from './oob.js'
