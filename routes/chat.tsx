/**
 * Chat rooms: each room is a hub topic (`chat:<room>`); messages are rendered
 * once (user text escaped by the view's `safe`), appended on every open page,
 * and the room is pre-rendered from history with the connect URL carrying the
 * newest id it shows.
 */
import { randomUUID } from 'node:crypto'
import type { FastifyPluginAsync } from 'fastify'
import type { SseHub } from '../plugin/index.js'
import { ChatForm, Layout, MessageCard, Oob, SseConnect, SseSwap } from '../views/index.js'
import { acceptForms, field, html, RouteHead, isHtmx, pageCursor, trusted, upTo } from './util.js'

export const ROOM_PATTERN = /^[a-z0-9][a-z0-9-]{0,31}$/
export const MAX_NICK_LENGTH = 32
export const MAX_MESSAGE_LENGTH = 500
const LIST_ID = 'chat-messages'
const ERROR_ID = 'chat-messages-error'

export interface ChatOptions {
  /** Topic of a room is `${topicPrefix}${room}`. Default 'chat:'. */
  topicPrefix?: string
  /** SSE event appended to the room. Default 'chat_message'. */
  event?: string
  /** Messages pre-rendered into a page. Default 50. */
  initial?: number
  /** Rooms listed on the index page. Default ['lobby', 'random']. */
  rooms?: readonly string[]
}

export function chatTopic (room: string, prefix = 'chat:'): string {
  return prefix + room
}

export function validateMessage (body: unknown): { ok: true, nick: string, text: string } | { ok: false, nick: string, text: string, error: string } {
  const nick = field(body, 'nick').trim()
  const text = field(body, 'text').trim()
  if (nick.length === 0) return { ok: false, nick, text, error: 'Pick a nickname.' }
  if (nick.length > MAX_NICK_LENGTH) return { ok: false, nick, text, error: `Nicknames are at most ${MAX_NICK_LENGTH} characters.` }
  if (text.length === 0) return { ok: false, nick, text, error: 'Write a message.' }
  if (text.length > MAX_MESSAGE_LENGTH) return { ok: false, nick, text, error: `Messages are at most ${MAX_MESSAGE_LENGTH} characters.` }
  return { ok: true, nick, text }
}

/** Publishes one message to a room; resolves with its hub id. */
export async function publishMessage (hub: SseHub, room: string, message: { nick: string, text: string }, options: { topicPrefix?: string, event?: string } = {}): Promise<string> {
  return await hub.publish(chatTopic(room, options.topicPrefix), {
    event: options.event ?? 'chat_message',
    data: <MessageCard id={`msg-${randomUUID().slice(0, 12)}`} nick={message.nick} text={message.text} at={Date.now()} />
  })
}

/** The error line under a room's form (replaced out of band by every post answer). */
function ChatError (props: { id: string, error?: string }): JSX.Element {
  return props.error === undefined
    ? <p id={props.id} class='form-error' role='alert'></p>
    : <p id={props.id} class='form-error' role='alert' safe>{props.error}</p>
}

/** A room as it stands at `cursor`, with its form. Put it inside an `<SseConnect>` subscribed to the room's topic. */
export async function ChatPanel (props: { hub: SseHub, room: string, cursor: string | undefined, action: string, topicPrefix?: string, event?: string, initial?: number, title?: string, nick?: string }): Promise<string> {
  const history = upTo(await props.hub.history(chatTopic(props.room, props.topicPrefix), { limit: props.initial ?? 50 }), props.cursor)
  const title = props.title ?? `#${props.room}`
  // ChatRoom's markup, filled with the rendered messages the hub keeps (oldest first).
  return (
    <section class='card chat' aria-label={title}>
      <header><h2 safe>{title}</h2><span class='muted small'>messages are escaped, history replayed</span></header>
      <div class='chat-scroll'>
        <SseSwap tag='ol' id={LIST_ID} class='chat-messages' event={props.event ?? 'chat_message'} swap='beforeend' aria-live='polite'>
          {history.map(m => trusted(m.data))}
        </SseSwap>
      </div>
      <ChatForm action={props.action} nick={props.nick} maxLength={MAX_MESSAGE_LENGTH} />
      <ChatError id={ERROR_ID} />
    </section>
  )
}

/**
 * `GET /` room index, `GET /:room` a room page, `GET /:room/stream` its SSE,
 * `POST /:room/messages` post (answers with a fresh form; 422 and an inline
 * error on bad input).
 */
export const chatRoutes: FastifyPluginAsync<ChatOptions> = async (app, options) => {
  const prefix = options.topicPrefix ?? 'chat:'
  const event = options.event ?? 'chat_message'
  const base = app.prefix
  acceptForms(app)

  app.addHook('preHandler', async (request, reply) => {
    const room = (request.params as { room?: string }).room
    if (room !== undefined && !ROOM_PATTERN.test(room)) {
      return await reply.code(404).send({ error: 'room names are 1-32 of a-z, 0-9 and -' })
    }
  })

  app.post<{ Params: { room: string } }>('/:room/messages', async (request, reply) => {
    const { room } = request.params
    const action = `${base}/${room}/messages`
    const result = validateMessage(request.body)
    if (!result.ok) {
      if (!isHtmx(request.headers)) return reply.code(422).send({ error: result.error })
      return html(reply, (
        <>
          <ChatForm action={action} nick={result.nick} maxLength={MAX_MESSAGE_LENGTH} />
          <Oob id={ERROR_ID} tag='p' class='form-error'><span safe>{result.error}</span></Oob>
        </>
      ), 422)
    }
    const id = await publishMessage(app.sseHub, room, result, { topicPrefix: prefix, event })
    if (!isHtmx(request.headers)) {
      if (request.headers['content-type']?.startsWith('application/json') === true) return reply.code(201).send({ id })
      return reply.redirect(`${base}/${room}`, 303)
    }
    return html(reply, (
      <>
        <ChatForm action={action} nick={result.nick} maxLength={MAX_MESSAGE_LENGTH} />
        <Oob id={ERROR_ID} tag='p' class='form-error'></Oob>
      </>
    ))
  })

  app.get<{ Params: { room: string } }>('/:room/stream', (request, reply) =>
    reply.sse({ topics: [chatTopic(request.params.room, prefix)] }))

  app.get<{ Params: { room: string } }>('/:room', async (request, reply) => {
    const { room } = request.params
    const cursor = await pageCursor(app.sseHub)
    return html(reply, (
      <Layout title={`#${room} · chat`} resumeScript='/_sse/resume.js' head={<RouteHead />}>
        <header class='app'><h1 safe>{`#${room}`}</h1><a href={base || '/'}>All rooms</a></header>
        <main class='app'>
          <SseConnect url={`${base}/${room}/stream`} lastEventId={cursor}>
            <ChatPanel hub={app.sseHub} room={room} cursor={cursor} action={`${base}/${room}/messages`} topicPrefix={prefix} event={event} initial={options.initial} />
          </SseConnect>
        </main>
      </Layout>
    ))
  })

  app.get('/', async (_request, reply) => {
    const rooms = options.rooms ?? ['lobby', 'random']
    return html(reply, (
      <Layout title='Chat' head={<RouteHead />}>
        <header class='app'><h1>Chat rooms</h1></header>
        <main class='app'>
          <ul class='card room-list'>
            {rooms.map(r => <li><a href={`${base}/${r}`} safe>{`#${r}`}</a></li>)}
          </ul>
        </main>
      </Layout>
    ))
  })
}
