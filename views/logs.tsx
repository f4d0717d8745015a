/**
 * A live log tail whose DOM stays bounded to N lines without client JavaScript.
 *
 * Why slots: appending lines with `hx-swap="beforeend"` grows the DOM forever, and hiding
 * old lines with CSS (`:nth-last-child(n+N+1) { display: none }`) only hides them — memory
 * and layout cost still grow with every line. Instead the tail is rendered once with N
 * empty slots (`<li id="log-slot-0">` … `<li id="log-slot-{N-1}">`), and line number `seq`
 * is sent as an out-of-band `outerHTML` replacement of slot `seq % N`. The oldest line is
 * overwritten in place, so the page never holds more than N line elements.
 *
 * Slots are reused in ring order, so document order is not time order; each slot carries
 * `style="order:{seq}"` and the list is a flex column, so the newest line renders last.
 * (CSS `order` is an integer; browsers clamp it near 2^31, far beyond any log's length.)
 * The list sits in a `column-reverse` scroller so the view stays pinned to the newest line.
 *
 * Wiring: the page has `<LogTail />` and an `<SseConnect>` for the topic; each
 * (unnamed) event's data is one or more `<LogTailEntry>` fragments.
 */
import { SseSink } from './sse.js'
import { assertDomId, clockTime, escAttr, isoTime, oneOf } from './util.js'
import { SseInvalidPropError } from '../plugin/errors.js'

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const
export type LogLevel = typeof LOG_LEVELS[number]

export interface LogLineProps {
  level: LogLevel
  time: Date | number
  msg: string
}

/** One formatted log line (time, level, message). */
export function LogLine (props: LogLineProps): JSX.Element {
  const level = oneOf(props.level, LOG_LEVELS, 'level')
  return (
    <div class={`log-line log-${level}`}>
      <time datetime={isoTime(props.time)} safe>{clockTime(props.time)}</time>
      <span class='level'>{level}</span>
      <span class='msg' safe>{props.msg}</span>
    </div>
  )
}

/** A log line with its sequence number (0, 1, 2, … in publish order). */
export interface SequencedLogLine extends LogLineProps {
  seq: number
}

/** Id of the slot that line `seq` occupies in a tail of `size` lines. */
export function logSlotId (tailId: string, size: number, seq: number): string {
  const n = checkSize(size)
  if (!Number.isSafeInteger(seq) || seq < 0) throw new SseInvalidPropError(`seq: ${String(seq)} must be a non-negative integer`)
  return `${assertDomId(tailId, 'tailId')}-slot-${seq % n}`
}

function checkSize (size: number): number {
  if (!Number.isSafeInteger(size) || size < 1 || size > 10_000) throw new SseInvalidPropError(`size: ${String(size)} must be an integer in 1..10000`)
  return size
}

function Slot (props: { id: string; line?: SequencedLogLine; oob?: boolean }): JSX.Element {
  const line = props.line
  return (
    <li id={props.id} class='log-slot' hx-swap-oob={props.oob ? 'outerHTML' : undefined} style={line ? `order:${line.seq}` : undefined} data-seq={line?.seq}>
      {line ? <LogLine level={line.level} time={line.time} msg={line.msg} /> : ''}
    </li>
  )
}

export interface LogTailEntryProps {
  /** Id of the `LogTail`. Default 'log'. */
  tailId?: string
  /** The tail's size (must match the `LogTail`). Default 50. */
  size?: number
  line: SequencedLogLine
}

/** The SSE payload for one new line: an OOB `outerHTML` replacement of slot `seq % size`. */
export function LogTailEntry (props: LogTailEntryProps): JSX.Element {
  const id = logSlotId(props.tailId ?? 'log', props.size ?? 50, props.line.seq)
  return <Slot id={id} line={props.line} oob />
}

export interface LogTailProps {
  /** Default 'log'. Slot ids are `${id}-slot-${i}`. */
  id?: string
  /** Lines kept (= slots rendered). Default 50. */
  size?: number
  /** Pre-rendered lines (e.g. from hub history); only the newest `size` are kept. */
  lines?: readonly SequencedLogLine[]
  /** htmx 2 only: a hidden `hx-swap="none"` sink for this named event (inside `<Htmx2SseConnect>`). With `<SseConnect>`, publish the entries unnamed. */
  event?: string
  title?: string
}

/** A bounded log tail: exactly `size` slot elements, filled by `LogTailEntry` OOB swaps. */
export function LogTail (props: LogTailProps): JSX.Element {
  const id = assertDomId(props.id ?? 'log', 'id')
  const size = checkSize(props.size ?? 50)
  const slots: Array<SequencedLogLine | undefined> = new Array<SequencedLogLine | undefined>(size).fill(undefined)
  const lines = [...(props.lines ?? [])].sort((a, b) => a.seq - b.seq).slice(-size)
  for (const line of lines) {
    logSlotId(id, size, line.seq) // validates seq
    slots[line.seq % size] = line
  }
  return (
    <section class='card logs' aria-label={escAttr(props.title ?? 'Log')}>
      {props.title === undefined ? '' : <h2 safe>{props.title}</h2>}
      <div class='log-scroll'>
        <ol id={id} class='log-tail' data-size={size} aria-live='off'>
          {slots.map((line, i) => <Slot id={`${id}-slot-${i}`} line={line} />)}
        </ol>
      </div>
      {props.event === undefined ? '' : <SseSink events={props.event} />}
    </section>
  )
}
