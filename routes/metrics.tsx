/**
 * Live system metrics: ONE sampling loop for every client, running while this
 * instance has a subscriber to the topic (`sseHub.watch`), publishing all
 * cards as one event of `<Update>`s per tick (rendered and encoded once,
 * whatever the number of pages open).
 */
import os from 'node:os'
import type { FastifyBaseLogger } from 'fastify'
import type { SseHub } from '../plugin/hub.js'
import { Update } from '../views/fragments.js'
import { CoreBars, MetricCard, type Thresholds } from '../views/metrics.js'
import { RoutePage, routeModule } from './util.js'
import { missingPeer } from '../plugin/errors.js'

/** One reading of the machine. Percentages are 0..100, sizes in bytes, rates in bytes/s. */
export interface MetricsSample {
  at: number
  /** Total CPU load, %. */
  cpu: number
  /** Load per core, %. */
  cores: number[]
  memory: { used: number, total: number }
  /** 1, 5 and 15 minute load averages. */
  load: [number, number, number]
  cpuCount: number
  disk: { used: number, size: number }
  net: { rx: number, tx: number }
}

/** Where samples come from. `systemSampler()` reads the machine; `fakeSampler()` is for tests and demos. */
export interface Sampler {
  /** Called once before the first sample of each run of the loop (e.g. the slow first `currentLoad`). */
  warmUp?: () => Promise<void>
  sample: () => Promise<MetricsSample>
}

/** Samples the machine with `systeminformation` (CPU, memory, disk, network) and `os.loadavg()`. */
export function systemSampler (): Sampler {
  let si: typeof import('systeminformation') | undefined
  // An optional peer: only this sampler needs it, and it says so when it is missing.
  const load = async (): Promise<typeof import('systeminformation')> => (si ??= (await import('systeminformation').catch((err: unknown) => {
    throw missingPeer(err, 'systeminformation', 'systemSampler() (the metrics routes\' default sampler; or pass a sampler of your own)')
  })).default)
  let warmed = false
  return {
    async warmUp () {
      if (warmed) return
      const s = await load()
      // The first currentLoad() costs ~500 ms and networkStats() needs a previous
      // call to report rates: do both once, off the clock of any request.
      await Promise.all([s.currentLoad(), s.networkStats('*')])
      warmed = true
    },
    async sample () {
      const s = await load()
      const [cl, mem, fs, net] = await Promise.all([s.currentLoad(), s.mem(), s.fsSize(), s.networkStats('*')])
      const disks = fs.filter(f => f.rw !== false && f.size > 0)
      const root = disks.find(f => f.mount === '/')
      const counted = root !== undefined ? [root] : disks
      const [l1 = 0, l5 = 0, l15 = 0] = os.loadavg()
      let rx = 0
      let tx = 0
      for (const n of net) {
        if (n.iface === 'lo') continue
        rx += Math.max(0, n.rx_sec ?? 0)
        tx += Math.max(0, n.tx_sec ?? 0)
      }
      return {
        at: Date.now(),
        cpu: cl.currentLoad,
        cores: cl.cpus.map(c => c.load),
        memory: { used: mem.active, total: mem.total },
        load: [l1, l5, l15],
        cpuCount: cl.cpus.length || os.cpus().length,
        disk: {
          used: counted.reduce((sum, f) => sum + f.used, 0),
          size: counted.reduce((sum, f) => sum + f.size, 0)
        },
        net: { rx, tx }
      }
    }
  }
}

/**
 * A deterministic sampler: every call returns the next point of smooth,
 * always-changing curves. `calls` counts samples taken (tests use it to see
 * whether the loop runs).
 */
export function fakeSampler (options: { cores?: number } = {}): Sampler & { calls: number, warmUps: number } {
  const cores = options.cores ?? 8
  const sampler = {
    calls: 0,
    warmUps: 0,
    async warmUp () { sampler.warmUps++ },
    async sample (): Promise<MetricsSample> {
      const n = sampler.calls++
      const wave = (period: number, phase = 0): number => (Math.sin((n + phase) / period) + 1) / 2
      const gib = 1024 ** 3
      return {
        at: Date.now(),
        cpu: 15 + 70 * wave(3),
        cores: Array.from({ length: cores }, (_, i) => 5 + 90 * wave(2 + i / 3, i * 1.7)),
        memory: { used: (6 + 6 * wave(7)) * gib, total: 16 * gib },
        load: [0.5 + 6 * wave(5), 0.5 + 5 * wave(11), 0.5 + 4 * wave(17)],
        cpuCount: cores,
        disk: { used: (310 + n * 0.01) * gib, size: 512 * gib },
        net: { rx: 40_000 + 2_000_000 * wave(4), tx: 12_000 + 400_000 * wave(6, 2) }
      }
    }
  }
  return sampler
}

