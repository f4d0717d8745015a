// The common half of every bench server: IPC with the driver, the publish loop
// (same payloads, same pacing for every variant), and its timing.
import { performance as perf } from 'node:perf_hooks'
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import { Histogram } from './hist.js'
import type { PublishPlan, PublishResult, ServerReply, ServerRequest } from './messages.js'
import { nowMs, payloadHead, textPayload } from './payload.js'
import { renderCard } from './render.js'

export interface BenchServer {
  /** Listen on 127.0.0.1 (port 0) and resolve with the port. */
  listen: () => Promise<number>
  /** Connected SSE clients, as the server sees them. */
  clients: () => number
  /** Send one `tick` event (sequence `seq`) to every client. */
  publish: (seq: number, data: string) => void | Promise<unknown>
  /** The library's own counters, if it keeps any (reported as notes). */
  stats?: () => Record<string, number>
  close: () => Promise<void>
  /** Other processes doing this server's work (e.g. a native child): their CPU and RSS count as the server's. */
  pids?: () => number[]
}

const MAX_LIFETIME_MS = 15 * 60_000

// Servers run with --no-warnings; warnings are counted and reported instead of
// flooding the driver's output (a peer can emit thousands of them).
const warnings: Record<string, number> = {}
process.on('warning', (w) => { warnings[w.name] = (warnings[w.name] ?? 0) + 1 })

function send (msg: ServerReply): void {
  process.send?.(msg)
}

async function payloadFor (plan: PublishPlan, seq: number): Promise<string> {
  if (plan.kind === 'card') return payloadHead(seq) + await renderCard(seq)
  return textPayload(seq, plan.size, nowMs())
}

async function runPlan (server: BenchServer, plan: PublishPlan): Promise<PublishResult> {
  const hist = new Histogram()
  let errors = 0
  let firstError: string | undefined
  const onError = (err: unknown): void => {
    errors++
    firstError ??= String(err)
  }
  const publishOne = async (seq: number): Promise<void> => {
    const t0 = performance.now()
    try {
      const data = await payloadFor(plan, seq)
      const r = server.publish(seq, data)
      if (r instanceof Promise) await r
    } catch (err) {
      onError(err)
    }
    hist.add((performance.now() - t0))
  }
  const start = performance.now()
  const startedAtMs = nowMs()
  if (plan.intervalMs > 0) {
    // Paced: event i is due at start + i * interval (drift-corrected).
    for (let seq = 0; seq < plan.count; seq++) {
      const due = start + seq * plan.intervalMs
      const wait = due - performance.now()
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait))
      await publishOne(seq)
    }
  } else {
    // Burst: a tight loop that yields to the event loop every `yieldEvery`.
    for (let seq = 0; seq < plan.count; seq++) {
      await publishOne(seq)
      if ((seq + 1) % plan.yieldEvery === 0) await yieldToLoop()
    }
  }
  const ms = performance.now() - start
  return {
    published: plan.count - errors,
    errors,
    ms,
    startedAtMs,
    meanPublishUs: hist.mean() * 1000,
    p99PublishUs: hist.percentile(0.99) * 1000,
    warnings,
    ...(firstError !== undefined ? { firstError } : {})
  }
}

/** Start a bench server and serve the driver's IPC requests until told to exit. */
export async function runServer (variant: string, server: BenchServer): Promise<void> {
  const port = await server.listen()
  const gc = (globalThis as { gc?: () => void }).gc
  let lastElu = perf.eventLoopUtilization()
  process.on('message', (msg: ServerRequest) => {
    switch (msg.t) {
      case 'clients':
        send({ t: 'clients', id: msg.id, n: server.clients() })
        break
      case 'gc':
        gc?.()
        gc?.()
        send({ t: 'gc', id: msg.id })
        break
      case 'stats': {
        // The loop's utilization since the previous stats request (the driver asks before and after publishing).
        const elu = perf.eventLoopUtilization(lastElu)
        lastElu = perf.eventLoopUtilization()
        send({ t: 'stats', id: msg.id, stats: server.stats?.() ?? {}, elu: elu.utilization })
        break
      }
      case 'publish':
        void runPlan(server, msg.plan).then((result) => send({ t: 'publish', id: msg.id, result }))
        break
      case 'exit':
        send({ t: 'exit', id: msg.id })
        // Exit without waiting for clients: sockets close with the process.
        setTimeout(() => process.exit(0), 20)
        break
    }
  })
  process.on('disconnect', () => process.exit(0))
  setTimeout(() => process.exit(2), MAX_LIFETIME_MS).unref()
  send({ t: 'ready', port, variant, pids: server.pids?.() ?? [] })
}

/** `listen` for the Fastify-based variants: loopback, a large backlog, the port it got. */
export async function listenFastify (app: { listen: (opts: { port: number, host: string, backlog: number }) => Promise<unknown>, server: { address: () => unknown } }): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1', backlog: 4096 })
  const addr = app.server.address() as { port: number } | string | null
  if (addr === null || typeof addr === 'string') throw new Error('no port')
  return addr.port
}
