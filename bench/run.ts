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
import { Child } from './lib/child.js'
import { Histogram } from './lib/hist.js'
import type { GroupReport, Progress, ServerReply, ServerRequest, WorkerInit, WorkerReply, WorkerRequest } from './lib/messages.js'
import { cpuSeconds, cpuTimesOf, machineInfo, mainThreadCpuTimes, RssSampler } from './lib/proc.js'
import { type BenchRedis, redisServerVersion, startRedis } from './lib/redis-server.js'
import { combineRows, emptyRow, fmt, ratioTable, type Row, scenarioTable, targetChecks, targetTable } from './lib/report.js'
import { type Scenario, scenarios, YIELD_EVERY } from './lib/scenarios.js'

const here = path.dirname(fileURLToPath(import.meta.url))

/** How a variant runs: its server script, how many instances, whether they share a redis-server. */
interface VariantSpec {
  script: string
  instances: number
  redis: boolean
  /** Scenarios it runs in (undefined: all its scenario allows). */
  scenarios?: string[]
  /** Extra environment for its server processes. */
  env?: Record<string, string>
}
const VARIANTS: Record<string, VariantSpec> = {
  raw: { script: 'raw', instances: 1, redis: false },
  // One write() per socket per event from C: what the kernel alone costs.
  floor: { script: 'floor', instances: 1, redis: false, scenarios: ['fanout-1k', 'fanout-10k'] },
  ours: { script: 'ours', instances: 1, redis: false },
  // The same with maxWriteShare: 1 (write as soon as possible, no rest after long cycles): the latency/CPU trade.
  'ours-asap': { script: 'ours', instances: 1, redis: false, scenarios: ['fanout-10k'], env: { BENCH_WRITE_SHARE: '1' } },
  'ours-redis': { script: 'ours', instances: 1, redis: true },
  // Two instances on one Redis, clients split between them, one publisher.
  'ours-redis-2': { script: 'ours', instances: 2, redis: true, scenarios: ['fanout-1k', 'fanout-10k', 'burst'] },
  'better-sse': { script: 'better-sse', instances: 1, redis: false },
  'fastify-sse': { script: 'fastify-sse', instances: 1, redis: false },
  'fastify-sse-v2': { script: 'fastify-sse-v2', instances: 1, redis: false }
}
const ALL_VARIANTS = Object.keys(VARIANTS)
const MAX_BUFFERED_BYTES = 1 << 20 // as registered in servers/ours.ts

// ---------------------------------------------------------------- arguments
const argv = process.argv.slice(2)
const flag = (name: string): boolean => argv.includes(`--${name}`)
const opt = (name: string): string | undefined =>
  argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
