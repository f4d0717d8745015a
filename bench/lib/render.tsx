// Renders the card published in the render scenario: views' MetricCard when the
// project exports one, else the local stand-in. The choice is reported.
import { LocalMetricCard } from './card.js'

type Renderer = (seq: number) => string | Promise<string>

const sample = (seq: number) => ({
  value: (seq * 7.3) % 100,
  details: [['load 1m', (seq % 13 / 3).toFixed(2)], ['cores', '2'], ['sample', String(seq)]] as Array<[string, string]>
})

/** Props for views' MetricCard (views/metrics.tsx): a CPU card with a 30-sample sparkline. */
function viewsCardProps (seq: number): Record<string, unknown> {
  const s = sample(seq)
  const history = Array.from({ length: 30 }, (_, i) => ((seq + i) * 7.3) % 100)
  return {
    id: 'cpu-card',
    label: 'CPU',
    value: s.value,
    unit: '%',
    precision: 1,
    thresholds: { warn: 70, crit: 90 },
    history,
    historyRange: { min: 0, max: 100 },
    detail: `load ${s.details[0]?.[1] ?? ''} · 2 cores`
  }
}

function local (seq: number): string | Promise<string> {
  const s = sample(seq)
  return LocalMetricCard({ id: 'cpu-card', title: 'CPU', value: s.value, unit: '%', max: 100, details: s.details }) as string | Promise<string>
}

export let cardSource = 'bench/lib/card.tsx (local MetricCard-like component)'
let renderer: Renderer = local

try {
  // A variable specifier: views/ may not exist yet, and tsc must not resolve it.
  const spec = '../../views/index.js'
  const views = await import(spec) as Record<string, unknown>
  const MetricCard = views.MetricCard
  if (typeof MetricCard === 'function') {
    renderer = (seq) => MetricCard(viewsCardProps(seq)) as string | Promise<string>
    cardSource = 'views/index.ts MetricCard'
  }
} catch {
  // views/ not there yet: keep the local component.
}

export function renderCard (seq: number): string | Promise<string> {
  return renderer(seq)
}
