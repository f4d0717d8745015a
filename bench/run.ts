// Benchmark driver: for each scenario and server variant, start the server
// fresh as a child process, drive it with load-generator worker processes over
// loopback, and measure delivery, latency, loss, CPU and memory.
//
//   npm run bench                       full run (< 20 min)
//   npm run bench -- --quick            smoke run (~1-2 min)
//   npm run bench -- --markdown         markdown tables on stdout + bench/RESULTS.md
//   npm run bench -- --variants=raw,ours --scenarios=burst,slow --workers=2 --repeat=3
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { capacityChecks, type CapacityResult, capacityTable, searchCapacity } from './lib/capacity.js'
import { ALL_VARIANTS, measure, type MeasureContext, VARIANTS } from './lib/measure.js'
import { machineInfo } from './lib/proc.js'
import { redisServerVersion } from './lib/redis-server.js'
import { combineRows, emptyRow, ratioTable, type Row, scenarioTable, targetChecks, targetTable } from './lib/report.js'
import { capacityScenarios, MIN_DELIVERED, scenarios } from './lib/scenarios.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const MAX_BUFFERED_BYTES = 1 << 20 // as registered in servers/ours.ts

// ---------------------------------------------------------------- arguments
const argv = process.argv.slice(2)
const flag = (name: string): boolean => argv.includes(`--${name}`)
const opt = (name: string): string | undefined =>
  argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
if (flag('help')) {
  process.stdout.write('usage: tsx bench/run.ts [--quick] [--markdown] [--variants=a,b] [--scenarios=x,y] [--workers=N] [--repeat=N]\n' +
    `variants: ${ALL_VARIANTS.join(', ')}\nscenarios: ${[...scenarios(false), ...capacityScenarios(false)].map((s) => s.name).join(', ')}\n` +
    '  (capacity-*: a search over publish rates; BENCH_BASELINE_DIST=<built plugin dir> adds the variants baseline and baseline-opt, see bench/README.md)\n')
  process.exit(0)
}
const quick = flag('quick')
const markdown = flag('markdown')
const workersN = Math.max(1, Math.min(8, Number(opt('workers') ?? 2)))
const repeat = Math.max(1, Math.min(5, Number(opt('repeat') ?? 1)))
const oursAvailable = existsSync(path.join(here, '..', 'plugin', 'index.ts'))
let variants = opt('variants')?.split(',') ?? ALL_VARIANTS
for (const v of variants) if (!ALL_VARIANTS.includes(v)) throw new Error(`unknown variant ${v}`)
const skipped: string[] = []
if (!oursAvailable) {
  for (const v of variants.filter((x) => VARIANTS[x]!.script === 'ours')) skipped.push(`${v} (plugin/index.ts not found)`)
  variants = variants.filter((v) => VARIANTS[v]!.script !== 'ours')
}
if (variants.includes('floor') && spawnSync('gcc', ['--version']).status !== 0) {
  skipped.push('floor (gcc not found: it compiles bench/servers/floor.c)')
  variants = variants.filter((v) => v !== 'floor')
}
// The ours variants run the built package, as users install it.
// BENCH_SKIP_BUILD=1 runs dist/ as it is (an experiment on the built files).
if (variants.some((v) => VARIANTS[v]!.script === 'ours') && process.env.BENCH_SOURCE !== '1' && process.env.BENCH_SKIP_BUILD !== '1') {
  const built = spawnSync('npm', ['run', 'build'], { cwd: path.join(here, '..'), stdio: ['ignore', process.stderr, process.stderr] })
  if (built.status !== 0) throw new Error('npm run build failed (BENCH_SOURCE=1 runs the sources through tsx instead)')
}
const redisVersion = redisServerVersion()
if (redisVersion === undefined) {
  for (const v of variants.filter((x) => VARIANTS[x]!.redis)) skipped.push(`${v} (redis-server not found: apt-get install -y redis-server)`)
  variants = variants.filter((v) => !VARIANTS[v]!.redis)
}
const wanted = opt('scenarios')?.split(',')
const plan = scenarios(quick).filter((s) => !wanted || wanted.includes(s.name))
const capacityPlan = capacityScenarios(quick).filter((s) => !wanted || wanted.includes(s.name))
if (wanted) for (const w of wanted) if (![...scenarios(quick), ...capacityScenarios(quick)].some((s) => s.name === w)) throw new Error(`unknown scenario ${w}`)