export interface MetricsOptions {
  /** Hub topic. Default 'metrics'. */
  topic?: string
  /** Sampling interval. Default 1000 ms. */
  intervalMs?: number
  /** Span of the sparklines. Default 60 000 ms (the last minute). */
  windowMs?: number
  /** Keep sampling this long after the last subscriber left (a reload does not re-warm). Default 5 000 ms. */
  lingerMs?: number
  sampler?: Sampler
  /** Prefix of the card ids. Default 'metric'. */
  idPrefix?: string
}

const GIB = 1024 ** 3

function scaleRate (bytesPerSecond: number): { value: number, unit: string } {
  if (!Number.isFinite(bytesPerSecond)) return { value: NaN, unit: 'B/s' }
  if (bytesPerSecond >= 1024 ** 2) return { value: bytesPerSecond / 1024 ** 2, unit: 'MiB/s' }
  if (bytesPerSecond >= 1024) return { value: bytesPerSecond / 1024, unit: 'KiB/s' }
  return { value: bytesPerSecond, unit: 'B/s' }
}

const pct = (used: number, total: number): number => total > 0 ? used / total * 100 : NaN
const gib = (bytes: number): string => (bytes / GIB).toFixed(1)

/**
 * The sampling loop and the state the cards are rendered from. Create one
 * per app; `metricsRoutes` creates its own unless you pass `feed`.
 */
export class MetricsFeed {
  readonly topic: string
  readonly intervalMs: number
  readonly idPrefix: string
  readonly sampler: Sampler
  readonly #size: number
  readonly #lingerMs: number
  #hub: SseHub | undefined
  #log: FastifyBaseLogger | undefined
  #unwatch: (() => void) | undefined
  #timer: NodeJS.Timeout | undefined
  #linger: NodeJS.Timeout | undefined
  #running = false
  #generation = 0
  #latest: MetricsSample | undefined
  readonly #series = { cpu: [] as number[], memory: [] as number[], load: [] as number[], disk: [] as number[], rx: [] as number[], tx: [] as number[] }

  constructor (options: MetricsOptions = {}) {
    this.topic = options.topic ?? 'metrics'
    this.intervalMs = options.intervalMs ?? 1000
    this.idPrefix = options.idPrefix ?? 'metric'
    this.sampler = options.sampler ?? systemSampler()
    this.#size = Math.max(2, Math.round((options.windowMs ?? 60_000) / this.intervalMs))
    this.#lingerMs = options.lingerMs ?? 5_000
  }

  /** @internal Connects the feed to an app's hub (done by `metricsRoutes`): it samples while the hub has a subscriber to `topic`. */
  bind (hub: SseHub, log: FastifyBaseLogger): void {
    this.#unwatch?.()
    this.#hub = hub
    this.#log = log
    this.#unwatch = hub.watch(this.topic, { start: () => this.#watched(), stop: () => this.#unwatched() })
  }

