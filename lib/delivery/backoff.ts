// When to try again. Pure: the random source is a parameter, so tests pin it (test/backoff.test.ts).

export interface RetryPolicy {
  maxRetries: number
  backoffBaseMs: number
  backoffMaxMs: number
  backoffJitter: 'full' | 'equal' | 'none'
}

/**
 * Delay before retry number `retry` (1 = the first retry): base * 2^(retry-1), capped, then jittered.
 * Full jitter spreads a failed burst over [0, d]; equal jitter keeps at least d/2 between tries.
 */
export function retryDelayMs (retry: number, p: RetryPolicy, random: () => number = Math.random): number {
  // 2^30 is already past any cap; keeps the exponent from overflowing to Infinity
  const exp = Math.min(p.backoffMaxMs, p.backoffBaseMs * 2 ** Math.min(Math.max(retry - 1, 0), 30))
  switch (p.backoffJitter) {
    case 'full': return Math.floor(random() * exp)
    case 'equal': return Math.floor(exp / 2 + random() * (exp / 2))
    default: return exp
  }
}

/**
 * The least wait a Retry-After gets: "0" or a date already past would let a message spend its whole
 * retry budget in a fraction of a second (attack round: 6 attempts in 0.3 s behind a proxy's 503).
 */
export const MIN_RETRY_AFTER_MS = 1000

/**
 * Retry-After is whole seconds or an HTTP date (RFC 9110 10.2.3); null when absent or unreadable ("-5"
 * and "1.5" are neither, though Date.parse reads them as dates). At least MIN_RETRY_AFTER_MS.
 */
export function parseRetryAfter (value: string | string[] | undefined, now = Date.now()): number | null {
  const v = (Array.isArray(value) ? value[0] : value)?.trim()
  if (v === undefined || v === '') return null
  if (/^\d+$/.test(v)) return Math.max(MIN_RETRY_AFTER_MS, Number(v) * 1000)
  // an HTTP date names its day: "Wed, 21 Oct 2015 07:28:00 GMT" (and the obsolete forms)
  if (!/^[A-Za-z]{3}/.test(v)) return null
  const at = Date.parse(v)
  if (Number.isNaN(at)) return null
  return Math.max(MIN_RETRY_AFTER_MS, at - now)
}

export interface Outcome {
  /** failed attempts before this one */
  retries: number
  status: number | null
  retryAfter?: string | string[] | undefined
  /** the time a Retry-After date is read against (the caller's clock); default Date.now() */
  now?: number
}

/**
 * After a failed attempt: null when the retries are exhausted (dead letter), else the delay.
 * maxRetries counts retries after the first attempt, so 0 means one attempt and no retry.
 * Retry-After on 429/503 is honoured, but never beyond the queue's backoffMaxMs.
 */
export function nextRetryDelay (o: Outcome, p: RetryPolicy, random: () => number = Math.random): number | null {
  const retry = o.retries + 1
  if (retry > p.maxRetries) return null
  return askedDelay(o, p) ?? retryDelayMs(retry, p, random)
}

/**
 * How long a 429 or 503 with a Retry-After asks to be left alone, within the queue's backoffMaxMs; null
 * for any other answer. The whole queue waits that long, not only the message (Worker, sql.complete).
 */
export function askedDelay (o: Pick<Outcome, 'status' | 'retryAfter' | 'now'>, p: Pick<RetryPolicy, 'backoffMaxMs'>):
number | null {
  if (o.status !== 429 && o.status !== 503) return null
  const asked = parseRetryAfter(o.retryAfter, o.now)
  return asked === null ? null : Math.min(asked, p.backoffMaxMs)
}
