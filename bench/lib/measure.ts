// One measurement: a fresh server (or several instances) and load-generator
// workers, a connect phase, a publish phase and the delivery wait, read into a Row.
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { Child } from './child.js'
import { Histogram } from './hist.js'
import { emptyGroup, type GroupReport, type Progress, type ServerReply, type ServerRequest, type WorkerInit, type WorkerReply, type WorkerRequest } from './messages.js'
import { cpuSeconds, cpuTimesOf, mainThreadCpuTimes, RssSampler } from './proc.js'
import { type BenchRedis, startRedis } from './redis-server.js'
import { emptyRow, fmt, type Row } from './report.js'
import { type Scenario, YIELD_EVERY } from './scenarios.js'

const here = path.join(path.dirname(fileURLToPath(import.meta.url)), '..')

/** How a variant runs: its server script, how many instances, whether they share a redis-server. */
export interface VariantSpec {
  script: string
  instances: number
  redis: boolean
  /** Scenarios it runs in (undefined: all its scenario allows). */
  scenarios?: string[]
  /** Extra environment for its server processes. */
  env?: Record<string, string>
}
// ours-norest and the baseline variants' options go to servers/ours.ts as JSON.
const NO_REST = JSON.stringify({ restAboveUtilization: 1 })
export const VARIANTS: Record<string, VariantSpec> = {
  raw: { script: 'raw', instances: 1, redis: false },
  // One write() per socket per event from C: what the kernel alone costs.
  floor: { script: 'floor', instances: 1, redis: false, scenarios: ['fanout-1k', 'fanout-10k'] },
  ours: { script: 'ours', instances: 1, redis: false },
  // The same never resting (restAboveUtilization: 1): what the default's rests cost in latency, in the same run.
  'ours-norest': { script: 'ours', instances: 1, redis: false, scenarios: ['fanout-1k', 'fanout-10k', 'capacity-10k'], env: { BENCH_OURS_OPTIONS: NO_REST } },
  'ours-redis': { script: 'ours', instances: 1, redis: true },
  // Two instances on one Redis, clients split between them, one publisher.
  'ours-redis-2': { script: 'ours', instances: 2, redis: true, scenarios: ['fanout-1k', 'fanout-10k', 'burst'] },
  'better-sse': { script: 'better-sse', instances: 1, redis: false },
  'fastify-sse': { script: 'fastify-sse', instances: 1, redis: false },
  'fastify-sse-v2': { script: 'fastify-sse-v2', instances: 1, redis: false }
}
/**
 * BENCH_BASELINE_DIST=<a built plugin directory, e.g. another commit's dist/plugin>
 * adds `baseline` (its defaults) and, with BENCH_BASELINE_OPTIONS (JSON), `baseline-opt`:
 * before and after in one run.
 */
const baseline = process.env.BENCH_BASELINE_DIST
if (baseline !== undefined && baseline !== '') {
  VARIANTS.baseline = { script: 'ours', instances: 1, redis: false, env: { BENCH_PLUGIN_DIST: path.resolve(baseline) } }
  const options = process.env.BENCH_BASELINE_OPTIONS
  if (options !== undefined && options !== '') {
    VARIANTS['baseline-opt'] = { script: 'ours', instances: 1, redis: false, env: { BENCH_PLUGIN_DIST: path.resolve(baseline), BENCH_OURS_OPTIONS: options } }
  }
}
export const ALL_VARIANTS = Object.keys(VARIANTS)

/** What every measurement of a run shares. */
export interface MeasureContext {
  /** Load-generator processes (at least one per server instance). */
  workers: number
  /** Settling pauses around GC and RSS samples. */
  settleMs: number
  log: (msg: string) => void
}

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

function mergeGroups (groups: GroupReport[]): GroupReport & { histogram: Histogram, warmHistogram: Histogram } {
  const histogram = new Histogram()
  const warmHistogram = new Histogram()
  const out = {
    ...emptyGroup(histogram.toJSON(), warmHistogram.toJSON()),
    histogram,
    warmHistogram
  }
  for (const g of groups) {
    out.clients += g.clients; out.neverOpened += g.neverOpened; out.open += g.open; out.unique += g.unique; out.duplicates += g.duplicates
    out.outOfOrder += g.outOfOrder; out.other += g.other; out.complete += g.complete
    out.reconnects += g.reconnects; out.bytes += g.bytes
    histogram.merge(g.hist)
    warmHistogram.merge(g.warmHist)
    out.lastRecvMs = Math.max(out.lastRecvMs, g.lastRecvMs)
    for (const [k, v] of Object.entries(g.errors)) out.errors[k] = (out.errors[k] ?? 0) + v
  }
  return out
}

/** Split n into k near-equal parts. */
const share = (n: number, k: number, i: number): number => Math.floor(n / k) + (i < n % k ? 1 : 0)

// ----------------------------------------------------------- one measurement
export async function measure (sc: Scenario, variant: string, ctx: MeasureContext): Promise<Row> {
  const { settleMs: SETTLE_MS, log } = ctx
  const row = emptyRow(sc.name, variant, sc.clients + sc.slow)
  const spec = VARIANTS[variant]!
  const serverScript = path.join(here, 'servers', `${spec.script}.ts`)
  const nodeArgs = ['--expose-gc', '--no-warnings', ...(process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean)]
  let redis: BenchRedis | undefined
  const servers: Server[] = []
  const workers: Worker[] = []
  // At least one load generator per instance: worker i drives instance i mod n.
  const nWorkers = Math.max(ctx.workers, spec.instances)
  let extraPids: number[] = []
  const serverPids = (): number[] => [...servers.map((x) => x.pid), ...extraPids]
  const rss = new RssSampler(serverPids, 100)
  try {
    if (spec.redis) redis = await startRedis()
    const env: Record<string, string> = { BENCH_VARIANT: variant, ...spec.env, ...(redis ? { BENCH_REDIS_URL: redis.url } : {}) }
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
        warmup: sc.warmup,
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

    const elus: number[] = []
    for (const [i, x] of servers.entries()) {
      const reply = await x.request({ t: 'stats' }, 10_000)
      elus.push(reply.elu)
      const stats = reply.stats
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
    row.loopElu = Math.max(...elus)
    row.warmP99 = normal.warmHistogram.percentile(0.99)
    row.p50 = normal.histogram.percentile(0.5)
    row.p99 = normal.histogram.percentile(0.99)
    row.max = normal.histogram.max
    // Deliveries per second over the span from the first send to the last receipt (plus the
    // last event's own interval), less the median latency (the pipeline's constant delay,
    // which is not lost throughput; latency that grows still counts), against
    // every connected client receiving every event at the offered pace.
    if (sc.intervalMs > 0) {
      const spanMs = normal.lastRecvMs - pub.result.startedAtMs - row.p50 + sc.intervalMs
      const offeredPerMs = (normal.clients - normal.neverOpened) / sc.intervalMs
      row.deliveredShare = spanMs > 0 ? normal.unique / spanMs / offeredPerMs : Number.NaN
    }
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
