/**
 * Notifications: a form posts (level, text); valid ones are published to every
 * open page, invalid ones come back as the form with an inline error and a 422.
 * The feed is pre-rendered from the hub's history, and the page connects with
 * the id that history ended at, so nothing published in between is lost.
 */
import { randomUUID } from 'node:crypto'
import type { FastifyPluginAsync } from 'fastify'
import type { SseHub } from '../plugin/index.js'
import { Layout, NotificationFeed, NotificationItem, SseConnect, type NotificationLevel } from '../views/index.js'
import { acceptForms, field, html, RouteHead, isHtmx, pageCursor, trusted, upTo } from './util.js'

export const NOTIFICATION_LEVELS: readonly NotificationLevel[] = ['info', 'success', 'warning', 'error']
export const MAX_NOTIFICATION_LENGTH = 500

export interface NotificationsOptions {
  /** Hub topic. Default 'notifications'. */
  topic?: string
  /** SSE event name the feed swaps on. Default 'notification'. */
  event?: string
  /** Items rendered into a fresh page. Default 50. */
  initial?: number
  /** Id of the feed list. Default 'notifications'. */
  feedId?: string
}

export interface NotificationInput {
  level: NotificationLevel
  text: string
}

/** Checks a posted notification: returns the cleaned input or the problem, per field. */
export function validateNotification (body: unknown): { ok: true, value: NotificationInput } | { ok: false, errors: Partial<Record<'level' | 'text', string>>, level: string, text: string } {
  const level = field(body, 'level')
  const text = field(body, 'text').trim()
  const errors: Partial<Record<'level' | 'text', string>> = {}
  if (!(NOTIFICATION_LEVELS as readonly string[]).includes(level)) errors.level = `Choose a level: ${NOTIFICATION_LEVELS.join(', ')}.`
  if (text.length === 0) errors.text = 'Write a message.'
  else if (text.length > MAX_NOTIFICATION_LENGTH) errors.text = `Keep it under ${MAX_NOTIFICATION_LENGTH} characters (this one has ${text.length}).`
  if (errors.level !== undefined || errors.text !== undefined) return { ok: false, errors, level, text }
  return { ok: true, value: { level: level as NotificationLevel, text } }
}

export interface NotificationFormProps {
  action: string
  level?: string
  text?: string
  errors?: Partial<Record<'level' | 'text', string>>
  /** Shown after a successful post. */
  sent?: boolean
}

/** The post form. It replaces itself with the server's answer (cleared, or with inline errors). */
export function NotificationForm (props: NotificationFormProps): JSX.Element {
  const errors = props.errors ?? {}
  const level = props.level ?? 'info'
  const invalid = errors.level !== undefined || errors.text !== undefined
  return (
    <form id='notify-form' class='stack-form' method='post' action={props.action} hx-post={props.action} hx-swap='outerHTML' aria-invalid={invalid ? 'true' : undefined}>
      <div class='row'>
        <select name='level' aria-label='Level' aria-invalid={errors.level !== undefined ? 'true' : undefined}>
          {NOTIFICATION_LEVELS.map(l => <option value={l} selected={l === level}>{l}</option>)}
        </select>
        <input name='text' aria-label='Notification text' placeholder='Announce something to every open page…' value={props.text ?? ''} autocomplete='off' aria-invalid={errors.text !== undefined ? 'true' : undefined} />
        <button type='submit'>Publish</button>
      </div>
      {errors.level === undefined ? '' : <p class='form-error' role='alert' safe>{errors.level}</p>}
      {errors.text === undefined ? '' : <p class='form-error' role='alert' safe>{errors.text}</p>}
      {props.sent === true ? <p class='form-ok' role='status'>Published.</p> : ''}
    </form>
  )
}

/** Publishes one notification; resolves with its hub id. */
export async function publishNotification (hub: SseHub, input: NotificationInput, options: { topic?: string, event?: string } = {}): Promise<string> {
  const item = { id: `note-${randomUUID().slice(0, 8)}`, level: input.level, text: input.text, at: Date.now() }
  return await hub.publish(options.topic ?? 'notifications', { event: options.event ?? 'notification', data: <NotificationItem {...item} /> })
}

/** The feed as it stands at `cursor`: items newest first, pre-rendered from hub history. */
export async function NotificationsPanel (props: { hub: SseHub, cursor: string | undefined, action: string, topic?: string, event?: string, initial?: number, feedId?: string }): Promise<string> {
  const history = upTo(await props.hub.history(props.topic ?? 'notifications', { limit: props.initial ?? 50 }), props.cursor)
  const items = history.reverse().map(m => trusted(m.data))
  const event = props.event ?? 'notification'
  const feedId = props.feedId ?? 'notifications'
  return (
    <section class='card notifications-card' aria-label='Notifications'>
      <header><h2>Notifications</h2><span class='muted small'>to every open page</span></header>
      <NotificationForm action={props.action} />
      <NotificationFeed id={feedId} event={event}>{items}</NotificationFeed>
      {items.length === 0 ? <p class='muted small empty-hint'>No notifications yet.</p> : ''}
    </section>
  )
}

/**
 * `GET /` page, `GET /stream` SSE, `POST /` publish (form or JSON). 422 with the
 * form and inline errors on bad input (the Layout head carries the htmx config
 * that swaps 422s).
 */
export const notificationsRoutes: FastifyPluginAsync<NotificationsOptions> = async (app, options) => {
  const topic = options.topic ?? 'notifications'
  const event = options.event ?? 'notification'
  const base = app.prefix
  const action = base === '' ? '/' : base
  acceptForms(app)

  app.post('/', async (request, reply) => {
    const result = validateNotification(request.body)
    const htmx = isHtmx(request.headers)
    if (!result.ok) {
      if (!htmx && request.headers['content-type']?.startsWith('application/json') === true) {
        return reply.code(422).send({ error: 'invalid notification', fields: result.errors })
      }
      return html(reply, <NotificationForm action={action} level={result.level} text={result.text} errors={result.errors} />, 422)
    }
    const id = await publishNotification(app.sseHub, result.value, { topic, event })
    if (htmx) return html(reply, <NotificationForm action={action} level={result.value.level} sent />)
    if (request.headers['content-type']?.startsWith('application/json') === true) return reply.code(201).send({ id })
    return reply.redirect(action, 303)
  })

  app.get('/stream', (_request, reply) => reply.sse({ topics: [topic] }))

  app.get('/', async (_request, reply) => {
    const cursor = await pageCursor(app.sseHub)
    return html(reply, (
      <Layout title='Notifications' resumeScript='/_sse/resume.js' head={<RouteHead />}>
        <header class='app'><h1>Notifications</h1></header>
        <main class='app'>
          <SseConnect url={`${base}/stream`} lastEventId={cursor}>
            <NotificationsPanel hub={app.sseHub} cursor={cursor} action={action} topic={topic} event={event} initial={options.initial} feedId={options.feedId} />
          </SseConnect>
        </main>
      </Layout>
    ))
  })
}
