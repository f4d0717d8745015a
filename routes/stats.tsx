/**
 * A hub stats card: `app.sseHub.stats()` every 2 s, only while some stream watches.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { HubStats, SseHub } from '../plugin/index.js'
import { Oob } from '../views/sse.js'
import { htmxOf, PageConnect, RoutePage, routeModule, Watchers, watchedStreamRoute, type HtmxOption } from './util.js'

export interface HubStatsOptions {
  /** Hub topic. Default 'hub-stats'. */
  topic?: string
  /** Default 2 000 ms. */
  intervalMs?: number
  /** How a topic is shown on the card; topics with one label are counted together. Default `topicLabel`. */
  label?: (topic: string) => string
}

const GENERATED_ID = /:[a-z]?[0-9a-f]{8,}$/

/**
 * Topic names as the card shows them: a generated id after the last ':'
 * (`agent:r3f…`, `job:9c…`) becomes `*`, because such an id opens a visitor's
 * own run; named topics (`chat:lobby`) stay.
 */
export function topicLabel (topic: string): string {
  return topic.replace(GENERATED_ID, ':*')
}

const fmt = new Intl.NumberFormat('en-US')

/** The card body for one stats reading (`rate` = events published per second since the last reading). */
export function HubStatsCard (props: { stats: HubStats, rate?: number, label?: (topic: string) => string }): JSX.Element {
  const s = props.stats
  const label = props.label ?? topicLabel
  const counts = new Map<string, number>()
  for (const [topic, n] of Object.entries(s.topics)) counts.set(label(topic), (counts.get(label(topic)) ?? 0) + n)
  const topics = [...counts].sort((a, b) => b[1] - a[1])
  const cells: Array<[string, string, string?]> = [
    ['Connections', fmt.format(s.connections)],
    ['Topics watched', fmt.format(Object.keys(s.topics).length)],
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
  readonly intervalMs: number
  readonly label: (topic: string) => string
  readonly #watchers: Watchers
  #hub: SseHub | undefined
  #log: FastifyBaseLogger | undefined
  #timer: NodeJS.Timeout | undefined
  #last: { at: number, published: number } | undefined

  constructor (options: HubStatsOptions = {}) {
    this.topic = options.topic ?? 'hub-stats'
    this.intervalMs = options.intervalMs ?? 2_000
    this.label = options.label ?? topicLabel
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
    const stats = this.#hub?.stats() ?? { connections: 0, topics: {}, published: 0, delivered: 0, replayed: 0, writes: 0, evicted: 0, resets: 0 }
    const now = Date.now()
    const rate = this.#last === undefined || now === this.#last.at ? undefined : (stats.published - this.#last.published) / ((now - this.#last.at) / 1000)
    return <HubStatsCard stats={stats} rate={rate} label={this.label} />
  }

  /** The card (`#hub-stats-body`, replaced by each update). The page's `<SseConnect>` subscribes to `topic`. */
  Panel (): JSX.Element {
    return (
      <section class='card hub-stats' aria-label='Hub'>
        <header><h2>SSE hub</h2><span class='muted small' safe>{`this instance · every ${this.intervalMs / 1000} s`}</span></header>
        <div id='hub-stats-body'>{this.Card()}</div>
      </section>
    )
  }

  #start (): void {
    const publish = (): void => {
      const card = this.Card()
      const stats = this.#hub?.stats()
      if (stats !== undefined) this.#last = { at: Date.now(), published: stats.published }
      this.#hub?.publish(this.topic, { data: <Oob id='hub-stats-body' swap='innerHTML'>{card}</Oob> }).catch((err: unknown) => this.#log?.debug({ err }, 'hub stats: publish failed'))
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
export const hubStatsRoutes = routeModule<HubStatsOptions & HtmxOption & { feed?: HubStatsFeed }>('stats', async (app, options) => {
  const feed = options.feed ?? new HubStatsFeed(options)
  feed.bind(app.sseHub, app.log)
  app.addHook('onClose', async () => feed.close())
  const base = app.prefix
  const htmx = htmxOf(options)

  watchedStreamRoute(app, feed)

  app.get('/', async (_request, reply) => reply.html(
    <RoutePage app={app} htmx={htmx} title='SSE hub'>
      <main class='app'>
        {feed.Panel()}
        <PageConnect app={app} htmx={htmx} url={`${base}/stream`} />
      </main>
    </RoutePage>
  ))
})
