/**
 * `sseTest(app).captureBroadcasts()`: what the app's routes (and anything else holding
 * `app.sseHub`) publish, as the hub accepted it: topic, event name, the data
 * as the HTML string every subscriber gets, and the id the hub assigned.
 * No socket and no subscriber needed, so a test asserts on a POST's
 * broadcast the way it asserts on its response.
 */
import type { FastifyInstance } from 'fastify'
import type { HubEvent, SseHub } from '../hub.js'
import { SseNotReadyError } from '../errors.js'
import { Queue, type Match } from './queue.js'
import type { TestEvent } from './stream.js'

/** One accepted publish. */
type Broadcast = TestEvent & {
  /** The topic it was published to. */
  readonly topic: string
  /** The id the hub assigned (the Last-Event-ID of subscribers that got it). */
  readonly id: string
}

export interface BroadcastCapture {
  /** Every broadcast recorded so far, in the order the hub accepted them. */
  readonly broadcasts: readonly Broadcast[]
  /**
   * The first broadcast matching `match` (`{ topic, event }`, or a
   * predicate) that no `next()` returned yet, waiting up to `timeoutMs`
   * (default 5 000) for one; rejects with `HTMX_SSE_TEST_TIMEOUT`. Ask before
   * or after the request that publishes: nothing recorded is missed.
   */
  next (match?: Match<Broadcast>, timeoutMs?: number): Promise<Broadcast>
  /** Stops recording (what was recorded stays readable). */
  stop (): void
}

type Publish = SseHub['publish']
type Recorder = (broadcast: Broadcast) => void

/** One wrapper per hub, however many captures: stopping one leaves the others recording. */
const recorders = new WeakMap<SseHub, Set<Recorder>>()
const wrappers = new WeakMap<SseHub, Publish>()

function wrap (hub: SseHub): Set<Recorder> {
  let set = recorders.get(hub)
  if (set !== undefined) return set
  const own = set = new Set()
  recorders.set(hub, own)
  const publish: Publish = hub.publish
  const wrapped: Publish = async function (this: SseHub, topic, event) {
    // Read as publish() reads them, before its data is awaited: a caller changing the object afterwards changes nothing.
    const name = (event as HubEvent | null)?.event
    const pending = (event as HubEvent | null)?.data
    const id = await publish.call(this, topic, event)
    if (own.size > 0) {
      const broadcast: Broadcast = { topic, id, event: name ?? 'message', data: await pending as string }
      for (const record of own) record(broadcast)
    }
    return id
  }
  Object.defineProperty(hub, 'publish', { value: wrapped, configurable: true, writable: true })
  wrappers.set(hub, wrapped)
  return own
}

/** The last capture of a hub stopped: its own publish again, unless something wrapped ours meanwhile. */
function unwrap (hub: SseHub, set: Set<Recorder>): void {
  if (set.size > 0 || recorders.get(hub) !== set) return
  recorders.delete(hub)
  if (hub.publish === wrappers.get(hub)) delete (hub as Partial<Pick<SseHub, 'publish'>>).publish
  wrappers.delete(hub)
}

/**
 * Records what is published to `app.sseHub` from now on (after the plugin
 * registered: `await app.ready()` or `register` first), until `stop()`.
 * Only publishes the hub accepted are recorded (a rejected one throws to its caller as usual).
 *
 */
export function captureBroadcasts (app: FastifyInstance): BroadcastCapture {
  const hub = (app as Partial<Pick<FastifyInstance, 'sseHub'>>).sseHub
  if (hub === undefined) throw new SseNotReadyError('sseTest(app).captureBroadcasts(): app.sseHub is missing; register fastify-htmx-sse and await it (or app.ready()) first')
  const queue = new Queue<Broadcast>()
  const set = wrap(hub)
  const record: Recorder = broadcast => queue.push(broadcast)
  set.add(record)
  return {
    broadcasts: queue.entries,
    next: async (match, timeoutMs = 5000) => await queue.next(match, timeoutMs, 'captureBroadcasts'),
    stop: () => {
      set.delete(record)
      unwrap(hub, set)
      queue.end('the capture was stopped')
    }
  }
}
