// Child processes for the driver: node + tsx under a raised fd limit, an IPC
// request/reply helper with timeouts, and kill-on-exit bookkeeping.
import { type ChildProcess, spawn } from 'node:child_process'

/** Omit that distributes over a union of message types. */
export type Outgoing<T> = T extends unknown ? Omit<T, 'id'> : never

const live = new Set<ChildProcess>()
let hooked = false

function killAll (): void {
  for (const child of live) child.kill('SIGKILL')
  live.clear()
}

function hookExit (): void {
  if (hooked) return
  hooked = true
  process.on('exit', killAll)
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      killAll()
      process.exit(130)
    })
  }
}

/** Raise the soft fd limit as far as allowed (65535, else the hard limit), then exec node. */
const WRAPPER = 'ulimit -n 65535 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"'

export class Child<Req extends { t: string, id: number }, Rep extends { t: string }> {
  readonly proc: ChildProcess
  exited: { code: number | null, signal: string | null } | null = null
  private nextId = 1
  private waiting = new Map<number, { resolve: (r: Rep) => void, reject: (e: Error) => void, timer: NodeJS.Timeout }>()
  private listeners: Array<(msg: Rep) => void> = []

  constructor (readonly name: string, script: string, nodeArgs: string[] = [], env: Record<string, string> = {}) {
    hookExit()
    // The child's stdout goes to our stderr: our stdout is for the results.
    this.proc = spawn('bash', ['-c', WRAPPER, process.execPath, ...nodeArgs, '--import', 'tsx', script], {
      stdio: ['ignore', process.stderr, process.stderr, 'ipc'],
      env: { ...process.env, NODE_ENV: 'production', ...env }
    })
    live.add(this.proc)
    this.proc.on('message', (msg: Rep & { id?: number }) => {
      if (typeof msg.id === 'number') {
        const w = this.waiting.get(msg.id)
        if (w) {
          this.waiting.delete(msg.id)
          clearTimeout(w.timer)
          w.resolve(msg)
          return
        }
      }
      for (const l of this.listeners) l(msg)
    })
    this.proc.on('exit', (code, signal) => {
      live.delete(this.proc)
      this.exited = { code, signal }
      for (const w of this.waiting.values()) {
        clearTimeout(w.timer)
        w.reject(new Error(`${name} exited (code ${code}, signal ${signal})`))
      }
      this.waiting.clear()
    })
  }

  get pid (): number {
    return this.proc.pid ?? -1
  }

  /** Wait for an unsolicited message of type `t`. */
  waitFor<T extends Rep['t']> (t: T, timeoutMs: number): Promise<Extract<Rep, { t: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { done(); reject(new Error(`${this.name}: no '${t}' within ${timeoutMs} ms`)) }, timeoutMs)
      const onExit = (): void => { done(); reject(new Error(`${this.name} exited before '${t}'`)) }
      const l = (msg: Rep): void => {
        if (msg.t === t) { done(); resolve(msg as Extract<Rep, { t: T }>) }
      }
      const done = (): void => {
        clearTimeout(timer)
        this.listeners = this.listeners.filter((x) => x !== l)
        this.proc.off('exit', onExit)
      }
      this.listeners.push(l)
      this.proc.once('exit', onExit)
    })
  }

  /** Send a request and wait for the reply with the same id. */
  request<M extends Outgoing<Req>> (msg: M, timeoutMs: number): Promise<Extract<Rep, { t: M['t'] }>> {
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      if (this.exited || !this.proc.connected) {
        reject(new Error(`${this.name} is not running`))
        return
      }
      const timer = setTimeout(() => {
        this.waiting.delete(id)
        reject(new Error(`${this.name}: no reply to '${msg.t}' within ${timeoutMs} ms`))
      }, timeoutMs)
      this.waiting.set(id, { resolve: resolve as (r: Rep) => void, reject, timer })
      this.proc.send({ ...msg, id })
    })
  }

  /** Ask politely, then kill; resolves once the process is gone. */
  async stop (exitRequest?: Outgoing<Req>, graceMs = 2000): Promise<void> {
    if (this.exited) return
    const gone = new Promise<void>((resolve) => this.proc.once('exit', () => resolve()))
    if (exitRequest) this.request(exitRequest, graceMs).catch(() => {})
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs)
    await gone
    clearTimeout(timer)
  }
}
