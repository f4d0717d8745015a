// Result rows, target checks and table rendering (aligned text or markdown).

export interface SlowGroup {
  clients: number
  lost: number
  duplicates: number
  outOfOrder: number
  complete: number
  reconnects: number
  p99: number
}

export interface Row {
  scenario: string
  variant: string
  status: 'ok' | 'partial' | 'failed'
  notes: string[]
  requested: number
  connected: number
  failedConnects: number
  connectMs: number
  published: number
  publishMs: number
  meanPublishUs: number
  p99PublishUs: number
  deliveryMs: number
  delivered: number
  eventsPerSec: number
  /** p50, p99 and max leave out the warm-up events (the scenario's first `warmup`). */
  p50: number
  p99: number
  max: number
  /** The p99 of the warm-up events alone. */
  warmP99: number
  /** Paced scenarios: the share of the offered deliveries per second that arrived (see measure.ts). */
  deliveredShare: number
  /** The server's event-loop utilization over the publish phase (the busiest instance). */
  loopElu: number
  lost: number
  duplicates: number
  outOfOrder: number
  other: number
  reconnects: number
  slow: SlowGroup | null
  cpuS: number
  cpuUsPerEvent: number
  /** The kernel's share of cpuS (stime): syscalls and the loopback TCP stack. */
  cpuSysS: number
  /** The server's main thread (its event loop): CPU over the phase ÷ the phase's wall time, 1 = saturated (the busiest instance). */
  loopBusy: number
  /** Redis variants: redis-server's CPU over the same phase (not in cpuS). */
  redisCpuS: number
  /** Several instances: each one's CPU over the events its own clients received. */
  instanceCpuUsPerEvent?: number[]
  /** CPU of all load-generator workers over the same phase (they share the machine). */
  loadgenCpuS: number
  rssIdleMiB: number
  rssConnMiB: number
  rssPeakMiB: number
  kibPerConn: number
  /** Peak RSS over connected RSS, whole measurement. */
  rssGrowthMiB: number
  /** The same, while publishing only (before slow clients resume and replay). */
  rssGrowthPublishMiB: number
}

export function emptyRow (scenario: string, variant: string, requested: number): Row {
  return {
    scenario,
    variant,
    status: 'ok',
    notes: [],
    requested,
    connected: 0,
    failedConnects: 0,
    connectMs: Number.NaN,
    published: 0,
    publishMs: Number.NaN,
    meanPublishUs: Number.NaN,
    p99PublishUs: Number.NaN,
    deliveryMs: Number.NaN,
    delivered: 0,
    eventsPerSec: Number.NaN,
    p50: Number.NaN,
    p99: Number.NaN,
    max: Number.NaN,
    warmP99: Number.NaN,
    deliveredShare: Number.NaN,
    loopElu: Number.NaN,
    lost: 0,
    duplicates: 0,
    outOfOrder: 0,
    other: 0,
    reconnects: 0,
    slow: null,
    cpuS: Number.NaN,
    cpuUsPerEvent: Number.NaN,
    cpuSysS: Number.NaN,
    loopBusy: Number.NaN,
    redisCpuS: Number.NaN,
    loadgenCpuS: Number.NaN,
    rssIdleMiB: Number.NaN,
    rssConnMiB: Number.NaN,
    rssPeakMiB: Number.NaN,
    kibPerConn: Number.NaN,
    rssGrowthMiB: Number.NaN,
    rssGrowthPublishMiB: Number.NaN
  }
}

function median (xs: number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return Number.NaN
  const m = v.length >> 1
  return v.length % 2 === 1 ? v[m]! : (v[m - 1]! + v[m]!) / 2
}