if (flag('help')) {
  process.stdout.write('usage: tsx bench/run.ts [--quick] [--markdown] [--variants=a,b] [--scenarios=x,y] [--workers=N] [--repeat=N]\n' +
    `variants: ${ALL_VARIANTS.join(', ')}\nscenarios: ${scenarios(false).map((s) => s.name).join(', ')}\n`)
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
if (wanted) for (const w of wanted) if (!scenarios(quick).some((s) => s.name === w)) throw new Error(`unknown scenario ${w}`)

/** Settling pauses around GC and RSS samples (shorter in --quick). */
const SETTLE_MS = quick ? 150 : 300

const log = (msg: string): void => { process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`) }

// ------------------------------------------------------------------ helpers
type Server = Child<ServerRequest, ServerReply>
type Worker = Child<WorkerRequest, WorkerReply>

function sumProgress (ps: Progress[]): Progress {
  return ps.reduce((a, p) => ({
    unique: a.unique + p.unique,
    complete: a.complete + p.complete,
    open: a.open + p.open,
    reconnects: a.reconnects + p.reconnects
  }), { unique: 0, complete: 0, open: 0, reconnects: 0 })
}

async function progressOf (workers: Worker[]): Promise<Progress> {
  return sumProgress(await Promise.all(workers.map(async (w) => (await w.request({ t: 'progress' }, 10_000)).progress)))
}

function mergeGroups (groups: GroupReport[]): GroupReport & { histogram: Histogram } {
  const histogram = new Histogram()
  const out = {
    clients: 0,
    neverOpened: 0,
    open: 0,
    unique: 0,
    duplicates: 0,
    outOfOrder: 0,
    other: 0,
    complete: 0,
    reconnects: 0,
    bytes: 0,
    hist: histogram.toJSON(),
    errors: {} as Record<string, number>,
    histogram
  }
  for (const g of groups) {
    out.clients += g.clients; out.neverOpened += g.neverOpened; out.open += g.open; out.unique += g.unique; out.duplicates += g.duplicates
    out.outOfOrder += g.outOfOrder; out.other += g.other; out.complete += g.complete
    out.reconnects += g.reconnects; out.bytes += g.bytes
    histogram.merge(g.hist)
    for (const [k, v] of Object.entries(g.errors)) out.errors[k] = (out.errors[k] ?? 0) + v
  }
  return out
}

/** Split n into k near-equal parts. */
const share = (n: number, k: number, i: number): number => Math.floor(n / k) + (i < n % k ? 1 : 0)

// ----------------------------------------------------------- one measurement
async function measure (sc: Scenario, variant: string): Promise<Row> {
  const row = emptyRow(sc.name, variant, sc.clients + sc.slow)
  const spec = VARIANTS[variant]!
  const serverScript = path.join(here, 'servers', `${spec.script}.ts`)
  const nodeArgs = ['--expose-gc', '--no-warnings', ...(process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean)]
  let redis: BenchRedis | undefined
  const servers: Server[] = []
  const workers: Worker[] = []
  // At least one load generator per instance: worker i drives instance i mod n.
  const nWorkers = Math.max(workersN, spec.instances)
  let extraPids: number[] = []
  const serverPids = (): number[] => [...servers.map((x) => x.pid), ...extraPids]
  const rss = new RssSampler(serverPids, 100)
  try {
    if (spec.redis) redis = await startRedis()
    const env: Record<string, string> = { ...spec.env, ...(redis ? { BENCH_REDIS_URL: redis.url } : {}) }
    for (let i = 0; i < spec.instances; i++) {
      servers.push(new Child(`server:${variant}${spec.instances > 1 ? `#${i}` : ''}`, serverScript, nodeArgs, env))
    }
    for (let i = 0; i < nWorkers; i++) workers.push(new Child(`loadgen:${i}`, path.join(here, 'loadgen.ts')))
    // Listen for every 'ready' at once: a child's may come before we would ask for it.
    const workersReady = Promise.all(workers.map((w) => w.waitFor('ready', 30_000)))
    const readies = await Promise.all(servers.map((x) => x.waitFor('ready', 30_000)))
    await workersReady
    extraPids = readies.flatMap((r) => r.pids ?? [])
    const server = servers[0]!
    rss.start()
    await sleep(SETTLE_MS)
    await Promise.all(servers.map((x) => x.request({ t: 'gc' }, 10_000)))
    await sleep(SETTLE_MS)
    row.rssIdleMiB = rss.sample() / 1024

    // Connect phase.
    const total = sc.clients + sc.slow
    const t0 = performance.now()
    const connects = workers.map((w, i) => {
      const init: WorkerInit = {
        index: i,
        port: readies[i % readies.length]!.port,
        path: '/sse',
        clients: share(sc.clients, nWorkers, i),
        slow: share(sc.slow, nWorkers, i),
        count: sc.count,
        concurrency: 128,
        maxReconnects: 20
      }
      return w.request({ t: 'connect', init }, sc.connectCapMs)
    })
    const settled = await Promise.allSettled(connects)
    row.connectMs = performance.now() - t0
    for (const s of settled) {
      if (s.status === 'fulfilled') {
        row.failedConnects += s.value.failed
        for (const [k, v] of Object.entries(s.value.errors)) row.notes.push(`connect ${k}×${v}`)
      } else {
        row.status = 'partial'
        row.notes.push(`connect cap ${sc.connectCapMs / 1000}s hit`)
      }
    }
    row.connected = (await progressOf(workers)).open
    if (row.connected === 0) throw new Error('no client connected')
    if (row.connected < total) row.status = 'partial'
    // The server must have registered every client before publishing starts.
    const seenBy = performance.now()
    let serverClients = 0
    while (performance.now() - seenBy < 10_000) {
      serverClients = (await Promise.all(servers.map((x) => x.request({ t: 'clients' }, 10_000)))).reduce((a, r) => a + r.n, 0)
      if (serverClients >= row.connected) break
      await sleep(50)
    }
    if (serverClients < row.connected) row.notes.push(`server sees ${serverClients} clients`)
    log(`${sc.name}/${variant}: ${row.connected}/${total} connected in ${(row.connectMs / 1000).toFixed(2)} s`)

    await sleep(SETTLE_MS)
    await Promise.all(servers.map((x) => x.request({ t: 'gc' }, 10_000)))
    await sleep(SETTLE_MS)
    row.rssConnMiB = rss.sample() / 1024
    row.kibPerConn = ((row.rssConnMiB - row.rssIdleMiB) * 1024) / row.connected
    rss.resetPeak()

    // Publish phase, then delivery.
    // The servers' own counters before publishing: the publish phase's socket writes are the difference.
    const stats0 = await Promise.all(servers.map(async (x) => (await x.request({ t: 'stats' }, 10_000)).stats))
    const serverCpu = (): number => { const t = cpuTimesOf(serverPids()); return t.user + t.sys }
    const cpu0 = cpuTimesOf(serverPids())
    const instanceCpu0 = servers.map((x) => cpuSeconds(x.pid))
    const mainCpu = (): number[] => serverPids().map((pid) => { const t = mainThreadCpuTimes(pid); return t.user + t.sys })
    const mainCpu0 = mainCpu()
    const redisCpu0 = redis ? cpuSeconds(redis.pid) : 0
    const loadCpu0 = workers.reduce((a, w) => a + cpuSeconds(w.pid), 0)
    const tPub = performance.now()
    const nominal = sc.count * sc.intervalMs
    const pub = await server.request({
      t: 'publish',
      plan: { count: sc.count, intervalMs: sc.intervalMs, size: sc.size, yieldEvery: YIELD_EVERY, kind: sc.kind }
    }, nominal * 3 + 60_000)
    row.published = pub.result.published
    row.publishMs = pub.result.ms
    row.meanPublishUs = pub.result.meanPublishUs
    row.p99PublishUs = pub.result.p99PublishUs
    if (pub.result.errors > 0) row.notes.push(`${pub.result.errors} publish errors: ${pub.result.firstError ?? ''}`)
    for (const [k, v] of Object.entries(pub.result.warnings)) row.notes.push(`${k}×${v}`)
    if (nominal > 0 && row.publishMs > 1.25 * nominal) row.notes.push(`publishing took ${(row.publishMs / nominal).toFixed(1)}× its nominal ${nominal / 1000} s (server could not keep the pace)`)
    const growthPeak = sc.slow > 0 ? rss.peak : 0
    if (sc.slow > 0) await Promise.all(workers.map((w) => w.request({ t: 'resume' }, 10_000)))

    // Delivery: wait until every client has every event, or until nothing
    // moves (no new event at any client while the server is idle too), or the cap.
    const drainStart = performance.now()
    let last = await progressOf(workers)
    let lastChange = performance.now()
    let windowStart = performance.now()
    let windowCpu = serverCpu()
    let windowUnique = last.unique
    let complete = false
    let stalled = false
    while (performance.now() - drainStart < sc.drainCapMs) {
      if (last.complete >= row.connected) { complete = true; break }
      await sleep(50)
      const p = await progressOf(workers)
      const now = performance.now()
      if (p.unique !== last.unique) lastChange = now
      last = p
      if (now - windowStart >= sc.idleMs) {
        const cpu = serverCpu()
        const busy = (cpu - windowCpu) / ((now - windowStart) / 1000)
        if (last.unique === windowUnique && !(busy > 0.05)) { stalled = true; break }
        windowStart = now
        windowCpu = cpu
        windowUnique = last.unique
      }
    }
    const cpu1 = cpuTimesOf(serverPids())
    const tEnd = performance.now()
    row.loopBusy = Math.max(...mainCpu().map((c, i) => (c - mainCpu0[i]!) / ((tEnd - tPub) / 1000)))
    const instanceCpu = servers.map((x, i) => cpuSeconds(x.pid) - instanceCpu0[i]!)
    if (redis) row.redisCpuS = cpuSeconds(redis.pid) - redisCpu0
    row.loadgenCpuS = workers.reduce((a, w) => a + cpuSeconds(w.pid), 0) - loadCpu0
    row.deliveryMs = lastChange - tPub
    if (!complete && !stalled) row.notes.push(`drain cap ${sc.drainCapMs / 1000}s hit`)
    if (stalled) row.notes.push(`delivery stalled (${last.complete}/${row.connected} clients complete, ${last.open} open)`)
    row.rssPeakMiB = rss.peak / 1024
    row.rssGrowthMiB = ((sc.slow > 0 ? Math.max(growthPeak, rss.peak) : rss.peak) / 1024) - row.rssConnMiB
    row.rssGrowthPublishMiB = sc.slow > 0 ? growthPeak / 1024 - row.rssConnMiB : row.rssGrowthMiB

    for (const [i, x] of servers.entries()) {
      const stats = (await x.request({ t: 'stats' }, 10_000)).stats
      if (Object.keys(stats).length === 0) continue
      const name = `server${servers.length > 1 ? ` #${i}` : ''}`
      row.notes.push(`${name}: ${Object.entries(stats).map(([k, v]) => `${k} ${v}`).join(', ')}`)
      // Coalescing: events per socket write, and what one write cost (this instance's CPU over the phase).
      const writes = (stats.writes ?? 0) - (stats0[i]!.writes ?? 0)
      const delivered = (stats.delivered ?? 0) - (stats0[i]!.delivered ?? 0)
      if (writes > 0) row.notes.push(`${name}: ${fmt(delivered / writes, 1)} events/write, ${fmt((instanceCpu[i]! * 1e6) / writes, 1)} CPU µs/write`)
    }

    // Results.
    const reports = await Promise.all(workers.map((w) => w.request({ t: 'report' }, 30_000)))
    const normal = mergeGroups(reports.map((r) => r.normal))
    const slow = mergeGroups(reports.map((r) => r.slow))
    for (const [k, v] of Object.entries(normal.errors)) if (!k.startsWith('failed:')) row.notes.push(`${k}×${v}`)
    const expectedPer = row.published
    row.delivered = normal.unique + slow.unique
    row.eventsPerSec = row.delivered / (row.deliveryMs / 1000)
    row.p50 = normal.histogram.percentile(0.5)
    row.p99 = normal.histogram.percentile(0.99)
    row.max = normal.histogram.max
    // Clients that never connected are reported as failed connects, not as lost events.
    const normalConnected = normal.clients - normal.neverOpened
    const slowConnected = slow.clients - slow.neverOpened
    row.lost = normalConnected * expectedPer - normal.unique
    row.duplicates = normal.duplicates
    row.outOfOrder = normal.outOfOrder
    row.other = normal.other
    row.reconnects = normal.reconnects
    if (sc.slow > 0) {
      row.slow = {
        clients: slow.clients,
        lost: slowConnected * expectedPer - slow.unique,
        duplicates: slow.duplicates,
        outOfOrder: slow.outOfOrder,
        complete: slow.complete,
        reconnects: slow.reconnects,
        p99: slow.histogram.percentile(0.99)
      }
    }
    row.cpuS = (cpu1.user + cpu1.sys) - (cpu0.user + cpu0.sys)
    row.cpuSysS = cpu1.sys - cpu0.sys
    row.cpuUsPerEvent = (row.cpuS * 1e6) / row.delivered
    if (servers.length > 1) {
      // Each instance's CPU over the events its own clients received.
      row.instanceCpuUsPerEvent = servers.map((_x, i) => {
        const mine = reports.filter((_r, w) => w % servers.length === i)
        const events = mine.reduce((a, r) => a + r.normal.unique + r.slow.unique, 0)
        return (instanceCpu[i]! * 1e6) / events
      })
      row.notes.push(`CPU µs/ev per instance: ${row.instanceCpuUsPerEvent.map((x) => fmt(x, 3)).join(', ')} (instance #0 publishes)`)
    }
    if (row.other > 0) row.notes.push(`${row.other} non-tick events`)
    log(`${sc.name}/${variant}: ${row.delivered} events delivered, lost ${row.lost}${row.slow ? ` (+${row.slow.lost} slow)` : ''}, ` +
      `p99 ${row.p99.toFixed(2)} ms, CPU ${row.cpuS.toFixed(2)} s`)
  } catch (err) {
    row.status = 'failed'
    row.notes.push((err as Error).message)
    for (const x of servers) if (x.exited) row.notes.push(`${x.name} exit code ${x.exited.code} signal ${x.exited.signal}`)
    log(`${sc.name}/${variant}: FAILED ${(err as Error).message}`)
  } finally {
    rss.stop()
    // Servers first: the server side then holds the TIME_WAIT sockets, not our ports.
    await Promise.all(servers.map((x) => x.stop({ t: 'exit' }, 3000)))
    await Promise.all(workers.map((w) => w.stop({ t: 'close' }, 3000)))
    await redis?.stop()
  }
  return row
}

