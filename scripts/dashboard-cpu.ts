/**
 * Measures the example dashboard's server CPU with N pages open: starts
 * `npm start` on a free port, loads the page N times and opens each page's
 * one SSE connection (the URL the page itself carries), then reads the
 * server's utime+stime from /proc over a window.
 *
 *   npx tsx scripts/dashboard-cpu.ts [pages=1,100] [seconds=20]
 */
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import http from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'

const pagesList = (process.argv[2] ?? '1,100').split(',').map(Number)
const seconds = Number(process.argv[3] ?? 20)
const TICKS = 100 // USER_HZ on Linux

function cpuTicks (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12]) // utime + stime (fields 14, 15)
}

function get (url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', c => { body += c })
      res.on('end', () => resolve(body))
    }).on('error', reject)
  })
}

function openStream (url: string): { bytes: () => number, close: () => void } {
  let bytes = 0
  const req = http.get(url, { agent: false, headers: { accept: 'text/event-stream' } }, res => {
    res.on('data', (c: Buffer) => { bytes += c.length })
  })
  req.on('error', () => {})
  return { bytes: () => bytes, close: () => req.destroy() }
}

async function measure (pages: number): Promise<{ pages: number, cpuPct: number, kbPerSec: number }> {
  const port = 3900 + pages % 97
  const server = spawn('node', ['--conditions=htmx-sse-source', '--import', 'tsx', 'example-app/server.tsx'], {
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', 'ignore', 'inherit']
  })
  const base = `http://127.0.0.1:${port}`
  try {
    for (let i = 0; ; i++) {
      try { await get(`${base}/`); break } catch { if (i > 100) throw new Error('server did not start'); await sleep(100) }
    }
    const streams = []
    for (let i = 0; i < pages; i++) {
      const html = await get(`${base}/`)
      const connect = /sse-connect="([^"]+)"/.exec(html)?.[1]?.replaceAll('&amp;', '&')
      if (connect === undefined) throw new Error('no sse-connect on the page')
      // What the resume script adds to an htmx 2 page's connection (the stream route refuses one without it).
      streams.push(openStream(`${base}${connect}&sseResume=1`))
    }
    await sleep(3000) // let samplers warm up
    const t0 = cpuTicks(server.pid!)
    const b0 = streams.reduce((n, s) => n + s.bytes(), 0)
    await sleep(seconds * 1000)
    const used = (cpuTicks(server.pid!) - t0) / TICKS
    const bytes = streams.reduce((n, s) => n + s.bytes(), 0) - b0
    for (const s of streams) s.close()
    return { pages, cpuPct: 100 * used / seconds, kbPerSec: bytes / 1024 / seconds }
  } finally {
    server.kill('SIGTERM')
    await sleep(500)
  }
}

for (const pages of pagesList) {
  const r = await measure(pages)
  console.log(`${r.pages} page(s): server CPU ${r.cpuPct.toFixed(1)}% of one core over ${seconds} s, ${r.kbPerSec.toFixed(1)} KiB/s of SSE sent`)
}