/** Combine repeated runs of one measurement: medians, but the worst run for loss counts. */
export function combineRows (runs: Row[]): Row {
  const first = runs[0]!
  if (runs.length === 1) return first
  const ok = runs.filter((r) => r.status !== 'failed')
  const use = ok.length > 0 ? ok : runs
  const out: Row = { ...first, notes: [] }
  const worst: Array<keyof Row> = ['lost', 'duplicates', 'outOfOrder', 'other', 'reconnects', 'failedConnects']
  for (const key of Object.keys(first) as Array<keyof Row>) {
    const v = first[key]
    if (typeof v !== 'number') continue
    const values = use.map((r) => r[key] as number)
    ;(out as unknown as Record<string, number>)[key] = worst.includes(key) ? Math.max(...values) : median(values)
  }
  out.connected = Math.min(...use.map((r) => r.connected))
  if (first.slow) {
    const slows = use.map((r) => r.slow).filter((x): x is SlowGroup => x !== null)
    out.slow = {
      clients: first.slow.clients,
      lost: Math.max(...slows.map((x) => x.lost)),
      duplicates: Math.max(...slows.map((x) => x.duplicates)),
      outOfOrder: Math.max(...slows.map((x) => x.outOfOrder)),
      complete: Math.min(...slows.map((x) => x.complete)),
      reconnects: Math.max(...slows.map((x) => x.reconnects)),
      p99: median(slows.map((x) => x.p99))
    }
  }
  out.status = runs.some((r) => r.status === 'failed') ? (ok.length > 0 ? 'partial' : 'failed') : runs.some((r) => r.status === 'partial') ? 'partial' : 'ok'
  const failedRuns = runs.length - ok.length
  if (failedRuns > 0) out.notes.push(`${failedRuns}/${runs.length} runs failed`)
  // One note per kind (numbers differ between runs; the JSON keeps every run's notes).
  const seen = new Set<string>()
  for (const note of runs.flatMap((r) => r.notes)) {
    const kind = note.replace(/[\d.]+/g, '#')
    if (seen.has(kind)) continue
    seen.add(kind)
    out.notes.push(runs.length > 1 && runs.filter((r) => r.notes.includes(note)).length < runs.length ? `${note} (run ${runs.findIndex((r) => r.notes.includes(note)) + 1})` : note)
  }
  return out
}

export function fmt (n: number, digits = 1): string {
  if (!Number.isFinite(n)) return '–'
  if (Math.abs(n) >= 100_000) return Math.round(n).toLocaleString('en-US')
  return n.toFixed(digits)
}

