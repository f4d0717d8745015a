// Process statistics from /proc (Linux only): CPU ticks and resident memory.
import { readFileSync } from 'node:fs'
import os from 'node:os'

/** Clock ticks per second used by /proc/<pid>/stat (USER_HZ; 100 on Linux). */
export const CLK_TCK = 100

export interface CpuTimes {
  /** utime: user space (JS, libuv, the C program's own code). */
  user: number
  /** stime: in the kernel on the process's behalf (syscalls, loopback TCP). */
  sys: number
}

/** utime and stime of a process, in seconds (all threads), or NaN if it is gone. */
export function cpuTimes (pid: number, file = `/proc/${pid}/stat`): CpuTimes {
  try {
    const stat = readFileSync(file, 'utf8')
    // comm (field 2) may contain spaces: parse after the closing parenthesis.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    return { user: Number(rest[11]) / CLK_TCK, sys: Number(rest[12]) / CLK_TCK }
  } catch {
    return { user: Number.NaN, sys: Number.NaN }
  }
}

/** utime and stime of a process's main thread (the event loop of a Node process), in seconds. */
export function mainThreadCpuTimes (pid: number): CpuTimes {
  return cpuTimes(pid, `/proc/${pid}/task/${pid}/stat`)
}

/** utime + stime of a process, in seconds (all threads), or NaN if it is gone. */
export function cpuSeconds (pid: number): number {
  const t = cpuTimes(pid)
  return t.user + t.sys
}

/** utime and stime summed over processes. */
export function cpuTimesOf (pids: readonly number[]): CpuTimes {
  let user = 0
  let sys = 0
  for (const pid of pids) {
    const t = cpuTimes(pid)
    user += t.user
    sys += t.sys
  }
  return { user, sys }
}

/** VmRSS of a process in KiB, or NaN if it is gone. */
export function rssKiB (pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
    return m ? Number(m[1]) : Number.NaN
  } catch {
    return Number.NaN
  }
}

/** Samples VmRSS (summed over processes) every `everyMs` and keeps the peak since the last reset. */
export class RssSampler {
  peak = 0
  last = 0
  private timer: NodeJS.Timeout | undefined

  constructor (private readonly pids: () => readonly number[], private readonly everyMs = 100) {}

  start (): void {
    this.sample()
    this.timer = setInterval(() => this.sample(), this.everyMs)
    this.timer.unref()
  }

  sample (): number {
    const v = this.pids().reduce((a, pid) => a + rssKiB(pid), 0)
    if (!Number.isNaN(v)) {
      this.last = v
      if (v > this.peak) this.peak = v
    }
    return this.last
  }

  /** Start a new peak window from the current value. */
  resetPeak (): void {
    this.peak = this.sample()
  }

  stop (): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
  }
}

export interface MachineInfo {
  cpu: string
  cores: number
  memGiB: number
  node: string
  os: string
}

export function machineInfo (): MachineInfo {
  const cpus = os.cpus()
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    os: `${os.type()} ${os.release()}`
  }
}
