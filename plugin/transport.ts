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
  /** Events of the topic with an id greater than the one asked for, oldest first. */
  readonly events: HubMessage[]
  /** False when history no longer reaches back to the id (trimmed, unknown, or from the future). */
  readonly complete: boolean
}

export interface HubTransport {
  /**
   * Starts delivering every message published on any topic, by any instance,
   * in id order. Called once by the hub at plugin start. Call `resync()`
   * before delivering past a gap (events this instance can no longer deliver
   * live): the hub closes every subscriber, and their reconnects are replayed
   * from history (or reset), so a connected client never skips events silently.
   */
  start (deliver: (message: HubMessage) => void, log: FastifyBaseLogger, resync?: () => void): Promise<void>
  /** Assigns an id, stores the event, and resolves with the id once it is accepted. */
  publish (topic: string, event: PublishInput): Promise<string>
  /** What a client that last saw `afterId` missed on `topic`. */
  since (topic: string, afterId: string): Promise<SinceResult>
  /** The newest `limit` events of `topic`, oldest first. */
  history (topic: string, limit: number): Promise<HubMessage[]>
  /** The newest id assigned on any topic, if any (the id a `reset` event carries). */
  head (): Promise<string | undefined>
  /** Drops a topic's history now (a run the store no longer keeps). Optional: without it, history stays until trimmed. */
  forget? (topic: string): Promise<void>
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
