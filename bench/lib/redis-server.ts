// A throwaway redis-server for the Redis variants: loopback, a free port, no
// persistence, started fresh for each measurement so no history carries over.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import net from 'node:net'

export interface BenchRedis {
  readonly url: string
  readonly pid: number
  readonly version: string
  stop: () => Promise<void>
}

/** The redis-server on PATH and its version, or undefined when there is none. */
export function redisServerVersion (): string | undefined {
  try {
    const out = execFileSync('redis-server', ['--version'], { encoding: 'utf8' })
    return /v=(\S+)/.exec(out)?.[1] ?? out.trim()
  } catch {
    return undefined
  }
}

function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port
      srv.close(() => resolve(port))
    })
  })
}

export async function startRedis (timeoutMs = 10_000): Promise<BenchRedis> {
  const version = redisServerVersion()
  if (version === undefined) throw new Error('redis-server not found (apt-get install -y redis-server)')
  const port = await freePort()
  const proc: ChildProcess = spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--maxclients', '1000', '--loglevel', 'warning'
  ], { stdio: ['ignore', 'pipe', 'pipe'] })
  const killOnExit = (): void => { proc.kill('SIGKILL') }
  process.on('exit', killOnExit)
  let log = ''
  proc.stdout?.on('data', (b: Buffer) => { log += b.toString() })
  proc.stderr?.on('data', (b: Buffer) => { log += b.toString() })
  const deadline = Date.now() + timeoutMs
  // Ready once it answers a PING over a plain socket.
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`redis-server exited: ${log.trim()}`)
    if (await pings(port)) break
    if (Date.now() > deadline) {
      proc.kill('SIGKILL')
      throw new Error(`redis-server did not answer within ${timeoutMs} ms: ${log.trim()}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    pid: proc.pid ?? -1,
    version,
    stop: () => new Promise((resolve) => {
      process.off('exit', killOnExit)
      if (proc.exitCode !== null) { resolve(); return }
      proc.once('exit', () => resolve())
      proc.kill('SIGKILL')
    })
  }
}

function pings (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port })
    const done = (ok: boolean): void => { s.destroy(); resolve(ok) }
    s.once('error', () => done(false))
    s.once('connect', () => s.write('PING\r\n'))
    s.once('data', (b) => done(b.toString().startsWith('+PONG')))
    setTimeout(() => done(false), 1000).unref()
  })
}