  /** Whether the loop is running. */
  get running (): boolean { return this.#running }

  get latest (): MetricsSample | undefined { return this.#latest }

  close (): void {
    this.#unwatch?.()
    this.#unwatch = undefined
    if (this.#linger !== undefined) clearTimeout(this.#linger)
    this.#linger = undefined
    this.#running = false
    this.#stop()
  }

  #watched (): void {
    if (this.#linger !== undefined) clearTimeout(this.#linger)
    this.#linger = undefined
    if (this.#running) return
    this.#running = true
    this.#start()
  }

  #unwatched (): void {
    const stop = (): void => {
      this.#linger = undefined
      this.#running = false
      this.#stop()
    }
    if (this.#lingerMs <= 0) return stop()
    this.#linger = setTimeout(stop, this.#lingerMs)
    this.#linger.unref()
  }

  #start (): void {
    const generation = ++this.#generation
    const run = async (): Promise<void> => {
      try {
        await this.sampler.warmUp?.()
      } catch (err) {
        this.#log?.warn({ err }, 'metrics: sampler warm-up failed')
      }
      if (generation !== this.#generation) return
      await this.#tick(generation)
    }
    void run()
  }

  #stop (): void {
    this.#generation++
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }

  async #tick (generation: number): Promise<void> {
    const started = Date.now()
    try {
      const sample = await this.sampler.sample()
      if (generation !== this.#generation) return
      this.#record(sample)
      await this.#hub?.publish(this.topic, { data: this.Updates() })
    } catch (err) {
      if (generation === this.#generation) this.#log?.warn({ err }, 'metrics: sampling failed')
    }
    if (generation !== this.#generation) return
    // setTimeout chain, not setInterval: a slow sample never overlaps the next.
    const delay = Math.max(0, this.intervalMs - (Date.now() - started))
    this.#timer = setTimeout(() => { void this.#tick(generation) }, delay)
    this.#timer.unref()
  }

  #record (s: MetricsSample): void {
    this.#latest = s
    const push = (series: number[], value: number): void => {
      series.push(value)
      if (series.length > this.#size) series.splice(0, series.length - this.#size)
    }
    push(this.#series.cpu, s.cpu)
    push(this.#series.memory, pct(s.memory.used, s.memory.total))
    push(this.#series.load, s.load[0])
    push(this.#series.disk, pct(s.disk.used, s.disk.size))
    push(this.#series.rx, s.net.rx)
    push(this.#series.tx, s.net.tx)
  }

  /** Ids of the card slots, in display order. */
  slotIds (): string[] {
    return ['cpu', 'memory', 'load', 'disk', 'cores', 'rx', 'tx'].map(k => `${this.idPrefix}-${k}-slot`)
  }

  /** The cards for the current state, keyed by slot id. */
  cards (): Array<[string, JSX.Element]> {
    const s = this.#latest
    const p = this.idPrefix
    const [cpuSlot, memSlot, loadSlot, diskSlot, coresSlot, rxSlot, txSlot] = this.slotIds() as [string, string, string, string, string, string, string]
    const cpus = s?.cpuCount ?? os.cpus().length
    const loadThresholds: Thresholds = { warn: cpus * 0.7, crit: cpus }
    const rx = scaleRate(s?.net.rx ?? NaN)
    const tx = scaleRate(s?.net.tx ?? NaN)
    const range = { min: 0, max: 100 }
    return [
      [cpuSlot, <MetricCard id={`${p}-cpu`} label='CPU' value={s?.cpu ?? NaN} unit='%' thresholds={{ warn: 70, crit: 90 }} history={this.#series.cpu} historyRange={range} detail={`${cpus} cores · last minute`} />],
      [memSlot, <MetricCard id={`${p}-memory`} label='Memory' value={s === undefined ? NaN : pct(s.memory.used, s.memory.total)} unit='%' thresholds={{ warn: 80, crit: 92 }} history={this.#series.memory} historyRange={range} detail={s === undefined ? undefined : `${gib(s.memory.used)} of ${gib(s.memory.total)} GiB in use`} />],
      [loadSlot, <MetricCard id={`${p}-load`} label='Load average' value={s?.load[0] ?? NaN} precision={2} thresholds={loadThresholds} history={this.#series.load} detail={s === undefined ? undefined : `5 min ${s.load[1].toFixed(2)} · 15 min ${s.load[2].toFixed(2)}`} />],
      [diskSlot, <MetricCard id={`${p}-disk`} label='Disk' value={s === undefined ? NaN : pct(s.disk.used, s.disk.size)} unit='%' thresholds={{ warn: 80, crit: 90 }} history={this.#series.disk} historyRange={range} detail={s === undefined ? undefined : `${gib(s.disk.used)} of ${gib(s.disk.size)} GiB used`} />],
      [coresSlot, (
        <section id={`${p}-cores`} class='card metric cores-card'>
          <header><h2 class='label'>Per core</h2></header>
          <CoreBars cores={s?.cores ?? []} />
        </section>
      )],
      [rxSlot, <MetricCard id={`${p}-rx`} label='Network in' value={rx.value} unit={rx.unit} history={this.#series.rx} detail='all interfaces but lo' />],
      [txSlot, <MetricCard id={`${p}-tx`} label='Network out' value={tx.value} unit={tx.unit} history={this.#series.tx} detail='all interfaces but lo' />]
    ]
  }

  /** One (unnamed) event's data: every card as the new content of its slot. */
  Updates (): JSX.Element {
    return <>{this.cards().map(([slot, card]) => <Update id={slot}>{card}</Update>)}</>
  }

  /** The cards in their slots; the page is live on `topic`. */
  Panel (): JSX.Element {
    return (
      <>
        {this.cards().map(([slot, card]) => <div id={slot} class='slot'>{card}</div>)}
      </>
    )
  }
}

export interface MetricsRoutesOptions extends MetricsOptions {
  /** Share a feed with other pages (e.g. a dashboard that embeds the cards). */
  feed?: MetricsFeed
}

/** `GET /` a live metrics page. The loop samples only while some page is connected. */
export const metricsRoutes = routeModule<MetricsRoutesOptions>('metrics', async (app, options) => {
  const feed = options.feed ?? new MetricsFeed(options)
  feed.bind(app.sseHub, app.log)
  app.addHook('onClose', async () => feed.close())

  app.get('/', async (_request, reply) => {
    const live = await reply.live([feed.topic])
    return reply.html(
      <RoutePage title='Metrics' live={live}>
        <header class='app'><h1>Metrics</h1></header>
        <main class='app'>
          <div class='grid'>{feed.Panel()}</div>
          {live.element}
        </main>
      </RoutePage>
    )
  })
})
