// Every queue at a glance, for the dashboard: its state, its backlog and claims, and the last hour's
// deliveries from the statistics per minute (migrations/014.do.sql, lib/services/stats.ts).
import type { Queryable } from '../db/pool.js'
import { read } from '../db/query.js'
import { emptyBuckets, percentile } from '../domain/latency.js'

/** counted up to this many, then shown as "at least" (an index range each; a huge backlog stays cheap) */
export const OVERVIEW_COUNT_CAP = 100_000
const MINUTES = 60

export type QueueState = 'active' | 'paused' | 'disabled' | 'circuit open' | 'half-open' | 'held'

export interface QueueOverview {
  id: number
  name: string
  state: QueueState
  /** pending messages (due, scheduled, parked or waiting), up to OVERVIEW_COUNT_CAP */
  pending: number
  /** of them, due now and not claimed */
  due: number
  /** claimed by a process: waiting there for a slot, or being sent */
  claimed: number
  lastHour: {
    delivered: number
    failed: number
    successRate: number | null
    p50Ms: number | null
    p99Ms: number | null
  }
  lastError: { at: string, status: number | null, error: string | null } | null
  /** the last 60 minutes, oldest first from `from` (a minute's start): deliveries and failures in each.
   *  Two arrays rather than 60 objects: the live stream sends this every second for every queue */
  perMinute: { from: string, delivered: number[], failed: number[] }
}

interface Row {
  id: number
  name: string
  paused: boolean
  disabled: boolean
  circuit_state: string
  held: boolean
  pending: number
  due: number
  claimed: number
  minutes: Array<{ minute: string, delivered: number, failed: number, latency: number[] }> | null
  last_error: { at: string, status: number | null, error: string | null } | null
}

/**
 * Where a claimed message can be: its run_at is at most the longest lease ahead (the configured one, or
 * the queue's timeout plus the slack: lib/delivery/lease.ts), so counting claims reads that window of
 * the queue's due index, not every message scheduled for later (an attack round: 600,000 scheduled
 * messages made the count read them all, 210 ms, every second).
 */
export interface ClaimWindow { leaseMs: number, slackMs: number }

export async function queueOverview (db: Queryable, claims: ClaimWindow): Promise<QueueOverview[]> {
  const { rows } = await read<Row>(db, `SELECT q.id, q.name, q.paused, q.disabled, q.circuit_state,
      coalesce(q.held_until > now(), false) AS held, c.pending, c.due,
      (SELECT count(*) FROM (SELECT 1 FROM hookpost.messages m WHERE m.queue_id = q.id AND m.sent_at IS NULL
        AND NOT m.failed AND m.run_at > now()
        AND m.run_at <= now() + greatest($3::integer, q.timeout_ms + $4::integer) * interval '1 millisecond'
        AND m.locked_by IS NOT NULL LIMIT $1) x)::integer AS claimed,
      (SELECT json_agg(json_build_object('minute', s.minute, 'delivered', s.delivered, 'failed', s.failed,
          'latency', s.latency) ORDER BY s.minute)
        FROM hookpost.queue_minutes s WHERE s.queue_id = q.id AND s.minute > now() - $2 * interval '1 minute')
        AS minutes,
      (SELECT json_build_object('at', s.last_error_at, 'status', s.last_status, 'error', s.last_error)
        FROM hookpost.queue_minutes s WHERE s.queue_id = q.id AND s.last_error_at IS NOT NULL
        ORDER BY s.minute DESC LIMIT 1) AS last_error
    FROM hookpost.queues q
    -- pending and due in one walk of the queue's due index, in due order, so the due rows come first and
    -- are all counted when the pending ones reach the cap (two walks cost the database a tenth of its
    -- time while a dashboard watched a 100,000 backlog drain)
    CROSS JOIN LATERAL (SELECT count(*)::integer AS pending, (count(*) FILTER (WHERE x.run_at <= now()))::integer AS due
      FROM (SELECT m.run_at FROM hookpost.messages m WHERE m.queue_id = q.id AND m.sent_at IS NULL AND NOT m.failed
        ORDER BY m.run_at LIMIT $1) x) c
    ORDER BY q.id`, [OVERVIEW_COUNT_CAP, MINUTES, claims.leaseMs, claims.slackMs])
  const now = Date.now()
  const first = now - (now % 60_000) - (MINUTES - 1) * 60_000
  return rows.map(r => {
    const latency = emptyBuckets()
    const perMinute = {
      from: new Date(first).toISOString(),
      delivered: new Array<number>(MINUTES).fill(0),
      failed: new Array<number>(MINUTES).fill(0)
    }
    let delivered = 0
    let failed = 0
    for (const m of r.minutes ?? []) {
      delivered += m.delivered
      failed += m.failed
      m.latency.forEach((n, i) => { latency[i] = (latency[i] ?? 0) + n })
      const slot = Math.round((new Date(m.minute).getTime() - first) / 60_000)
      if (slot >= 0 && slot < MINUTES) {
        perMinute.delivered[slot] = (perMinute.delivered[slot] ?? 0) + m.delivered
        perMinute.failed[slot] = (perMinute.failed[slot] ?? 0) + m.failed
      }
    }
    const p50 = percentile(latency, 0.5)
    const p99 = percentile(latency, 0.99)
    return {
      id: r.id,
      name: r.name,
      state: stateOf(r),
      pending: r.pending,
      due: r.due,
      claimed: r.claimed,
      lastHour: {
        delivered,
        failed,
        successRate: delivered + failed > 0 ? delivered / (delivered + failed) : null,
        // JSON has no Infinity: past the last bucket's bound reads as null with the counts still there
        p50Ms: p50 !== null && Number.isFinite(p50) ? p50 : null,
        p99Ms: p99 !== null && Number.isFinite(p99) ? p99 : null
      },
      lastError: r.last_error === null ? null : { ...r.last_error, at: new Date(r.last_error.at).toISOString() },
      perMinute
    }
  })
}

function stateOf (r: Row): QueueState {
  if (r.disabled) return 'disabled'
  if (r.paused) return 'paused'
  if (r.circuit_state === 'open') return r.held ? 'circuit open' : 'half-open'
  return r.held ? 'held' : 'active'
}
