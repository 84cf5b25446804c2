// Delivery statistics per queue and minute (migrations/014.do.sql), for the dashboard's overview. The
// worker's outcomes are counted here and added to the table once a second, in one statement: never on
// the delivery path's own statements. Every delivering process adds its own, so the table holds the
// cluster's figures; one that dies loses at most its last second of them.
import type { Pool } from 'pg'
import type { Logger } from 'pino'
import { systemClock, type Clock } from '../delivery/clock.js'
import type { Statement } from '../db/query.js'
import type { DeliveryEvent } from '../delivery/worker.js'
import { emptyBuckets, latencyBucket } from '../domain/latency.js'

export const STATS_FLUSH_MS = 1000
// of a minute's last error, the characters kept
const ERROR_CHARS = 500
const MINUTE_MS = 60_000
// minutes older than this are deleted, by each process at most once a minute: the overview shows an hour
export const STATS_KEEP_HOURS = 24

interface Minute {
  queueId: number
  minute: number
  delivered: number
  failed: number
  latency: number[]
  errorAt: number | null
  status: number | null
  error: string | null
}

/** Add minutes counted by one process to hookpost.queue_minutes; a deleted queue's are left out. */
export function addStats (rows: Minute[]): Statement {
  return {
    name: 'hookpost_add_stats',
    text: `INSERT INTO hookpost.queue_minutes AS t
        (queue_id, minute, delivered, failed, latency, last_error_at, last_status, last_error)
      SELECT u.queue_id, to_timestamp(u.minute / 1000), u.delivered, u.failed, u.latency::integer[],
        to_timestamp(u.error_at / 1000), u.status, u.error
      FROM unnest($1::bigint[], $2::float8[], $3::integer[], $4::integer[], $5::text[], $6::float8[], $7::integer[],
        $8::text[]) AS u(queue_id, minute, delivered, failed, latency, error_at, status, error)
      WHERE EXISTS (SELECT 1 FROM hookpost.queues q WHERE q.id = u.queue_id)
      -- in key order: two processes adding to the same minutes lock them in the same order
      ORDER BY u.queue_id, u.minute
      ON CONFLICT (queue_id, minute) DO UPDATE SET
        delivered = t.delivered + EXCLUDED.delivered,
        failed = t.failed + EXCLUDED.failed,
        latency = ARRAY(SELECT a + b FROM unnest(t.latency, EXCLUDED.latency) WITH ORDINALITY AS x(a, b, i) ORDER BY i),
        last_error_at = greatest(t.last_error_at, EXCLUDED.last_error_at),
        last_status = CASE WHEN EXCLUDED.last_error_at >= t.last_error_at OR t.last_error_at IS NULL
          THEN EXCLUDED.last_status ELSE t.last_status END,
        last_error = CASE WHEN EXCLUDED.last_error_at >= t.last_error_at OR t.last_error_at IS NULL
          THEN EXCLUDED.last_error ELSE t.last_error END`,
    values: [
      rows.map(r => r.queueId), rows.map(r => r.minute), rows.map(r => r.delivered), rows.map(r => r.failed),
      rows.map(r => `{${r.latency.join(',')}}`), rows.map(r => r.errorAt), rows.map(r => r.status),
      rows.map(r => r.error)
    ]
  }
}

/** Delete the minutes older than STATS_KEEP_HOURS (queue_minutes_minute_idx). */
export function pruneStats (): Statement {
  return {
    name: 'hookpost_prune_stats',
    text: `DELETE FROM hookpost.queue_minutes WHERE minute < now() - ${STATS_KEEP_HOURS} * interval '1 hour'`,
    values: []
  }
}

export class StatsRecorder {
  // the minutes counted since the last flush, and each queue's latest of them: looked up by queue id on
  // every call, not by a "queue:minute" string built for each
  private pending: Minute[] = []
  private latest = new Map<number, Minute>()
  private prunedAt = Number.NEGATIVE_INFINITY
  private cancel: (() => void) | undefined
  private flushing: Promise<void> = Promise.resolve()

  constructor (
    private readonly pool: Pool, private readonly log: Logger, private readonly clock: Clock = systemClock
  ) {}

  /** One finished call, as the worker announces it ('delivered' or 'failed'). */
  record (e: DeliveryEvent): void {
    const now = this.clock.now()
    const minute = now - (now % MINUTE_MS)
    let m = this.latest.get(e.queueId)
    // a clock set back counts in the latest minute: one statement must not add to a minute twice
    if (m === undefined || m.minute < minute) {
      const none = { errorAt: null, status: null, error: null }
      m = { queueId: e.queueId, minute, delivered: 0, failed: 0, latency: emptyBuckets(), ...none }
      this.pending.push(m)
      this.latest.set(e.queueId, m)
    }
    if (e.result.ok) {
      m.delivered++
      // a "when" JS cannot count with (±infinity through plain SQL) has no latency
      const when = e.when.getTime()
      if (Number.isFinite(when)) m.latency[latencyBucket(Math.max(0, now - when))]!++
    } else {
      m.failed++
      m.errorAt = now
      m.status = e.result.status
      m.error = (e.result.error ?? e.result.errorKind ?? '').slice(0, ERROR_CHARS)
    }
  }

  start (): void {
    this.cancel ??= this.clock.every(STATS_FLUSH_MS, () => { this.flush().catch(() => {}) })
  }

  async stop (): Promise<void> {
    this.cancel?.()
    this.cancel = undefined
    await this.flush()
  }

  /** Add what was counted since the last flush; one at a time, in order. */
  async flush (): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (this.clock.now() - this.prunedAt >= MINUTE_MS) {
        this.prunedAt = this.clock.now()
        await this.pool.query(pruneStats()).catch((err: Error) => this.log.warn({ err }, 'pruning statistics failed'))
      }
      if (this.pending.length === 0) return
      const rows = this.pending
      this.pending = []
      this.latest = new Map()
      try {
        await this.pool.query(addStats(rows))
      } catch (err) {
        // statistics, not records: dropped rather than kept growing while the database is away
        this.log.warn({ err, minutes: rows.length }, 'recording delivery statistics failed; they are dropped')
      }
    })
    await this.flushing
  }
}
