// lib/delivery/backoff.ts with its random source pinned: every bound is exact, no sampling.
import t from 'tap'
import { nextRetryDelay, parseRetryAfter, retryDelayMs, type RetryPolicy } from '../lib/delivery/backoff.js'

const policy = (over: Partial<RetryPolicy> = {}): RetryPolicy =>
  ({ maxRetries: 5, backoffBaseMs: 100, backoffMaxMs: 10_000, backoffJitter: 'none', ...over })
const pinned = (x: number) => () => x

t.test('exponential from the base, capped at the maximum', async (t) => {
  t.same([1, 2, 3, 4].map(r => retryDelayMs(r, policy())), [100, 200, 400, 800])
  t.equal(retryDelayMs(20, policy()), 10_000, 'capped')
  t.equal(retryDelayMs(10_000, policy()), 10_000, 'a huge retry number does not overflow to Infinity')
  t.equal(retryDelayMs(0, policy()), 100, 'retry 0 counts as the first')
})

t.test('full jitter spreads over [0, d); equal jitter over [d/2, d)', async (t) => {
  const full = policy({ backoffJitter: 'full' })
  t.equal(retryDelayMs(3, full, pinned(0)), 0)
  t.equal(retryDelayMs(3, full, pinned(0.5)), 200)
  t.equal(retryDelayMs(3, full, pinned(0.999)), 399)
  const equal = policy({ backoffJitter: 'equal' })
  t.equal(retryDelayMs(3, equal, pinned(0)), 200)
  t.equal(retryDelayMs(3, equal, pinned(0.5)), 300)
  t.equal(retryDelayMs(3, equal, pinned(0.999)), 399)
  t.equal(retryDelayMs(3, policy(), pinned(0.123)), 400, 'none ignores the random source')
})

t.test('nextRetryDelay: maxRetries counts retries after the first attempt', async (t) => {
  const p = policy({ maxRetries: 2 })
  t.equal(nextRetryDelay({ retries: 0, status: 500 }, p), 100)
  t.equal(nextRetryDelay({ retries: 1, status: 500 }, p), 200)
  t.equal(nextRetryDelay({ retries: 2, status: 500 }, p), null, 'the third failure is dead')
  t.equal(nextRetryDelay({ retries: 0, status: null }, policy({ maxRetries: 0 })), null, 'maxRetries 0: one attempt')
})

t.test('Retry-After on 429 and 503 is honoured up to backoffMaxMs; elsewhere ignored', async (t) => {
  const p = policy({ backoffMaxMs: 1500 })
  t.equal(nextRetryDelay({ retries: 0, status: 429, retryAfter: '1' }, p), 1000)
  t.equal(nextRetryDelay({ retries: 0, status: 503, retryAfter: '3600' }, p), 1500, 'capped')
  t.equal(nextRetryDelay({ retries: 0, status: 500, retryAfter: '1' }, p), 100, 'not on a 500')
  t.equal(nextRetryDelay({ retries: 0, status: 429, retryAfter: 'soon' }, p), 100, 'unreadable: the backoff')
  t.equal(nextRetryDelay({ retries: 5, status: 429, retryAfter: '1' }, p), null, 'never past maxRetries')
})

t.test('parseRetryAfter: seconds or an HTTP date', async (t) => {
  const now = Date.parse('2026-01-01T00:00:00Z')
  t.equal(parseRetryAfter('120', now), 120_000)
  t.equal(parseRetryAfter(['7', '9'], now), 7000, 'the first of repeated headers')
  t.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now), 30_000)
  // attack round: "0" or a date past let a message spend its budget in 0.3 s; "-5" and "1.5" read as dates
  t.equal(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now), 1000, 'a date in the past: the least wait')
  t.equal(parseRetryAfter('0', now), 1000, 'zero: the least wait')
  t.equal(parseRetryAfter(' 4 ', now), 4000)
  for (const v of ['-5', '1.5', '1e3', '2026-01-01T00:01:00Z']) t.equal(parseRetryAfter(v, now), null, `${v}: unreadable`)
  t.equal(parseRetryAfter(undefined, now), null)
  t.equal(parseRetryAfter('  ', now), null)
  t.equal(parseRetryAfter('later', now), null)
})
