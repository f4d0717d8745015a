/**
 * `fastify-htmx-sse/views`: JSX components (@kitajs/html) that render to HTML strings
 * for htmx 2 and htmx 4. Every user string is escaped; URL props accept only
 * http(s) and relative URLs.
 *
 * Every name here is a promise kept under semver: the fragment helpers that
 * events carry, the page layout and connect element, and the cards a page
 * renders, with their props. Constants, validators and the per-target htmx 2
 * components are the modules' own (`reply.live` and the fragments replace them).
 */
export {
  Prepend, Append, Replace, Update, Remove, Items,
  type ListItemProps, type ReplaceProps, type UpdateProps, type RemoveProps, type ItemsProps
} from './fragments.js'
export { Layout, type LayoutProps } from './layout.js'
export { SseConnect, type SseConnectProps } from './sse.js'
export { styles } from './styles.js'
export { MetricCard, type MetricCardProps } from './metrics.js'
export { NotificationItem, type NotificationItemProps } from './notifications.js'
export { ProgressBar, type ProgressBarProps } from './progress.js'
export { MessageCard, type MessageCardProps } from './chat.js'
export {
  AgentTranscript, MessageChunk, ToolCard,
  type AgentTranscriptProps, type MessageChunkProps, type ToolCardProps
} from './agent.js'
export { LogLine, type LogLineProps } from './logs.js'
export { RunDetail, type RunDetailProps } from './run.js'
