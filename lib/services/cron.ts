// Cron ticks become messages, on the leader only. Exactly once per tick: the cron row is locked while
// its ticks are inserted and its next tick moved on, in one transaction, and a unique index on
// (cron_id, tick_at) refuses a second message for a tick whatever any leader does.
// Its time is the injected clock's: a test moves that clock to make a tick due without waiting for it.
import type { Pool } from 'pg'
import type { Logger } from 'pino'
import { withTransaction } from '../db/pool.js'
import { systemClock, type Clock } from '../delivery/clock.js'
import { Loop } from '../delivery/loop.js'
import { ticksToFire, type DueCron } from '../domain/schedule.js'
import { countPerQueue, type OnEnqueued } from '../store/messages.js'

// the longest the scheduler sleeps: crons created on another server wake it by NOTIFY anyway
const MAX_SLEEP_MS = 60_000
const DUE_BATCH = 100
const MIN_IDLE_MS = 50

interface Row extends DueCron { id: number }

export interface CronEvents {
  /** after every look at the due crons, with the time it used and what it fired (0 ticks included) */
  fired: [{ at: Date, crons: number, ticks: number }]
}

export class CronScheduler extends Loop<CronEvents> {
  constructor (private readonly pool: Pool, log: Logger, private readonly onEnqueued?: OnEnqueued,
    clock: Clock = systemClock) {
    super(log, 'cron pass', clock)
  }

  protected async pass (): Promise<number> {
    const fired = await this.fire(new Date(this.clock.now()))
    return fired === DUE_BATCH ? 0 : await this.untilNextTick()
  }

  /** One transaction: lock the due crons, insert their tick messages, move their next tick. */
  async fire (now = new Date(this.clock.now())): Promise<number> {
    const inserted: Array<{ queueId: number }> = []
    const n = await withTransaction(this.pool, async (c) => {
      const { rows } = await c.query<Row>(
        `SELECT id, schedule, timezone, next_tick_at AS "nextTickAt", missed_ticks AS "missedTicks"
         FROM hookpost.crons WHERE NOT paused AND next_tick_at <= $1
         ORDER BY next_tick_at LIMIT $2 FOR UPDATE SKIP LOCKED`, [now, DUE_BATCH])
      if (rows.length === 0) return 0
      const ids: number[] = []
      const ticks: Date[] = []
      const evaluated: number[] = []
      const nexts: Date[] = []
      const lasts: Array<Date | null> = []
      for (const r of rows) {
        let plan: { fire: Date[], next: Date }
        try {
          plan = ticksToFire(r, now)
        } catch (err) {
          // a schedule that no longer parses (a cron-parser upgrade, a zone removed): park it, do not spin
          this.log.error({ err, cronId: r.id }, 'cron schedule cannot be evaluated; pausing it')
          await c.query('UPDATE hookpost.crons SET paused = true, updated_at = now() WHERE id = $1', [r.id])
          continue
        }
        for (const t of plan.fire) { ids.push(r.id); ticks.push(t) }
        evaluated.push(r.id)
        nexts.push(plan.next)
        lasts.push(plan.fire.at(-1) ?? null)
        if (plan.fire.length === 0) this.log.info({ cronId: r.id }, 'missed ticks skipped (missedTicks: skip)')
      }
      if (ids.length > 0) {
        const { rows: added } = await c.query<{ queueId: number }>(
          `INSERT INTO hookpost.messages (queue_id, body, body_json, headers, "when", cron_id, tick_at)
           SELECT cr.queue_id, cr.body, cr.body_json, cr.headers, t.tick, cr.id, t.tick
           FROM unnest($1::bigint[], $2::timestamptz[]) AS t(cron_id, tick)
           JOIN hookpost.crons cr ON cr.id = t.cron_id
           ON CONFLICT (cron_id, tick_at) WHERE cron_id IS NOT NULL DO NOTHING
           RETURNING queue_id AS "queueId"`, [ids, ticks])
        inserted.push(...added)
      }
      await c.query(
        `UPDATE hookpost.crons cr SET next_tick_at = u.next, last_tick_at = coalesce(u.last, cr.last_tick_at)
         FROM unnest($1::bigint[], $2::timestamptz[], $3::timestamptz[]) AS u(id, next, last)
         WHERE cr.id = u.id`, [evaluated, nexts, lasts])
      if (ids.length > 0) this.log.debug({ ticks: ids.length }, 'cron ticks fired')
      return rows.length
    })
    if (this.onEnqueued !== undefined) countPerQueue(inserted, this.onEnqueued)
    this.emit('fired', { at: now, crons: n, ticks: inserted.length })
    return n
  }

  private async untilNextTick (): Promise<number> {
    const { rows } = await this.pool.query<{ at: Date | null }>(
      'SELECT min(next_tick_at) AS at FROM hookpost.crons WHERE NOT paused')
    const at = rows[0]?.at
    if (at === null || at === undefined) return MAX_SLEEP_MS
    // a due cron another transaction holds is skipped but still due: never spin on it
    return Math.max(MIN_IDLE_MS, Math.min(MAX_SLEEP_MS, at.getTime() - this.clock.now()))
  }
}
