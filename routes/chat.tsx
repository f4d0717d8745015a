/**
 * Chat rooms: each room is a hub topic (`chat:<room>`); messages are rendered
 * once (user text escaped by the view's `safe`), appended on every open page,
 * and the room is pre-rendered from history with the connect URL carrying the
 * newest id it shows.
 */
import { randomUUID } from 'node:crypto'
import type { FastifyReply } from 'fastify'
import type { SseHub } from '../plugin/index.js'
import { MessageCard } from '../views/index.js'
import { ChatForm } from '../views/chat.js'
import { Oob, oobContent } from '../views/sse.js'
import { acceptForms, compileSchema, field, fieldProblems, htmxOf, isHtmx, PageConnect, pageCursor, RoutePage, routeModule, trimFields, trimmedCopy, trusted, upTo, wantsJson, type HtmxOption, type SchemaError } from './util.js'

export const ROOM_PATTERN = /^[a-z0-9][a-z0-9-]{0,31}$/
export const MAX_NICK_LENGTH = 32
export const MAX_MESSAGE_LENGTH = 500
const LIST_ID = 'chat-messages'
const ERROR_ID = 'chat-messages-error'

export interface ChatOptions extends HtmxOption {
  /** Topic of a room is `${topicPrefix}${room}`. Default 'chat:'. */
  topicPrefix?: string
  /** Messages pre-rendered into a page. Default 50. */
  initial?: number
  /** Rooms listed on the index page. Default ['lobby', 'random']. */
  rooms?: readonly string[]
}

export function chatTopic (room: string, prefix = 'chat:'): string {
  return prefix + room
}

/** `:room` of every route: a room name, or 404. */
const roomParams = {
  type: 'object',
  required: ['room'],
  properties: { room: { type: 'string', pattern: ROOM_PATTERN.source } }
} as const

/** A posted message (form or JSON), checked after its fields are trimmed. */
const messageBody = {
  type: 'object',
  required: ['nick', 'text'],
  properties: {
    nick: { type: 'string', minLength: 1, maxLength: MAX_NICK_LENGTH },
    text: { type: 'string', minLength: 1, maxLength: MAX_MESSAGE_LENGTH }
  }
} as const
const FIELDS = ['nick', 'text'] as const
const checkMessage = compileSchema(messageBody)

/** The user-facing message for the first field that failed the schema (the nickname first). */
function messageError (errors: readonly SchemaError[] | null | undefined): string {
  const problems = fieldProblems(errors, FIELDS)
  if (problems.nick !== undefined) return problems.nick === 'tooLong' ? `Nicknames are at most ${MAX_NICK_LENGTH} characters.` : 'Pick a nickname.'
  return problems.text === 'tooLong' ? `Messages are at most ${MAX_MESSAGE_LENGTH} characters.` : 'Write a message.'
}

/** Checks a posted message (the route's schema, fields trimmed). */
export function validateMessage (body: unknown): { ok: true, nick: string, text: string } | { ok: false, nick: string, text: string, error: string } {
  const input = trimmedCopy(body, FIELDS)
  const nick = field(input, 'nick')
  const text = field(input, 'text')
  if (checkMessage(input)) return { ok: true, nick, text }
  return { ok: false, nick, text, error: messageError(checkMessage.errors) }
}

const ROOM_ERROR = 'room names are 1-32 of a-z, 0-9 and -'
const roomNotFound = async (reply: FastifyReply): Promise<FastifyReply> => await reply.code(404).send({ error: ROOM_ERROR })

/** Publishes one message to a room, as an unnamed event appending it to the room's list (out of band); resolves with its hub id. */
export async function publishMessage (hub: SseHub, room: string, message: { nick: string, text: string }, options: { topicPrefix?: string } = {}): Promise<string> {
  const card = <MessageCard id={`msg-${randomUUID().slice(0, 12)}`} nick={message.nick} text={message.text} at={Date.now()} />
  return await hub.publish(chatTopic(room, options.topicPrefix), { data: <Oob id={LIST_ID} swap='beforeend'>{card}</Oob> })
}

/** The error line under a room's form (replaced out of band by every post answer). */
function ChatError (props: { id: string, error?: string }): JSX.Element {
  return props.error === undefined
    ? <p id={props.id} class='form-error' role='alert'></p>
    : <p id={props.id} class='form-error' role='alert' safe>{props.error}</p>
}

