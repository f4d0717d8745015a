/** Job progress: accessible progress bars and a final result banner. */
import type { Children } from '@kitajs/html'
import { SseSwap } from './sse.js'
import { clamp, escAttr, formatNumber, oneOf } from './util.js'

export interface ProgressBarProps {
  id?: string
  /** Percent complete; clamped to 0..100 (NaN counts as 0). */
  value: number
  label: string
}

/** `role="progressbar"` with aria-valuenow/min/max and a visible percentage. */
export function ProgressBar (props: ProgressBarProps): JSX.Element {
  const pct = Math.round(clamp(props.value, 0, 100))
  return (
    <div id={escAttr(props.id)} class='progress-item'>
      <div class='label' safe>{props.label}</div>
      <div class='progress' role='progressbar' aria-valuenow={pct} aria-valuemin='0' aria-valuemax='100' aria-label={escAttr(props.label)}>
        <div class='bar' style={`width:${pct}%`}></div>
        <span class='pct' safe>{formatNumber(pct, 0) + '%'}</span>
      </div>
    </div>
  )
}

export interface ProgressContainerProps {
  /** Target id (for OOB swaps of single bars, or as the swap target). */
  id?: string
  title?: string
  /** htmx 2 only: the container is an `sse-swap` target for this named event, with `swap` (default 'innerHTML'). */
  event?: string
  swap?: 'innerHTML' | 'beforeend' | 'afterbegin'
  children?: Children
}

/** A titled list of progress bars; optionally an SSE swap target itself. */
export function ProgressContainer (props: ProgressContainerProps): JSX.Element {
  const id = props.id ?? 'progress'
  return (
    <section class='card progress-card'>
      {props.title === undefined ? '' : <h2 safe>{props.title}</h2>}
      {props.event === undefined
        ? (
          <div id={escAttr(id)} class='progress-list'>{props.children}</div>
          )
        : (
          <SseSwap id={id} class='progress-list' event={props.event} swap={props.swap ?? 'innerHTML'}>
            {props.children}
          </SseSwap>
          )}
    </section>
  )
}

export const RESULT_OUTCOMES = ['success', 'error', 'cancelled', 'interrupted'] as const
export type ResultOutcome = typeof RESULT_OUTCOMES[number]

export interface ResultBannerProps {
  id?: string
  outcome: ResultOutcome
  text: string
}

/** Final outcome of a job: `role="status"` (or `role="alert"` for errors). */
export function ResultBanner (props: ResultBannerProps): JSX.Element {
  const outcome = oneOf(props.outcome, RESULT_OUTCOMES, 'outcome')
  return (
    <div id={escAttr(props.id)} class={`banner banner-${outcome}`} role={outcome === 'error' ? 'alert' : 'status'} data-outcome={outcome}>
      <span safe>{props.text}</span>
    </div>
  )
}