/** Settling pauses around GC and RSS samples (shorter in --quick). */
const SETTLE_MS = quick ? 150 : 300

const log = (msg: string): void => { process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`) }
const ctx: MeasureContext = { workers: workersN, settleMs: SETTLE_MS, log }

// ---------------------------------------------------------------------- main
const started = Date.now()
const machine = machineInfo()
const command = `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}  (tsx bench/run.ts ${argv.join(' ')})`.trim()
log(`${machine.cpu}, ${machine.cores} cores, node ${machine.node}; ${variants.join(', ')}; ${[...plan, ...capacityPlan].map((s) => s.name).join(', ')}`)
if (skipped.length) log(`skipped: ${skipped.join(', ')}`)
const loadBefore = os.loadavg()

// A budget for the whole run: past it, the remaining measurements are skipped.
const BUDGET_MS = (quick ? 12 : 45) * 60_000 * repeat
const runs = new Map<string, Row[]>()
for (let rep = 0; rep < repeat; rep++) {
  for (const sc of plan) {
    for (const variant of variants) {
      if (sc.only && !sc.only.includes(variant)) continue
      const only = VARIANTS[variant]!.scenarios
      if (only && !only.includes(sc.name)) continue
      const key = `${sc.name}\0${variant}`
      if (!runs.has(key)) runs.set(key, [])
      if (Date.now() - started > BUDGET_MS) {
        const r = emptyRow(sc.name, variant, sc.clients + sc.slow)
        r.status = 'failed'
        r.notes.push(`skipped: run budget of ${BUDGET_MS / 60_000} min used up`)
        runs.get(key)!.push(r)
        continue
      }
      if (repeat > 1) log(`repeat ${rep + 1}/${repeat}`)
      runs.get(key)!.push(await measure(sc, variant, ctx))
      await sleep(SETTLE_MS)
    }
  }
}
// Capacity searches run once (not repeated): each step is a full measurement already.
const capacity: CapacityResult[] = []
for (const c of capacityPlan) {
  for (const variant of variants.filter((v) => c.only.includes(v))) {
    if (Date.now() - started > BUDGET_MS) {
      log(`${c.name}/${variant}: skipped, run budget used up`)
      continue
    }
    capacity.push(await searchCapacity(c, variant, ctx))
  }
}
const rows: Row[] = [...runs.values()].map(combineRows)
const elapsed = (Date.now() - started) / 1000

// ------------------------------------------------------------------- output
const { cardSource, renderCard } = await import('./lib/render.js')
const renderUs = await (async () => {
  for (let i = 0; i < 200; i++) await renderCard(i) // warm up
  const t0 = performance.now()
  for (let i = 0; i < 2000; i++) await renderCard(i)
  return ((performance.now() - t0) * 1000) / 2000
})()
const out: string[] = []
const h = (level: number, text: string): void => { out.push(markdown ? `${'#'.repeat(level)} ${text}` : `== ${text} ==`, '') }
h(1, `fastify-htmx-sse benchmark${quick ? ' (--quick)' : ''}`)
out.push(
  `- command: \`${command}\``,
  `- machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memGiB} GiB, ${machine.os}; node ${machine.node}`,
  `- load average before: ${loadBefore.map((l) => l.toFixed(2)).join(' ')}; after: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (shared machine: expect noise)`,
  `- date: ${new Date(started).toISOString()}; took ${elapsed.toFixed(0)} s; ${workersN} load-generator workers; server and workers on one host over 127.0.0.1`,
  ...(repeat > 1 ? [`- every measurement ran ${repeat} times, interleaved; each number is the median of its runs, except lost/dup/ooo/reconnects (the worst run)`] : []),
  `- ours runs the built package (dist/, \`npm run build\`), as users install it${process.env.BENCH_SOURCE === '1' ? ' — NOT in this run: BENCH_SOURCE=1 ran the sources through tsx' : ''}`,
  `- render card: ${cardSource}; one render takes ${renderUs.toFixed(1)} µs here (mean of 2,000, in the driver)`,
  ...(skipped.length ? [`- skipped: ${skipped.join(', ')}`] : []),
  '- CPU = server utime+stime from /proc over publish + delivery; CPU µs/ev = that ÷ events delivered; KiB/conn = (RSS connected − RSS idle) ÷ clients, after a forced GC; latency = client receive time − server send time in the payload; publish µs = mean time of one publish call (render included)',
  ''
)
for (const c of capacityPlan) {
  const rs = capacity.filter((r) => r.scenario === c.name)
  if (rs.length === 0) continue
  h(2, `${c.name}: the highest publish rate to ${c.clients.toLocaleString('en-US')} subscribers with 0 lost, ≥ ${100 * MIN_DELIVERED} % delivered, p99 ≤ ${c.p99LimitMs} ms`)
  out.push(`Rates ${c.rates.join(', ')} events/s, ascending until the first miss; each on a fresh server, 512 B events, ${c.events(c.rates[0]!)}–${c.events(c.rates.at(-1)!)} per rate, the first tenth left out of the latencies (warm-up). delivered % = deliveries per second from the first send to the last receipt, less the median latency, over clients × rate.`, '', capacityTable(markdown, c, rs), '')
}
for (const sc of plan) {
  const rs = rows.filter((r) => r.scenario === sc.name)
  if (rs.length === 0) continue
  h(2, `${sc.name}: ${sc.clients} clients${sc.slow ? ` + ${sc.slow} slow` : ''}, ${sc.count} events of ${sc.kind === 'card' ? 'rendered card' : `${sc.size} B`}${sc.intervalMs ? ` every ${sc.intervalMs} ms` : ' as fast as possible'}`)
  out.push(sc.description, '', scenarioTable(markdown, rs, { slow: sc.slow > 0, publishP99: sc.kind === 'card' }), '')
}
h(2, 'Ratios vs raw (same run)')
out.push(ratioTable(markdown, rows), '')
if (variants.includes('ours')) {
  h(2, 'Targets (ours vs raw, same run)')
  if (quick) out.push('--quick runs reduced sizes (e.g. 2,000 clients in "fanout-10k"): these results are indicative only; the targets are defined on the full run.', '')
  out.push(targetTable(markdown, [...targetChecks(rows, MAX_BUFFERED_BYTES), ...capacityChecks(capacity)]), '')
}
const text = out.join('\n')
process.stdout.write(`${text}\n`)
if (markdown) {
  writeFileSync(path.join(here, 'RESULTS.md'), `${text}\n`)
  log('wrote bench/RESULTS.md')
  if (!quick) updateReadme()
}

