/**
 * The contract between the hub and where events live: who assigns ids, who
 * keeps history, and how a publish on one instance reaches the others.
 * Ids are decimal integers (as strings) that only grow, across topics and
 * instances, so one Last-Event-ID positions a multi-topic connection.
 *
 * A transport that returns the same message object again (the memory
 * transport's history) lets the hub reuse the frame it encoded for it.
 */
import type { FastifyBaseLogger } from 'fastify'

/** A rendered event as the transport stores it. */
export interface HubMessage {
  readonly id: string
  readonly topic: string
  readonly event?: string | undefined
  readonly data: string
  readonly retry?: number | undefined
}

export interface PublishInput {
  readonly event?: string | undefined
  readonly data: string
  readonly retry?: number | undefined
}

export interface SinceResult {
  /** Events of the topics with `afterId` < id ≤ `upTo`, in id order across topics. */
  readonly events: HubMessage[]
  /** False when history no longer reaches back to the id on some topic (trimmed, expired, unknown, or from the future). */
  readonly complete: boolean
  /** Where this replay ends: pass it back to read the next page. */
  readonly upTo: string
  /** True when events up to `upTo` may remain: read the next page after the last event of this one. */
  readonly more: boolean
}

export interface SincePage {
  /** How many events this page should hold at most (a transport holding history in process may return them all at once). */
  readonly limit: number
  /** The `upTo` of the replay's first page; absent on the first page. */
  readonly upTo?: string | undefined
}

export interface HubTransport {
  /**
   * Starts delivering every message published on any topic, by any instance,
   * in id order. Called once by the hub at plugin start. Call `resync()`
   * before delivering past a gap (events this instance can no longer deliver
   * live): the hub closes every subscriber, and their reconnects are replayed
   * from history (or reset), so a connected client never skips events silently.
   * Call `reset(id)` instead when the events of the gap are gone for good
   * (the store lost data): every connected subscriber gets a `reset` event
   * carrying `id`, in order with the live events after it, and events after
   * `id` can be replayed. `lostBefore` (a `performance.now()` instant, when
   * known): the data was surely lost before it, so a subscriber that
   * subscribed later cannot have missed a lost event and gets no `reset`.
   */
  start (deliver: (message: HubMessage) => void, log: FastifyBaseLogger, resync?: () => void, reset?: (id: string, lostBefore?: number) => void): Promise<void>
  /** Assigns an id, stores the event, and resolves with the id once it is accepted. */
  publish (topic: string, event: PublishInput): Promise<string>
  /**
   * One page of what a client that last saw `afterId` missed on `topics`,
   * read at one instant for all of them. The first page (no `page.upTo`)
   * fixes where the replay ends: `upTo` is at or past every event this
   * instance delivered live before the call, so whatever comes after it
   * reaches the subscriber live. Later pages pass that `upTo` back, with
   * `afterId` the last event of the previous page. When a page with
   * `more: false` resolves, live delivery here has passed `upTo`.
   */
  since (topics: readonly string[], afterId: string, page: SincePage): Promise<SinceResult>
  /** The newest `limit` events of `topic`, oldest first. */
  history (topic: string, limit: number): Promise<HubMessage[]>
  /** The newest id assigned on any topic, if any (the id a `reset` event carries). */
  head (): Promise<string | undefined>
  /** Drops a topic's history now (a run the store no longer keeps). Optional: without it, history stays until trimmed. */
  forget? (topic: string): Promise<void>
  /**
   * Whether the transport can deliver now (its store connected, live delivery
   * running), with why not: what `sseHub.ready()` reports. Synchronous and
   * cheap (a probe calls it). Optional: without it, the transport is always ready.
   */
  ready? (): { ready: boolean, reason?: string }
  /** Stops delivery and releases every timer, connection and subscription. */
  close (): Promise<void>
}

/** Ids are canonical decimal integers up to 2^53. */
const ID = /^(0|[1-9]\d{0,15})$/

/** Parses a hub id, or returns undefined for anything that is not one. */
export function parseId (id: string | undefined): number | undefined {
  if (id === undefined || !ID.test(id)) return undefined
  const n = Number(id)
  return Number.isSafeInteger(n) ? n : undefined
}
