// The event payload shared by every server variant and parsed by the load
// generator: "<seq> <sendTimeMs> " followed by padding to the target size.

/** Wall-clock milliseconds with µs resolution, comparable across processes. */
export function nowMs (): number {
  return performance.timeOrigin + performance.now()
}

const PAD = 'x'.repeat(64 * 1024)

/** A text payload of exactly `size` bytes (at least the header length). */
export function textPayload (seq: number, size: number, ts = nowMs()): string {
  const head = `${seq} ${ts.toFixed(3)} `
  return size > head.length ? head + PAD.slice(0, size - head.length) : head
}

/** The same header, for payloads whose body is something else (rendered HTML). */
export function payloadHead (seq: number, ts = nowMs()): string {
  return `${seq} ${ts.toFixed(3)} `
}