/** A room as it stands at `cursor`, with its form. Put it inside an `<SseConnect>` subscribed to the room's topic. */
export async function ChatPanel (props: { hub: SseHub, room: string, cursor: string | undefined, action: string, topicPrefix?: string, initial?: number, title?: string, nick?: string }): Promise<string> {
  const history = upTo(await props.hub.history(chatTopic(props.room, props.topicPrefix), { limit: props.initial ?? 50 }), props.cursor)
  const title = props.title ?? `#${props.room}`
  // ChatRoom's markup with its own header, filled with the messages the hub keeps (oldest first).
  return (
    <section class='card chat' aria-label={title}>
      <header><h2 safe>{title}</h2><span class='muted small'>messages are escaped, history replayed</span></header>
      <div class='chat-scroll'>
        <ol id={LIST_ID} class='chat-messages' aria-live='polite'>
          {history.map(m => trusted(oobContent(m.data)))}
        </ol>
      </div>
      <ChatForm action={props.action} nick={props.nick} maxLength={MAX_MESSAGE_LENGTH} />
      <ChatError id={ERROR_ID} />
    </section>
  )
}

/**
 * `GET /` room index, `GET /:room` a room page, `GET /:room/stream` its SSE,
 * `POST /:room/messages` post (answers with a fresh form; 422 and an inline
 * error on bad input; JSON for clients that prefer it, see `wantsJson`). A room
 * name that does not match `ROOM_PATTERN` is a 404.
 */
export const chatRoutes = routeModule<ChatOptions>('chat', async (app, options) => {
  const prefix = options.topicPrefix ?? 'chat:'
  const htmx = htmxOf(options)
  const base = app.prefix
  await acceptForms(app)

  // A bad room name fails the params schema: not a bad request, a room that cannot exist.
  app.setErrorHandler(async (error: { validationContext?: string }, _request, reply) => {
    if (error.validationContext === 'params') return await roomNotFound(reply)
    throw error
  })

  app.post<{ Params: { room: string }, Body: { nick: string, text: string } }>('/:room/messages', {
    schema: { params: roomParams, body: messageBody },
    attachValidation: true,
    preValidation: trimFields(...FIELDS)
  }, async (request, reply) => {
    const { room } = request.params
    const action = `${base}/${room}/messages`
    const invalid = request.validationError
    if (invalid?.validationContext === 'params') return await roomNotFound(reply)
    if (invalid !== undefined) {
      const error = messageError(invalid.validation)
      if (!isHtmx(request.headers) && wantsJson(request)) return reply.code(422).send({ error })
      return reply.code(422).html(
        <>
          <ChatForm action={action} nick={field(request.body, 'nick')} maxLength={MAX_MESSAGE_LENGTH} />
          <Oob id={ERROR_ID} tag='p' class='form-error'><span safe>{error}</span></Oob>
        </>
      )
    }
    const { nick, text } = request.body
    const id = await publishMessage(app.sseHub, room, { nick, text }, { topicPrefix: prefix })
    if (!isHtmx(request.headers)) {
      if (wantsJson(request)) return reply.code(201).send({ id })
      return reply.redirect(`${base}/${room}`, 303)
    }
    return reply.html(
      <>
        <ChatForm action={action} nick={nick} maxLength={MAX_MESSAGE_LENGTH} />
        <Oob id={ERROR_ID} tag='p' class='form-error'></Oob>
      </>
    )
  })

  app.get<{ Params: { room: string } }>('/:room/stream', { schema: { params: roomParams } }, (request, reply) =>
    reply.sse({ topics: [chatTopic(request.params.room, prefix)] }))

  app.get<{ Params: { room: string } }>('/:room', { schema: { params: roomParams } }, async (request, reply) => {
    const { room } = request.params
    const cursor = await pageCursor(app.sseHub)
    return reply.html(
      <RoutePage app={app} htmx={htmx} title={`#${room} · chat`}>
        <header class='app'><h1 safe>{`#${room}`}</h1><a href={base || '/'}>All rooms</a></header>
        <main class='app'>
          <ChatPanel hub={app.sseHub} room={room} cursor={cursor} action={`${base}/${room}/messages`} topicPrefix={prefix} initial={options.initial} />
          <PageConnect app={app} htmx={htmx} url={`${base}/${room}/stream`} lastEventId={cursor} />
        </main>
      </RoutePage>
    )
  })

  app.get('/', async (_request, reply) => {
    const rooms = options.rooms ?? ['lobby', 'random']
    return reply.html(
      <RoutePage app={app} htmx={htmx} title='Chat'>
        <header class='app'><h1>Chat rooms</h1></header>
        <main class='app'>
          <ul class='card room-list'>
            {rooms.map(r => <li><a href={`${base}/${r}`} safe>{`#${r}`}</a></li>)}
          </ul>
        </main>
      </RoutePage>
    )
  })
})
