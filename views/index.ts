/**
 * `fastify-htmx-sse/views`: JSX components (@kitajs/html) that render to HTML strings
 * for htmx 2 + htmx-ext-sse. Every user string is escaped; URL props accept only
 * http(s) and relative URLs.
 */
export * from './sse.js'
export * from './fragments.js'
export * from './layout.js'
export * from './metrics.js'
export * from './notifications.js'
export * from './progress.js'
export * from './chat.js'
export * from './agent.js'
export * from './logs.js'
export * from './run.js'
export * from './jobs.js'
export { styles } from './styles.js'
export {
  assertDomId,
  assertEventName,
  assertSafeUrl,
  clockTime,
  cx,
  formatNumber,
  isoTime,
  oneOf,
  withQuery,
  type ClassValue,
} from './util.js'
