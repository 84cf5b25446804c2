// How long a claim is held. The lease must outlive the call it covers, or a live call would be handed
// to a second worker: it is the configured leaseMs, or the queue's timeout plus LEASE_SLACK_MS when
// that is longer. The claim statement (sql.ts) applies the same rule in SQL, from these constants.

/** what a lease adds to the queue's timeout: time to record the outcome after the call ends */
export const LEASE_SLACK_MS = 30_000
/**
 * queues.timeout_ms's upper bound, as migrations/001.do.sql checks it (test/lease.test.ts compares
 * the two); the longest lease any claim gets is leaseFor(leaseMs, MAX_QUEUE_TIMEOUT_MS)
 */
export const MAX_QUEUE_TIMEOUT_MS = 300_000

export function leaseFor (leaseMs: number, timeoutMs: number): number {
  return Math.max(leaseMs, timeoutMs + LEASE_SLACK_MS)
}
