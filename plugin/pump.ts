/**
 * `reply.sse(iterable)`: pulls events from an (async) iterable into a stream,
 * one at a time, only while the connection has room.
 */
import { SseInvalidSourceError } from './errors.js'
import { PULL_HIGH_WATER, type Session } from './session.js'
import type { SseEvent, SseStream, StreamControl } from './stream.js'

const noop = (): void => {}

export async function pump (
  stream: SseStream,
  session: Session,
  control: StreamControl,
  source: AsyncIterable<SseEvent> | Iterable<SseEvent>
): Promise<void> {
  const iterator = Symbol.asyncIterator in source
    ? source[Symbol.asyncIterator]()
    : (source as Iterable<SseEvent>)[Symbol.iterator]() as Iterator<SseEvent> | AsyncIterator<SseEvent>
  // Calling return() as soon as the client leaves lets a generator parked at
  // `yield` run its finally at once, instead of after its next value.
  session.onClose(() => { void Promise.resolve(iterator.return?.()).catch(noop) })
  try {
    while (!stream.closed) {
      const step = await iterator.next()
      if (step.done === true || stream.closed) break
      const ev = step.value
      if (ev === null || typeof ev !== 'object' || !('data' in ev)) {
        throw new SseInvalidSourceError('each item of the iterable must be an SseEvent object { data, event?, id?, retry? }')
      }
      await stream.send(ev)
      if (session.backlog > PULL_HIGH_WATER) await session.writable()
    }
    control.end('end')
  } catch (err) {
    control.fail(err, 'iterable')
  }
}
