// The worker's database side, on a pg Pool: the claim, the sleep until the next row falls due, the
// release of unsent claims and the recording of outcomes. The worker receives these as functions, so
// its policy runs in tests against fakes (test/worker.test.ts) and here against PostgreSQL.
import type { Pool } from 'pg'
import type { Complete, Recorded } from './completer.js'
import type { ClaimRequest } from './producer.js'
import { CHANNELS, notifyWith } from '../db/channels.js'
import * as sql from './sql.js'

export interface Claims {
  /** rows claimed, due rows locked, and the limited queues met (left to claimLimited) */
  claim: (req: ClaimRequest) => Promise<{ rows: sql.ClaimedRow[], seen: number, limited: number[] }>
  /** the rows of limited queues each may start now, with what each queue's limits say of the next */
  claimLimited: (queueIds: number[], rooms: number[]) =>
  Promise<{ rows: sql.ClaimedRow[], states: sql.LimitedQueueState[] }>
  /** the queues with pending rows in the limited lane (sql.laneQueues) */
  laneQueues: () => Promise<number[]>
  /** when the next row falls due: of any queue, or of a queue not in skipQueues (rows not due yet) */
  nextDue: (skipQueues: number[]) => Promise<Date | null>
  /** give claims back untouched, due now for anyone */
  release: (rows: sql.ClaimedRow[]) => Promise<void>
  complete: Complete
  /** a closed circuit's rows that claims still hold for its probe, due now (sql.unholdClosedCircuit); how many */
  unhold: (queueId: number) => Promise<number>
}

export function pgClaims (pool: Pool, leaseMs: number, workerId: string): Claims {
  return {
    claim: async (r) => {
      const { rows } = await pool.query<sql.ClaimResultRow>(
        sql.claim(r.limit, leaseMs, workerId, r.skipQueues, r.recentMs, r.maxBytes, r.queueMaxBytes))
      const limited = rows.filter(x => x.limited === true)
      return {
        rows: sql.claimedRows(limited.length > 0 ? rows.filter(x => x.limited !== true) : rows),
        seen: rows[0]?.seen ?? 0,
        limited: limited.map(x => x.queueId)
      }
    },
    claimLimited: async (queueIds, rooms) => {
      const { rows } = await pool.query<sql.LimitedResultRow>(sql.claimLimited(queueIds, rooms, leaseMs, workerId))
      return sql.limitedRows(rows)
    },
    laneQueues: async () => (await pool.query<{ queueId: number }>(sql.laneQueues())).rows.map(r => r.queueId),
    nextDue: async (skipQueues) => {
      const statement = skipQueues.length > 0 ? sql.nextDueBeyond(skipQueues) : sql.nextDue()
      const { rows } = await pool.query<{ at: Date | null }>(statement)
      return rows[0]?.at ?? null
    },
    release: async (rows) => { await pool.query(sql.release(rows, workerId)) },
    unhold: async (queueId) => (await pool.query(sql.unholdClosedCircuit(queueId))).rowCount ?? 0,
    complete: async (batch) => {
      const recorded: Recorded = { dead: [], disabled: [], circuits: [], throttled: [] }
      for (const r of (await pool.query<sql.CompleteResultRow>(sql.complete(batch, workerId))).rows) {
        if (r.kind === 'dead') {
          recorded.dead.push({ messageId: r.messageId, queueId: r.queueId, dlqMessageId: r.dlqMessageId })
        } else if (r.kind === 'disabled') {
          recorded.disabled.push({ id: r.queueId, name: r.name, disabledAt: r.disabledAt, reason: sql.GONE_REASON })
        } else if (r.kind === 'throttled') {
          recorded.throttled.push(r.queueId)
          // every process gives back what it holds of the queue, to be claimed at the throttled rate
          await pool.query(notifyWith(CHANNELS.queues, String(r.queueId)))
        } else {
          const state = r.turn === 'open' ? 'open' : 'closed'
          recorded.circuits.push({ id: r.queueId, name: r.name, state, consecutiveFailures: r.run })
        }
      }
      return recorded
    }
  }
}
