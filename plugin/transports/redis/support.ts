/** Parsing and small helpers of the Redis transport. */
import type { FastifyBaseLogger } from 'fastify'
import { noop } from '../../redis/call.js'
import type { HubMessage } from '../../transport.js'
import { parseId } from '../../transport.js'

export type StreamEntry = [id: string, fields: string[]]

export const silentLog: FastifyBaseLogger = {
  level: 'silent', fatal: noop, error: noop, warn: noop, info: noop, debug: noop, trace: noop, silent: noop, child: () => silentLog
} as unknown as FastifyBaseLogger

/** Parses `<n>-0`, the only stream ids this transport writes. */
export function seqOf (streamId: string): number | undefined {
  const dash = streamId.indexOf('-')
  return dash > 0 ? parseId(streamId.slice(0, dash)) : undefined
}

export function messageOf (id: string, topic: string | undefined, fields: string[]): HubMessage | undefined {
  let event: string | undefined
  let data: string | undefined
  let retry: number | undefined
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const value = fields[i + 1]!
    switch (fields[i]) {
      case 'topic': topic = value; break
      case 'event': event = value; break
      case 'data': data = value; break
      case 'retry': retry = Number(value); break
    }
  }
  if (topic === undefined || data === undefined) return undefined
  return { id, topic, event, data, retry }
}

/**
 * At most `size` holders at once; the others wait in arrival order. Holds no
 * timer: a waiter costs one closure.
 */
export class Slots {
  #free: number
  readonly #queue: Array<() => void> = []

  constructor (size: number) {
    this.#free = size
  }

  async acquire (): Promise<void> {
    if (this.#free > 0) {
      this.#free--
      return
    }
    await new Promise<void>(resolve => this.#queue.push(resolve))
  }

  /** Hands the slot to the next waiter, if any. */
  release (): void {
    const next = this.#queue.shift()
    if (next !== undefined) next()
    else this.#free++
  }

  /** Lets every waiter go (on close: each then sees the transport closed). */
  drain (): void {
    for (const next of this.#queue.splice(0)) next()
  }
}
