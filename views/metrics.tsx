/** Metric cards: value with ok/warn/crit status, sparkline, gauge, per-core bars. */
import { clamp, cx, escAttr, formatNumber, type ClassValue } from './util.js'

export type MetricStatus = 'ok' | 'warn' | 'crit' | 'unknown'

/**
 * `warn` < `crit` means higher is worse (CPU %); `warn` > `crit` means lower is worse
 * (free disk %). Non-finite values are 'unknown'.
 */
export interface Thresholds {
  warn: number
  crit: number
}

/** Status of a value against thresholds (no thresholds: 'ok'). */
export function metricStatus (value: number, thresholds?: Thresholds): MetricStatus {
  if (!Number.isFinite(value)) return 'unknown'
  if (!thresholds) return 'ok'
  const { warn, crit } = thresholds
  if (warn <= crit) return value >= crit ? 'crit' : value >= warn ? 'warn' : 'ok'
  return value <= crit ? 'crit' : value <= warn ? 'warn' : 'ok'
}

export interface SparklineProps {
  values: readonly number[]
  /** Keep the last N samples. Default 60. */
  limit?: number
  width?: number
  height?: number
  /** Fixed scale (e.g. 0..100 for percentages); default: the samples' own range. */
  min?: number
  max?: number
  label?: string
}

/** Points for a polyline of the last `limit` finite samples ('' for none). */
export function sparklinePoints (values: readonly number[], opts: { limit?: number; width?: number; height?: number; min?: number; max?: number } = {}): string {
  const width = opts.width ?? 120
  const height = opts.height ?? 32
  const limit = Math.max(1, Math.trunc(opts.limit ?? 60))
  const samples = values.slice(-limit).filter((v) => Number.isFinite(v))
  if (samples.length === 0) return ''
  const lo = opts.min ?? Math.min(...samples)
  const hi = opts.max ?? Math.max(...samples)
  const span = hi - lo
  const y = (v: number): number => {
    if (!(span > 0)) return height / 2
    return round(height - (clamp(v, lo, hi) - lo) / span * height)
  }
  if (samples.length === 1) {
    const only = y(samples[0] as number)
    return `0,${only} ${width},${only}`
  }
  const step = width / (samples.length - 1)
  return samples.map((v, i) => `${round(i * step)},${y(v)}`).join(' ')
}

function round (n: number): number {
  return Math.round(n * 100) / 100
}

/** Inline SVG polyline of recent samples. Handles 0/1 samples and NaN (dropped). */
export function Sparkline (props: SparklineProps): JSX.Element {
  const width = props.width ?? 120
  const height = props.height ?? 32
  const points = sparklinePoints(props.values, { ...props, width, height })
  return (
    <svg class='sparkline' viewBox={`0 0 ${width} ${height}`} preserveAspectRatio='none' role='img' aria-label={escAttr(props.label ?? 'trend')}>
      {points === '' ? '' : <polyline points={points} />}
    </svg>
  )
}

export interface MetricCardProps {
  /** Element id (the card is the unit you swap). */
  id: string
  label: string
  value: number
  unit?: string
  /** Decimal places. Default 1. */
  precision?: number
  thresholds?: Thresholds
  history?: readonly number[]
  /** Fixed sparkline scale, e.g. { min: 0, max: 100 }. */
  historyRange?: { min: number; max: number }
  detail?: string
  class?: ClassValue
}

/** `<article class="card metric status-…">` with value, unit, optional detail and sparkline. */
export function MetricCard (props: MetricCardProps): JSX.Element {
  const status = metricStatus(props.value, props.thresholds)
  return (
    <article id={escAttr(props.id)} class={escAttr(cx('card metric', `status-${status}`, props.class ?? ''))} data-status={status}>
      <header>
        <h2 class='label' safe>{props.label}</h2>
      </header>
      <div>
        <span class='value' safe>{formatNumber(props.value, props.precision ?? 1)}</span>
        {props.unit === undefined ? '' : <span class='unit' safe>{props.unit}</span>}
      </div>
      {props.detail === undefined ? '' : <div class='detail' safe>{props.detail}</div>}
      {props.history === undefined
        ? ''
        : (
          <Sparkline values={props.history} label={`${props.label} trend`} min={props.historyRange?.min} max={props.historyRange?.max} />
          )}
    </article>
  )
}

export interface GaugeProps {
  id?: string
  label: string
  value: number
  min?: number
  /** Default 100. */
  max?: number
  thresholds?: Thresholds
  unit?: string
}

/** A native `<meter>` with a visible label and value (accessible, no script). */
export function Gauge (props: GaugeProps): JSX.Element {
  const min = props.min ?? 0
  const max = props.max ?? 100
  const value = clamp(props.value, min, max)
  const t = props.thresholds
  const higherIsWorse = !t || t.warn <= t.crit
  return (
    <div id={escAttr(props.id)} class={cx('gauge', `status-${metricStatus(props.value, t)}`)}>
      <label>
        <span safe>{props.label}</span>{' '}
        <span class='value' safe>{formatNumber(props.value, 0)}</span>
        {props.unit === undefined ? '' : <span class='unit' safe>{props.unit}</span>}
      </label>
      <meter min={min} max={max} value={value} low={t?.warn} high={t?.crit} optimum={higherIsWorse ? min : max}></meter>
    </div>
  )
}

export interface CoreBarsProps {
  id?: string
  /** Load per core, in percent. */
  cores: readonly number[]
  thresholds?: Thresholds
  label?: string
}

/** One vertical bar per core. */
export function CoreBars (props: CoreBarsProps): JSX.Element {
  const thresholds = props.thresholds ?? { warn: 70, crit: 90 }
  return (
    <ul id={escAttr(props.id)} class='cores' aria-label={escAttr(props.label ?? 'CPU load per core')}>
      {props.cores.map((load, i) => {
        const pct = clamp(load, 0, 100)
        const status = metricStatus(load, thresholds)
        return (
          <li class={status} title={`core ${i}: ${formatNumber(load, 0)}%`}>
            <span class='bar' style={`height:${round(pct)}%`}></span>
          </li>
        )
      })}
    </ul>
  )
}
