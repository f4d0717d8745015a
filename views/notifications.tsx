/** Notification feed: a polite live region that new items are prepended to. */
import { SseSwap } from './sse.js'
import type { Children } from '@kitajs/html'
import { assertDomId, clockTime, escAttr, isoTime, oneOf } from './util.js'

export const NOTIFICATION_LEVEL_NAMES = ['info', 'success', 'warning', 'error'] as const
export type NotificationLevel = typeof NOTIFICATION_LEVEL_NAMES[number]

export interface NotificationItemProps {
  id: string
  level: NotificationLevel
  text: string
  at: Date | number
}

/** One notification `<li>`. */
export function NotificationItem (props: NotificationItemProps): JSX.Element {
  const level = oneOf(props.level, NOTIFICATION_LEVEL_NAMES, 'level')
  return (
    <li id={escAttr(props.id)} class={noteClass(level)} data-level={level}>
      <NotificationContent level={level} text={props.text} at={props.at} />
    </li>
  )
}

/** The class of a notification's `<li>` (for a `<Prepend tag='li' class=…>` that wraps `<NotificationContent>`). */
export function noteClass (level: NotificationLevel): string {
  return `note note-${oneOf(level, NOTIFICATION_LEVEL_NAMES, 'level')}`
}

/** What is inside a notification's `<li>`: level, time, text (escaped). */
export function NotificationContent (props: Omit<NotificationItemProps, 'id'>): JSX.Element {
  const level = oneOf(props.level, NOTIFICATION_LEVEL_NAMES, 'level')
  return (
    <>
      <span class='level'>{level}</span>
      <time datetime={isoTime(props.at)} safe>{clockTime(props.at)}</time>
      <span class='text' safe>{props.text}</span>
    </>
  )
}

export interface NotificationFeedProps {
  /** Target id for out-of-band `afterbegin:#id` swaps. Default 'notifications'. */
  id?: string
  /** Items to render, newest first. */
  items?: readonly NotificationItemProps[]
  /** Items already rendered to HTML (e.g. `sseHub.history()` data), newest first, after `items`: trusted markup. */
  children?: Children
  /** htmx 2 only: the list swaps this named event itself (`sse-swap`, `afterbegin`) inside `<Htmx2SseConnect>`. */
  event?: string
  label?: string
}

/**
 * `<ol aria-live="polite">`, newest on top. Feed it with unnamed
 * `<Oob id="notifications" swap="afterbegin"><NotificationItem …/></Oob>` events
 * (both htmx versions), or, htmx 2 only, with `event` (the list is an `sse-swap` target).
 */
export function NotificationFeed (props: NotificationFeedProps): JSX.Element {
  const id = assertDomId(props.id ?? 'notifications', 'id')
  const items = (props.items ?? []).map((item) => <NotificationItem {...item} />)
  if (props.event !== undefined) {
    return (
      <SseSwap tag='ol' id={id} class='feed' event={props.event} swap='afterbegin' aria-live='polite'>
        {items}
        {props.children}
      </SseSwap>
    )
  }
  return (
    <ol id={id} class='feed' aria-live='polite' aria-label={escAttr(props.label ?? 'Notifications')}>
      {items}
      {props.children}
    </ol>
  )
}
