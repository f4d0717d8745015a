// Scenario definitions: full and --quick sizes.
import type { PayloadKind } from './messages.js'

export interface Scenario {
  name: string
  description: string
  clients: number
  /** Clients that stop reading until publishing ends (slow-consumer scenario). */
  slow: number
  count: number
  intervalMs: number
  size: number
  kind: PayloadKind
  /** Variants to run (undefined = all). */
  only?: string[]
  connectCapMs: number
  /** Give up waiting for delivery when nothing new arrived for this long. */
  idleMs: number
  /** Hard cap on the delivery wait after publishing ends. */
  drainCapMs: number
}

const YIELD_EVERY = 10
export { YIELD_EVERY }

export function scenarios (quick: boolean): Scenario[] {
  const q = <T>(full: T, small: T): T => (quick ? small : full)
  const idleMs = q(5000, 2000)
  return [
    {
      name: 'fanout-1k',
      description: 'clients subscribed to one topic; 512 B events every 20 ms',
      clients: q(1000, 200),
      slow: 0,
      count: q(200, 60),
      intervalMs: 20,
      size: 512,
      kind: 'text',
      connectCapMs: q(60_000, 20_000),
      idleMs,
      drainCapMs: q(60_000, 20_000)
    },
    {
      name: 'fanout-10k',
      description: 'as fanout-1k with ten times the clients',
      clients: q(10_000, 2000),
      slow: 0,
      count: q(200, 60),
      intervalMs: 20,
      size: 512,
      kind: 'text',
      connectCapMs: q(120_000, 30_000),
      idleMs,
      drainCapMs: q(90_000, 20_000)
    },
    {
      name: 'burst',
      description: `256 B events published in a loop as fast as possible (setImmediate every ${YIELD_EVERY})`,
      clients: q(1000, 200),
      slow: 0,
      count: q(2000, 500),
      intervalMs: 0,
      size: 256,
      kind: 'text',
      connectCapMs: q(60_000, 20_000),
      idleMs,
      drainCapMs: q(90_000, 20_000)
    },
    {
      name: 'slow',
      description: '8 KiB events; the slow clients stop reading until publishing ends, then resume (and reconnect with Last-Event-ID if closed)',
      // Loopback kernel buffers absorb ~4 MiB per paused client: publish more than that.
      clients: q(200, 50),
      slow: q(20, 5),
      count: q(1000, 800),
      intervalMs: q(10, 4),
      size: 8192,
      kind: 'text',
      connectCapMs: q(60_000, 20_000),
      idleMs,
      drainCapMs: q(120_000, 30_000)
    },
    {
      name: 'render',
      description: 'a MetricCard-like JSX component rendered and published every 20 ms',
      clients: q(10_000, 2000),
      slow: 0,
      count: q(200, 60),
      intervalMs: 20,
      size: 0,
      kind: 'card',
      only: ['ours', 'raw'],
      connectCapMs: q(120_000, 30_000),
      idleMs,
      drainCapMs: q(90_000, 20_000)
    }
  ]
}
