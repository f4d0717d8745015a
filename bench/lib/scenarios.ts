// Scenario definitions: full and --quick sizes.
import type { PayloadKind } from './messages.js'

export interface Scenario {
  name: string
  description: string
  clients: number
  /** Clients that stop reading until publishing ends (slow-consumer scenario). */
  slow: number
  count: number
  /**
   * The first `warmup` events are timed apart (their p99 is reported as
   * warm-up): cold code paths and first fan-outs would otherwise decide p99.
   * The same number for every variant.
   */
  warmup: number
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
      // Long enough that the tail is the steady state's, not the first fan-outs'.
      count: q(600, 100),
      warmup: q(100, 20),
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
      count: q(300, 100),
      warmup: q(50, 20),
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
      warmup: q(200, 50),
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
      warmup: q(100, 80),
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
      warmup: q(20, 10),
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

/**
 * Capacity: for a number of subscribers, the highest publish rate at which
 * every subscriber gets every event (0 lost), at least MIN_DELIVERED of the
 * offered deliveries per second arrive, and the p99 latency (warm-up left
 * out) stays within `p99LimitMs`. Rates are tried in ascending order, each
 * on a fresh server, until the first that misses.
 */
export interface CapacityScenario {
  name: string
  clients: number
  rates: number[]
  p99LimitMs: number
  /** Events published at `rate` per second: about `eventsPerRate`, within `maxSeconds` of publishing. */
  events: (rate: number) => number
  /** Variants that run it (the peers that have a broadcast path worth sizing, and ours). */
  only: string[]
}

export const MIN_DELIVERED = 0.95

export function capacityScenarios (quick: boolean): CapacityScenario[] {
  const rates = [5, 10, 20, 50, 100, 200]
  const events = (rate: number): number => Math.max(quick ? 30 : 60, Math.min(quick ? 60 : 200, Math.round(rate * (quick ? 4 : 10))))
  const only = ['ours', 'ours-norest', 'ours-redis', 'raw', 'better-sse', 'fastify-sse', 'baseline', 'baseline-opt']
  return [
    { name: 'capacity-1k', clients: quick ? 200 : 1000, rates, p99LimitMs: 100, events, only },
    // One pass over 10,000 sockets alone takes 100–200 ms of writes here: a 100 ms bound could not be met at any rate.
    { name: 'capacity-10k', clients: quick ? 2000 : 10_000, rates, p99LimitMs: 500, events, only }
  ]
}

/** The paced scenario that measures one rate of a capacity search. */
export function capacityStep (c: CapacityScenario, rate: number): Scenario {
  const count = c.events(rate)
  return {
    name: `${c.name}@${rate}`,
    description: `${c.clients} clients, ${count} × 512 B at ${rate} events/s`,
    clients: c.clients,
    slow: 0,
    count,
    warmup: Math.round(count / 10),
    intervalMs: 1000 / rate,
    size: 512,
    kind: 'text',
    connectCapMs: 120_000,
    idleMs: 5000,
    drainCapMs: 60_000
  }
}
