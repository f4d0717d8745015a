/** Chat: message cards, a room that stays scrolled to the newest message without JS, a form. */
import type { Children } from '@kitajs/html'
import { swap422 } from './layout.js'
import { SseSwap } from './sse.js'
import { assertDomId, clockTime, escAttr, isoTime, urlAttr } from './util.js'

export interface MessageCardProps {
  id: string
  nick: string
  text: string
  at: Date | number
}

/** One message `<li>`. */
export function MessageCard (props: MessageCardProps): JSX.Element {
  return (
    <li id={escAttr(props.id)} class='msg'>
      <MessageContent nick={props.nick} text={props.text} at={props.at} />
    </li>
  )
}

/** What is inside a message's `<li class='msg'>`: nick, time, text (escaped), for `<Append tag='li' class='msg'>`. */
export function MessageContent (props: Omit<MessageCardProps, 'id'>): JSX.Element {
  return (
    <>
      <span class='nick' safe>{props.nick}</span>
      <time datetime={isoTime(props.at)} safe>{clockTime(props.at)}</time>
      <p class='text' safe>{props.text}</p>
    </>
  )
}

export interface ChatRoomProps {
  /** Id of the message list (the target of `<Oob id=… swap="beforeend">`). Default 'chat-messages'. */
  id?: string
  /** htmx 2 only: a named event the list swaps itself (`sse-swap`, `beforeend`) inside `<Htmx2SseConnect>`. */
  event?: string
  /** Pre-rendered messages, oldest first. */
  messages?: readonly MessageCardProps[]
  /** Messages already rendered to HTML (e.g. from hub history), oldest first, after `messages`: trusted markup. */
  children?: Children
  title?: string
  /** The form (usually `<ChatForm>`), trusted markup, under the list. */
  form?: Children
}

/**
 * Messages are appended to an `<ol>` (publish `<Oob id="chat-messages" swap="beforeend"><MessageCard/></Oob>`)
 * inside a `flex-direction: column-reverse` scroller: a column-reverse box starts scrolled to its
 * end and stays pinned there as content grows, so the newest message is always in view
 * without client JavaScript (and a reader who scrolled up is not yanked back down).
 */
export function ChatRoom (props: ChatRoomProps): JSX.Element {
  const id = props.id ?? 'chat-messages'
  const messages = <>{(props.messages ?? []).map((m) => <MessageCard {...m} />)}{props.children}</>
  return (
    <section class='card chat' aria-label={escAttr(props.title ?? 'Chat')}>
      {props.title === undefined ? '' : <h2 safe>{props.title}</h2>}
      <div class='chat-scroll'>
        {props.event === undefined
          ? <ol id={assertDomId(id, 'id')} class='chat-messages' aria-live='polite'>{messages}</ol>
          : <SseSwap tag='ol' id={id} class='chat-messages' event={props.event} swap='beforeend' aria-live='polite'>{messages}</SseSwap>}
      </div>
      {props.form}
    </section>
  )
}

export interface ChatFormProps {
  /** POST URL (http(s) or relative). */
  action: string
  id?: string
  /** Prefill for the nickname field. */
  nick?: string
  maxLength?: number
}

/**
 * Posts with htmx (and works as a plain form without it). The handler answers with a
 * fresh `<ChatForm>`, which replaces this one (`hx-swap="outerHTML"`): that clears the
 * input without an inline handler. The message itself arrives over SSE like everyone else's.
 */
export function ChatForm (props: ChatFormProps): JSX.Element {
  const action = urlAttr(props.action, 'action')
  const max = props.maxLength ?? 500
  return (
    <form id={escAttr(props.id ?? 'chat-form')} class='chat-form' method='post' action={action} hx-post={action} hx-swap='outerHTML' {...swap422('outerHTML')}>
      <input name='nick' aria-label='Nickname' placeholder='nick' maxlength='32' required value={escAttr(props.nick ?? '')} size='10' />
      <input name='text' aria-label='Message' placeholder='Say something…' maxlength={String(max)} required autocomplete='off' />
      <button type='submit'>Send</button>
    </form>
  )
}
