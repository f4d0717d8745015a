/**
 * A hub stats card: `app.sseHub.stats()` every 2 s, only while some stream watches.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { HubStats, SseHub } from '../plugin/index.js'
import { Layout, SseConnect, SseSwap } from '../views/index.js'
import { Watchers, RouteHead, routeModule, watchedStreamRoute } from './util.js'

export interface HubStatsOptions {
  /** Hub topic. Default 'hub-stats'. */
  topic?: string
  /** SSE event. Default 'hub_stats'. */
  event?: string
  /** Default 2 000 ms. */
  intervalMs?: number
}

const fmt = new Intl.NumberFormat('en-US')

/** The card body for one stats reading (`rate` = events published per second since the last reading). */
export function HubStatsCard (props: { stats: HubStats, rate?: number }): JSX.Element {
  const s = props.stats
  const topics = Object.entries(s.topics).sort((a, b) => b[1] - a[1])
  const cells: Array<[string, string, string?]> = [
    ['Connections', fmt.format(s.connections)],
    ['Topics watched', fmt.format(topics.length)],
    ['Published', fmt.format(s.published), props.rate === undefined ? undefined : `${props.rate.toFixed(1)}/s`],
    ['Delivered', fmt.format(s.delivered)],
    ['Replayed', fmt.format(s.replayed)],
    ['Evicted', fmt.format(s.evicted)],
    ['Resets', fmt.format(s.resets)]
  ]
  return (
    <>
      <dl class='stats-grid'>
        {cells.map(([label, value, extra]) => (
          <div class={label === 'Evicted' && s.evicted > 0 ? 'stat warn' : 'stat'}>
            <dt safe>{label}</dt>
            <dd><span class='num' safe>{value}</span>{extra === undefined ? '' : <span class='muted small' safe>{` ${extra}`}</span>}</dd>
          </div>
        ))}
      </dl>
      <p class='muted small topics-line' safe>{topics.length === 0 ? 'no subscribers' : topics.map(([t, n]) => `${t} ×${n}`).join(' · ')}</p>
    </>
  )
}

/** Publishes stats every `intervalMs` while watched. */
export class HubStatsFeed {
  readonly topic: string
  readonly event: string
  readonly intervalMs: number
  readonly #watchers: Watchers
  #hub: SseHub | undefined
  #log: FastifyBaseLogger | undefined
  #timer: NodeJS.Timeout | undefined
  #last: { at: number, published: number } | undefined

  constructor (options: HubStatsOptions = {}) {
    this.topic = options.topic ?? 'hub-stats'
    this.event = options.event ?? 'hub_stats'
    this.intervalMs = options.intervalMs ?? 2_000
    this.#watchers = new Watchers(() => this.#start(), () => this.#stop())
  }

  bind (hub: SseHub, log: FastifyBaseLogger): void {
    this.#hub = hub
    this.#log = log
  }

  watch (signal: AbortSignal): void { this.#watchers.watch(signal) }
  get running (): boolean { return this.#watchers.running }
  close (): void { this.#watchers.close() }

  /** The current card body (also what the page renders first). */
  Card (): JSX.Element {
    const stats = this.#hub?.stats() ?? { connections: 0, topics: {}, published: 0, delivered: 0, replayed: 0, evicted: 0, resets: 0 }
    const now = Date.now()
    const rate = this.#last === undefined || now === this.#last.at ? undefined : (stats.published - this.#last.published) / ((now - this.#last.at) / 1000)
    return <HubStatsCard stats={stats} rate={rate} />
  }

  /** The card with its swap target. Put it inside an `<SseConnect>` subscribed to `topic`. */
  Panel (): JSX.Element {
    return (
      <section class='card hub-stats' aria-label='Hub'>
        <header><h2>SSE hub</h2><span class='muted small' safe>{`this instance · every ${this.intervalMs / 1000} s`}</span></header>
        <SseSwap id='hub-stats-body' event={this.event} swap='innerHTML'>{this.Card()}</SseSwap>
      </section>
    )
  }

  #start (): void {
    const publish = (): void => {
      const card = this.Card()
      const stats = this.#hub?.stats()
      if (stats !== undefined) this.#last = { at: Date.now(), published: stats.published }
      this.#hub?.publish(this.topic, { event: this.event, data: card }).catch((err: unknown) => this.#log?.debug({ err }, 'hub stats: publish failed'))
    }
    publish()
    this.#timer = setInterval(publish, this.intervalMs)
    this.#timer.unref()
  }

  #stop (): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
  }
}

/** `GET /` a stats page, `GET /stream` its SSE. */
export const hubStatsRoutes = routeModule<HubStatsOptions & { feed?: HubStatsFeed }>('stats', async (app, options) => {
  const feed = options.feed ?? new HubStatsFeed(options)
  feed.bind(app.sseHub, app.log)
  app.addHook('onClose', async () => feed.close())
  const base = app.prefix

  watchedStreamRoute(app, feed)

  app.get('/', async (_request, reply) => reply.html(
    <Layout title='SSE hub' head={<RouteHead />}>
      <main class='app'>
        <SseConnect url={`${base}/stream`}>{feed.Panel()}</SseConnect>
      </main>
    </Layout>
  ))
})
