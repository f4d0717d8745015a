// The floor: one write() syscall per socket per event, from C (floor.c), so the
// report shows what the kernel alone costs. This wrapper builds it and relays.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { runServer } from '../lib/server-harness.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const source = path.join(here, 'floor.c')
const outDir = path.join(here, '..', '..', '.bench-out')
const binary = path.join(outDir, 'floor')

/** Compile floor.c unless the binary is newer than the source. */
function build (): void {
  if (existsSync(binary) && statSync(binary).mtimeMs >= statSync(source).mtimeMs) return
  mkdirSync(outDir, { recursive: true })
  // Build to a temporary name and rename, so a concurrent start never runs a half-written binary.
  const tmp = `${binary}.${process.pid}.tmp`
  const r = spawnSync('gcc', ['-O2', '-Wall', '-Wextra', '-o', tmp, source], { stdio: ['ignore', 'inherit', 'inherit'] })
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    throw new Error('floor: gcc not found on PATH; the floor variant compiles bench/servers/floor.c (install gcc, e.g. apt-get install gcc)')
  }
  if (r.error !== undefined) throw r.error
  if (r.status !== 0) throw new Error(`floor: gcc failed to compile ${source} (exit ${r.status ?? r.signal})`)
  renameSync(tmp, binary)
}

build()
const child = spawn(binary, [], { stdio: ['pipe', 'pipe', 'inherit'] })
process.on('exit', () => { if (child.exitCode === null && child.signalCode === null) child.kill() })

let subscribed = 0
let exited = false
const acks: Array<{ resolve: () => void, reject: (err: Error) => void }> = []
let onPort: { resolve: (port: number) => void, reject: (err: Error) => void } | undefined
const port = new Promise<number>((resolve, reject) => { onPort = { resolve, reject } })
const exit = new Promise<void>((resolve) => child.once('exit', () => resolve()))

createInterface({ input: child.stdout }).on('line', (line) => {
  if (line === 'A') acks.shift()?.resolve()
  else if (line.startsWith('N ')) subscribed = Number(line.slice(2))
  else if (line.startsWith('PORT ')) onPort?.resolve(Number(line.slice(5)))
})
child.on('error', (err) => onPort?.reject(err))
child.stdin.on('error', () => {}) // EPIPE once the child is gone: reported through 'exit'
child.once('exit', (code, signal) => {
  exited = true
  const err = new Error(`floor: native server exited (${code ?? signal})`)
  onPort?.reject(err)
  for (const ack of acks.splice(0)) ack.reject(err)
})

await runServer('floor', {
  listen: () => port,
  clients: () => subscribed,
  publish: (_seq, data) => {
    if (exited) return Promise.reject(new Error('floor: native server is not running'))
    const frame = `event: tick\ndata: ${data}\n\n`
    return new Promise<void>((resolve, reject) => {
      acks.push({ resolve, reject })
      child.stdin.write(`F ${Buffer.byteLength(frame)}\n${frame}`)
    })
  },
  close: async () => {
    if (!exited) child.stdin.end('Q\n')
    await exit
  },
  pids: () => child.pid !== undefined ? [child.pid] : []
})
