// A log-bucketed latency histogram (≈1% precision), cheap to fill and to merge
// across worker processes. Values are milliseconds.

const GROWTH = 1.01
const LOG_GROWTH = Math.log(GROWTH)
/** Values below this many ms share bucket 0. */
const MIN_MS = 0.001
/** ln(600 s / 1 µs) / ln(1.01) ≈ 2040 buckets covers up to 10 minutes. */
const BUCKETS = 2048

export interface HistogramJSON {
  counts: number[]
  count: number
  sum: number
  max: number
}

export class Histogram {
  counts = new Float64Array(BUCKETS)
  count = 0
  sum = 0
  max = 0

  add (ms: number): void {
    const v = ms < MIN_MS ? MIN_MS : ms
    let i = Math.floor(Math.log(v / MIN_MS) / LOG_GROWTH)
    if (i >= BUCKETS) i = BUCKETS - 1
    this.counts[i]! += 1
    this.count++
    this.sum += ms
    if (ms > this.max) this.max = ms
  }

  /** Add the same value `n` times (one chunk carried n events). */
  addN (ms: number, n: number): void {
    const v = ms < MIN_MS ? MIN_MS : ms
    let i = Math.floor(Math.log(v / MIN_MS) / LOG_GROWTH)
    if (i >= BUCKETS) i = BUCKETS - 1
    this.counts[i]! += n
    this.count += n
    this.sum += ms * n
    if (ms > this.max) this.max = ms
  }

  merge (other: HistogramJSON): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other.counts[i] ?? 0
    this.count += other.count
    this.sum += other.sum
    if (other.max > this.max) this.max = other.max
  }

  /** Upper edge of the bucket holding quantile q (0..1); exact max for q = 1. */
  percentile (q: number): number {
    if (this.count === 0) return Number.NaN
    if (q >= 1) return this.max
    const target = Math.ceil(q * this.count)
    let seen = 0
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!
      if (seen >= target) return Math.min(MIN_MS * GROWTH ** (i + 1), this.max)
    }
    return this.max
  }

  mean (): number {
    return this.count === 0 ? Number.NaN : this.sum / this.count
  }

  toJSON (): HistogramJSON {
    // Sparse-friendly: trailing zeros trimmed.
    let last = BUCKETS - 1
    while (last >= 0 && this.counts[last] === 0) last--
    return { counts: Array.from(this.counts.subarray(0, last + 1)), count: this.count, sum: this.sum, max: this.max }
  }
}
