// The capacity search: for one number of subscribers and one variant, the
// highest publish rate it sustains (see CapacityScenario), rate by rate on a
// fresh server, stopping at the first rate it misses.
import { measure, type MeasureContext } from './measure.js'
import { fmt, type Row, table, type TargetCheck } from './report.js'
import { type CapacityScenario, capacityStep, MIN_DELIVERED } from './scenarios.js'

export interface CapacityStepResult {
  rate: number
  row: Row
  /** Why this rate was missed; undefined when it was sustained. */
  miss: string | undefined
}

export interface CapacityResult {
  scenario: string
  variant: string
  clients: number
  steps: CapacityStepResult[]
}

/** Why a rate's measurement misses the capacity criteria, or undefined when it meets them. */
export function missOf (c: CapacityScenario, row: Row): string | undefined {
  const why: string[] = []
  if (row.status === 'failed') why.push(`failed: ${row.notes.at(-1) ?? ''}`)
  if (row.connected < c.clients || row.failedConnects > 0) why.push(`${row.connected}/${c.clients} connected`)
  if (row.lost > 0) why.push(`${row.lost} lost`)
  if (!(row.deliveredShare >= MIN_DELIVERED)) why.push(`${fmt(100 * row.deliveredShare, 0)} % delivered`)
  if (!(row.p99 <= c.p99LimitMs)) why.push(`p99 ${fmt(row.p99, 0)} ms`)
  return why.length > 0 ? why.join(', ') : undefined
}

export async function searchCapacity (c: CapacityScenario, variant: string, ctx: MeasureContext): Promise<CapacityResult> {
  const result: CapacityResult = { scenario: c.name, variant, clients: c.clients, steps: [] }
  for (const rate of c.rates) {
    const row = await measure(capacityStep(c, rate), variant, ctx)
    const miss = missOf(c, row)
    result.steps.push({ rate, row, miss })
    ctx.log(`${c.name}/${variant}: ${rate} events/s ${miss === undefined ? 'sustained' : `missed (${miss})`}`)
    if (miss !== undefined) break
  }
  return result
}

/** The highest rate sustained (every lower one was too), or 0. */
export function sustained (r: CapacityResult): CapacityStepResult | undefined {
  let best: CapacityStepResult | undefined
  for (const step of r.steps) {
    if (step.miss !== undefined) break
    best = step
  }
  return best
}

export function capacityTable (markdown: boolean, c: CapacityScenario, results: CapacityResult[]): string {
  const header = ['variant', 'sustained events/s', 'deliveries/s', 'p50 / p99 ms there', 'delivered % there', 'CPU µs/ev there', 'first miss']
  const body = results.map((r) => {
    const best = sustained(r)
    const miss = r.steps.find((s) => s.miss !== undefined)
    const top = c.rates.at(-1)!
    return [
      r.variant,
      best === undefined ? `< ${c.rates[0]}` : miss === undefined && best.rate === top ? `≥ ${top}` : String(best.rate),
      best === undefined ? '–' : Math.round(best.rate * c.clients).toLocaleString('en-US'),
      best === undefined ? '–' : `${fmt(best.row.p50, 0)} / ${fmt(best.row.p99, 0)}`,
      best === undefined ? '–' : fmt(100 * best.row.deliveredShare, 0),
      best === undefined ? '–' : fmt(best.row.cpuUsPerEvent, 2),
      miss === undefined ? '–' : `${miss.rate}/s: ${miss.miss!}`
    ]
  })
  return table(markdown, header, body)
}

/** The capacity targets: ours sustains `minRate` to 10k subscribers, at least `factor` × the best peer. */
export function capacityChecks (results: CapacityResult[], minRate = 50, factor = 5): TargetCheck[] {
  const at = (variant: string): number | undefined => {
    const r = results.find((x) => x.scenario === 'capacity-10k' && x.variant === variant)
    return r === undefined ? undefined : sustained(r)?.rate ?? 0
  }
  const ours = at('ours')
  if (ours === undefined) return []
  const peers = ['raw', 'better-sse', 'fastify-sse'].map(at).filter((x): x is number => x !== undefined)
  const best = peers.length > 0 ? Math.max(...peers) : undefined
  return [{
    target: `capacity-10k: ours sustains ≥ ${minRate} events/s`,
    ours: `${ours} events/s`,
    limit: `${minRate} events/s`,
    pass: ours >= minRate
  }, {
    target: `capacity-10k: ours ≥ ${factor} × the best peer (raw, better-sse, @fastify/sse)`,
    ours: `${ours} events/s`,
    limit: best === undefined ? 'n/a' : `${factor * best} events/s (best ${best})`,
    pass: best === undefined ? null : ours >= factor * best
  }]
}