export function table (markdown: boolean, header: string[], rows: string[][]): string {
  if (markdown) {
    const esc = (s: string): string => s.replace(/\|/g, '\\|')
    return [
      `| ${header.map(esc).join(' | ')} |`,
      `|${header.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`,
      ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)
    ].join('\n')
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

export function scenarioTable (markdown: boolean, rows: Row[], extra: { slow: boolean, publishP99: boolean }): string {
  const withSlow = extra.slow
  const header = [
    'variant', 'clients', 'connect s', 'publish s', 'events/s', 'delivered %', 'p50 ms', 'p99 ms', 'max ms', 'warm-up p99 ms',
    'lost', 'dup', 'ooo', 'reconn', 'CPU s', 'CPU µs/ev', 'kernel %', 'loop busy %', 'loop ELU %', 'redis CPU s', 'loadgen CPU s', 'RSS idle MiB', 'RSS conn MiB', 'RSS peak MiB',
    'KiB/conn', 'publish µs'
  ]
  if (extra.publishP99) header.push('publish p99 µs')
  if (withSlow) header.push('slow lost', 'slow dup', 'slow done', 'slow reconn', 'RSS growth MiB', 'growth while publishing MiB')
  header.push('notes')
  const body = rows.map((r) => {
    const cells = [
      r.variant,
      `${r.connected}/${r.requested}`,
      fmt(r.connectMs / 1000, 2),
      fmt(r.publishMs / 1000, 2),
      fmt(r.eventsPerSec, 0),
      fmt(100 * r.deliveredShare, 0),
      fmt(r.p50, 2),
      fmt(r.p99, 2),
      fmt(r.max, 1),
      fmt(r.warmP99, 1),
      String(r.lost),
      String(r.duplicates),
      String(r.outOfOrder),
      String(r.reconnects),
      fmt(r.cpuS, 2),
      fmt(r.cpuUsPerEvent, 3),
      fmt((100 * r.cpuSysS) / r.cpuS, 0),
      fmt(100 * r.loopBusy, 0),
      fmt(100 * r.loopElu, 0),
      fmt(r.redisCpuS, 2),
      fmt(r.loadgenCpuS, 2),
      fmt(r.rssIdleMiB, 1),
      fmt(r.rssConnMiB, 1),
      fmt(r.rssPeakMiB, 1),
      fmt(r.kibPerConn, 2),
      fmt(r.meanPublishUs, 0)
    ]
    if (extra.publishP99) cells.push(fmt(r.p99PublishUs, 0))
    if (withSlow) {
      const s = r.slow
      cells.push(s ? String(s.lost) : '–', s ? String(s.duplicates) : '–', s ? `${s.complete}/${s.clients}` : '–',
        s ? String(s.reconnects) : '–', fmt(r.rssGrowthMiB, 1), fmt(r.rssGrowthPublishMiB, 1))
    }
    cells.push([r.status === 'ok' ? '' : r.status.toUpperCase(), ...r.notes].filter(Boolean).join('; '))
    return cells
  })
  return table(markdown, header, body)
}

export function ratioTable (markdown: boolean, rows: Row[]): string {
  const header = ['scenario', 'variant', 'CPU µs/ev', 'CPU µs/ev ÷ raw', 'CPU µs/ev ÷ floor', 'p50 / p99 ms', 'p99 ÷ raw', 'KiB/conn − raw', 'lost']
  const body: string[][] = []
  for (const r of rows) {
    if (r.variant === 'raw') continue
    const raw = rows.find((x) => x.scenario === r.scenario && x.variant === 'raw')
    if (!raw) continue
    const floor = rows.find((x) => x.scenario === r.scenario && x.variant === 'floor')
    body.push([
      r.scenario, r.variant,
      fmt(r.cpuUsPerEvent, 2),
      fmt(r.cpuUsPerEvent / raw.cpuUsPerEvent, 2),
      floor && r !== floor ? fmt(r.cpuUsPerEvent / floor.cpuUsPerEvent, 2) : '–',
      `${fmt(r.p50, 1)} / ${fmt(r.p99, 1)}`,
      fmt(r.p99 / raw.p99, 2),
      fmt(r.kibPerConn - raw.kibPerConn, 2),
      String(r.lost + (r.slow?.lost ?? 0))
    ])
  }
  return table(markdown, header, body)
}

export interface TargetCheck { target: string, ours: string, limit: string, pass: boolean | null }

const MIB = 1024 * 1024

export function targetChecks (rows: Row[], maxBufferedBytes: number): TargetCheck[] {
  const get = (s: string, v: string): Row | undefined => rows.find((r) => r.scenario === s && r.variant === v)
  const checks: TargetCheck[] = []
  const usable = (r: Row | undefined): r is Row => r !== undefined && r.status !== 'failed'
  for (const s of ['burst', 'fanout-10k']) {
    const o = get(s, 'ours')
    const w = get(s, 'raw')
    checks.push({
      target: `${s}: CPU µs per delivered event ≤ 0.5 × raw`,
      ours: usable(o) ? fmt(o.cpuUsPerEvent, 3) : 'n/a',
      limit: usable(w) ? fmt(0.5 * w.cpuUsPerEvent, 3) : 'n/a',
      pass: usable(o) && usable(w) ? o.cpuUsPerEvent <= 0.5 * w.cpuUsPerEvent : null
    })
  }
  {
    // Rests happen only on a saturated loop: the default's tail is the no-rest tail, and the load is delivered.
    const o = get('fanout-10k', 'ours')
    const n = get('fanout-10k', 'ours-norest')
    if (n !== undefined) {
      checks.push({
        target: 'fanout-10k: p99 ≤ 1.1 × ours-norest (restAboveUtilization: 1)',
        ours: usable(o) ? `${fmt(o.p99, 2)} ms` : 'n/a',
        limit: usable(n) ? `${fmt(1.1 * n.p99, 2)} ms` : 'n/a',
        pass: usable(o) && usable(n) ? o.p99 <= 1.1 * n.p99 : null
      })
    }
    checks.push({
      target: 'fanout-10k: ≥ 95 % of the offered deliveries',
      ours: usable(o) ? `${fmt(100 * o.deliveredShare, 1)} %` : 'n/a',
      limit: '95 %',
      pass: usable(o) ? o.deliveredShare >= 0.95 : null
    })
    const o1 = get('fanout-1k', 'ours')
    const w1 = get('fanout-1k', 'raw')
    checks.push({
      target: 'fanout-1k: p99 ≤ 1.1 × raw\'s',
      ours: usable(o1) ? `${fmt(o1.p99, 2)} ms` : 'n/a',
      limit: usable(w1) ? `${fmt(1.1 * w1.p99, 2)} ms` : 'n/a',
      pass: usable(o1) && usable(w1) ? o1.p99 <= 1.1 * w1.p99 : null
    })
  }
  for (const s of ['fanout-1k', 'fanout-10k', 'burst', 'slow']) {
    const o = get(s, 'ours')
    const w = get(s, 'raw')
    checks.push({
      target: `${s}: p99 latency ≤ raw's`,
      ours: usable(o) ? `${fmt(o.p99, 2)} ms` : 'n/a',
      limit: usable(w) ? `${fmt(w.p99, 2)} ms` : 'n/a',
      pass: usable(o) && usable(w) ? o.p99 <= w.p99 : null
    })
  }
  const oursRows = rows.filter((r) => r.variant.startsWith('ours'))
  for (const o of oursRows) {
    const slowLost = o.slow ? o.slow.lost + o.slow.duplicates : 0
    const bad = o.lost + o.duplicates + slowLost
    checks.push({
      target: `${o.scenario}: ${o.variant} loses no event${o.slow ? ' (slow clients included, after replay)' : ''}`,
      ours: `lost ${o.lost + (o.slow?.lost ?? 0)}, dup ${o.duplicates + (o.slow?.duplicates ?? 0)}${o.failedConnects ? `, ${o.failedConnects} failed connects` : ''}`,
      limit: '0',
      pass: o.status === 'failed' ? false : bad === 0 && o.failedConnects === 0
    })
  }
  for (const s of ['fanout-10k', 'burst']) {
    const o = get(s, 'ours')
    const r = get(s, 'ours-redis')
    if (r === undefined) continue
    checks.push({
      target: `${s}: Redis p50 ≤ in-process p50 + 10 ms`,
      ours: usable(r) ? `${fmt(r.p50, 2)} ms` : 'n/a',
      limit: usable(o) ? `${fmt(o.p50 + 10, 2)} ms` : 'n/a',
      pass: usable(o) && usable(r) ? r.p50 <= o.p50 + 10 : null
    }, {
      target: `${s}: Redis p99 ≤ in-process p99 + 25 ms`,
      ours: usable(r) ? `${fmt(r.p99, 2)} ms` : 'n/a',
      limit: usable(o) ? `${fmt(o.p99 + 25, 2)} ms` : 'n/a',
      pass: usable(o) && usable(r) ? r.p99 <= o.p99 + 25 : null
    }, {
      target: `${s}: Redis CPU µs/ev (instance) ≤ in-process`,
      ours: usable(r) ? fmt(r.cpuUsPerEvent, 3) : 'n/a',
      limit: usable(o) ? fmt(o.cpuUsPerEvent, 3) : 'n/a',
      pass: usable(o) && usable(r) ? r.cpuUsPerEvent <= o.cpuUsPerEvent : null
    })
  }
  {
    const two = get('fanout-10k', 'ours-redis-2')
    const one = get('fanout-10k', 'ours-redis')
    const per = two?.instanceCpuUsPerEvent ?? []
    const worst = per.length > 0 ? Math.max(...per) : Number.NaN
    if (two !== undefined) {
      checks.push({
        target: 'fanout-10k, 2 instances × 5,000 on one Redis: each instance\'s CPU µs/ev ≤ 1.2 × one instance\'s',
        ours: usable(two) ? per.map((x) => fmt(x, 3)).join(', ') : 'n/a',
        limit: usable(one) ? fmt(1.2 * one.cpuUsPerEvent, 3) : 'n/a',
        pass: usable(two) && usable(one) ? worst <= 1.2 * one.cpuUsPerEvent : null
      })
    }
  }
  {
    const o = get('fanout-10k', 'ours')
    const w = get('fanout-10k', 'raw')
    checks.push({
      target: 'fanout-10k: KiB per idle connection ≤ raw + 4',
      ours: usable(o) ? fmt(o.kibPerConn, 2) : 'n/a',
      limit: usable(w) ? fmt(w.kibPerConn + 4, 2) : 'n/a',
      pass: usable(o) && usable(w) ? o.kibPerConn <= w.kibPerConn + 4 : null
    })
  }
  {
    const o = get('slow', 'ours')
    const slowClients = o?.slow?.clients ?? 0
    const limitMiB = (maxBufferedBytes * slowClients) / MIB + 20
    checks.push({
      target: 'slow: RSS growth ≤ maxBufferedBytes × slow clients + 20 MiB',
      ours: usable(o) ? `${fmt(o.rssGrowthMiB, 1)} MiB` : 'n/a',
      limit: `${fmt(limitMiB, 1)} MiB`,
      pass: usable(o) ? o.rssGrowthMiB <= limitMiB : null
    })
  }
  return checks
}

export function targetTable (markdown: boolean, checks: TargetCheck[]): string {
  return table(markdown, ['target', 'ours', 'limit', 'result'],
    checks.map((c) => [c.target, c.ours, c.limit, c.pass === null ? 'n/a' : c.pass ? 'PASS' : 'MISS']))
}