// ---------------------------------------------------------------------- main
const started = Date.now()
const machine = machineInfo()
const command = `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}  (tsx bench/run.ts ${argv.join(' ')})`.trim()
log(`${machine.cpu}, ${machine.cores} cores, node ${machine.node}; ${variants.join(', ')}; ${plan.map((s) => s.name).join(', ')}`)
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
      runs.get(key)!.push(await measure(sc, variant))
      await sleep(SETTLE_MS)
    }
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
  out.push(targetTable(markdown, targetChecks(rows, MAX_BUFFERED_BYTES)), '')
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
    ...(variants.includes('ours') ? [targetTable(true, targetChecks(rows, MAX_BUFFERED_BYTES)), ''] : []),
    end
  ].join('\n')
  writeFileSync(readme, current.slice(0, from) + section + current.slice(to + end.length))
  log('updated the results section of README.md')
}
const outDir = path.join(here, '..', '.bench-out')
mkdirSync(outDir, { recursive: true })
const jsonFile = path.join(outDir, `results-${new Date(started).toISOString().replace(/[:.]/g, '-')}.json`)
writeFileSync(jsonFile, JSON.stringify({ command, machine, quick, repeat, rows, runs: [...runs.values()] }, null, 2))
log(`raw results: ${path.relative(process.cwd(), jsonFile)}; total ${elapsed.toFixed(0)} s`)
process.exit(0)
