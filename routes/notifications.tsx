/**
 * Notifications: a form posts (level, text); valid ones are published to every
 * open page, invalid ones come back as the form with an inline error and a 422.
 * The feed is pre-rendered from the hub's history, and the page connects with
 * the id that history ended at, so nothing published in between is lost.
 */
import { randomUUID } from 'node:crypto'
import type { SseHub } from '../plugin/index.js'
import { NotificationItem } from '../views/index.js'
import { NotificationFeed, type NotificationLevel } from '../views/notifications.js'
import { Oob, oobContent } from '../views/sse.js'
import { swap422 } from '../views/layout.js'
import { acceptForms, charCount, compileSchema, field, fieldProblems, htmxOf, isHtmx, PageConnect, pageCursor, RoutePage, routeModule, trimFields, trimmedCopy, trusted, upTo, wantsJson, type HtmxOption, type SchemaError } from './util.js'

export const NOTIFICATION_LEVELS: readonly NotificationLevel[] = ['info', 'success', 'warning', 'error']
export const MAX_NOTIFICATION_LENGTH = 500

export interface NotificationsOptions extends HtmxOption {
  /** Hub topic. Default 'notifications'. */
  topic?: string
  /** Items rendered into a fresh page. Default 50. */
  initial?: number
  /** Id of the feed list. Default 'notifications'. */
  feedId?: string
}

export interface NotificationInput {
  level: NotificationLevel
  text: string
}

/** The posted body (form or JSON), checked after its fields are trimmed. */
const notificationBody = {
  type: 'object',
  required: ['level', 'text'],
  properties: {
    level: { type: 'string', enum: NOTIFICATION_LEVELS },
    text: { type: 'string', minLength: 1, maxLength: MAX_NOTIFICATION_LENGTH }
  }
} as const
const FIELDS = ['level', 'text'] as const
const checkNotification = compileSchema(notificationBody)

type NotificationErrors = Partial<Record<'level' | 'text', string>>

/** The user-facing message for each field that failed the schema. */
function notificationErrors (errors: readonly SchemaError[] | null | undefined, body: unknown): NotificationErrors {
  const problems = fieldProblems(errors, FIELDS)
  const out: NotificationErrors = {}
  if (problems.level !== undefined) out.level = `Choose a level: ${NOTIFICATION_LEVELS.join(', ')}.`
  if (problems.text === 'tooLong') out.text = `Keep it under ${MAX_NOTIFICATION_LENGTH} characters (this one has ${charCount(field(body, 'text'))}).`
  else if (problems.text !== undefined) out.text = 'Write a message.'
  return out
}

/** Checks a posted notification (the route's schema, text trimmed): returns the cleaned input or the problem, per field. */
export function validateNotification (body: unknown): { ok: true, value: NotificationInput } | { ok: false, errors: NotificationErrors, level: string, text: string } {
  const input = trimmedCopy(body, FIELDS)
  const level = field(input, 'level')
  const text = field(input, 'text')
  if (checkNotification(input)) return { ok: true, value: { level: level as NotificationLevel, text } }
  return { ok: false, errors: notificationErrors(checkNotification.errors, input), level, text }
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
    <form id='notify-form' class='stack-form' method='post' action={props.action} hx-post={props.action} hx-swap='outerHTML' {...swap422('outerHTML')} aria-invalid={invalid ? 'true' : undefined}>
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

/**
 * Publishes one notification as an unnamed event that prepends its item to
 * the feed (`#<feedId>`, out of band), for htmx 2 and htmx 4 pages alike;
 * resolves with its hub id.
 */
export async function publishNotification (hub: SseHub, input: NotificationInput, options: { topic?: string, feedId?: string } = {}): Promise<string> {
  const item = { id: `note-${randomUUID().slice(0, 8)}`, level: input.level, text: input.text, at: Date.now() }
  const data = <Oob id={options.feedId ?? 'notifications'} swap='afterbegin'><NotificationItem {...item} /></Oob>
  return await hub.publish(options.topic ?? 'notifications', { data })
}

/** The feed as it stands at `cursor`: items newest first, pre-rendered from hub history. */
export async function NotificationsPanel (props: { hub: SseHub, cursor: string | undefined, action: string, topic?: string, initial?: number, feedId?: string }): Promise<string> {
  const history = upTo(await props.hub.history(props.topic ?? 'notifications', { limit: props.initial ?? 50 }), props.cursor)
  // Each event is an out-of-band prepend: the page shows the items themselves.
  const items = history.reverse().map(m => trusted(oobContent(m.data)))
  const feedId = props.feedId ?? 'notifications'
  return (
    <section class='card notifications-card' aria-label='Notifications'>
      <header><h2>Notifications</h2><span class='muted small'>to every open page</span></header>
      <NotificationForm action={props.action} />
      <NotificationFeed id={feedId}>{items}</NotificationFeed>
      {items.length === 0 ? <p class='muted small empty-hint'>No notifications yet.</p> : ''}
    </section>
  )
}

/**
 * `GET /` page, `GET /stream` SSE, `POST /` publish (form or JSON). 422 with the
 * form and inline errors on bad input (the Layout head carries the htmx config
 * that swaps 422s); JSON answers for clients that prefer JSON (see `wantsJson`).
 */
export const notificationsRoutes = routeModule<NotificationsOptions>('notifications', async (app, options) => {
  const topic = options.topic ?? 'notifications'
  const feedId = options.feedId ?? 'notifications'
  const htmx = htmxOf(options)
  const base = app.prefix
  const action = base === '' ? '/' : base
  await acceptForms(app)

  app.post<{ Body: NotificationInput }>('/', {
    schema: { body: notificationBody },
    attachValidation: true,
    preValidation: trimFields(...FIELDS)
  }, async (request, reply) => {
    const fromHtmx = isHtmx(request.headers)
    if (request.validationError !== undefined) {
      const errors = notificationErrors(request.validationError.validation, request.body)
      if (!fromHtmx && wantsJson(request)) return reply.code(422).send({ error: 'invalid notification', fields: errors })
      return reply.code(422).html(<NotificationForm action={action} level={field(request.body, 'level')} text={field(request.body, 'text')} errors={errors} />)
    }
    const { level, text } = request.body
    const id = await publishNotification(app.sseHub, { level, text }, { topic, feedId })
    if (fromHtmx) return reply.html(<NotificationForm action={action} level={level} sent />)
    if (wantsJson(request)) return reply.code(201).send({ id })
    return reply.redirect(action, 303)
  })

  app.get('/stream', (_request, reply) => reply.sse({ topics: [topic] }))

  app.get('/', async (_request, reply) => {
    const cursor = await pageCursor(app.sseHub)
    return reply.html(
      <RoutePage app={app} htmx={htmx} title='Notifications'>
        <header class='app'><h1>Notifications</h1></header>
        <main class='app'>
          <NotificationsPanel hub={app.sseHub} cursor={cursor} action={action} topic={topic} initial={options.initial} feedId={feedId} />
          <PageConnect app={app} htmx={htmx} url={`${base}/stream`} lastEventId={cursor} />
        </main>
      </RoutePage>
    )
  })
})