/** The README's results section (between bench markers), regenerated by every full --markdown run. */
function updateReadme (): void {
  const readme = path.join(here, '..', 'README.md')
  if (!existsSync(readme)) return
  const current = readFileSync(readme, 'utf8')
  const start = '<!-- bench:start -->'
  const end = '<!-- bench:end -->'
  const from = current.indexOf(start)
  const to = current.indexOf(end)
  if (from < 0 || to < from) return
  const section = [
    start,
    `Command: \`${command}\`; ${machine.cpu}, ${machine.cores} cores, node ${machine.node}; ${new Date(started).toISOString().slice(0, 10)}. ` +
      'Full tables (connect time, events/s, latency, CPU, RSS per variant and scenario): [bench/RESULTS.md](bench/RESULTS.md).',
    '',
    ratioTable(true, rows),
    '',
    ...(variants.includes('ours') ? [targetTable(true, [...targetChecks(rows, MAX_BUFFERED_BYTES), ...capacityChecks(capacity)]), ''] : []),
    end
  ].join('\n')
  writeFileSync(readme, current.slice(0, from) + section + current.slice(to + end.length))
  log('updated the results section of README.md')
}
const outDir = path.join(here, '..', '.bench-out')
mkdirSync(outDir, { recursive: true })
const jsonFile = path.join(outDir, `results-${new Date(started).toISOString().replace(/[:.]/g, '-')}.json`)
writeFileSync(jsonFile, JSON.stringify({ command, machine, quick, repeat, rows, runs: [...runs.values()], capacity }, null, 2))
log(`raw results: ${path.relative(process.cwd(), jsonFile)}; total ${elapsed.toFixed(0)} s`)
process.exit(0)
