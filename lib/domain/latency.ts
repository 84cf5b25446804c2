// Delivery latency in buckets: what the statistics per queue and minute keep (migrations/014.do.sql),
// and the percentiles read back from them. A percentile is its bucket's upper bound: an estimate that
// is never below the true value, as a histogram's is.

/** upper bounds, ms; one more bucket past the last holds the rest */
export const LATENCY_BUCKETS_MS = [
  10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000, 1_800_000, 3_600_000
] as const

/** The bucket a latency falls in: the first whose bound it does not exceed. */
export function latencyBucket (ms: number): number {
  for (let i = 0; i < LATENCY_BUCKETS_MS.length; i++) if (ms <= LATENCY_BUCKETS_MS[i]!) return i
  return LATENCY_BUCKETS_MS.length
}

/** An empty set of counts, one per bucket. */
export const emptyBuckets = (): number[] => new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0)

/**
 * The p-th percentile (0 < p <= 1) of the counts, as its bucket's upper bound in ms; null with no
 * counts, Infinity when it falls in the open-ended last bucket.
 */
export function percentile (counts: readonly number[], p: number): number | null {
  const total = counts.reduce((a, b) => a + b, 0)
  if (total === 0) return null
  const rank = Math.ceil(p * total)
  let seen = 0
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i]!
    if (seen >= rank) return LATENCY_BUCKETS_MS[i] ?? Number.POSITIVE_INFINITY
  }
  return Number.POSITIVE_INFINITY
}
