// Retention, on the leader only: delivered messages older than deliveredHours and dead messages whose
// dead letter is older than deadHours are deleted, their attempt log and dead-letter rows with them
// (ON DELETE CASCADE). An event's messages go with their event, once every one of them is past its
// age: so an event is never left to be replayed to a queue that already received it. In small batches
// with a pause between them, so no statement holds many row locks for long and the delivery path
// always gets in between.
import type { Pool } from 'pg'
import type { Logger } from 'pino'
import type { Clock } from '../delivery/clock.js'
import { Loop } from '../delivery/loop.js'
import type { Statement } from '../delivery/sql.js'

// 500 rows (and their attempts: one each as a rule, up to 101 with maxRetries 100) keep one DELETE short
export const BATCH_ROWS = 500
// events go with their messages, one per subscribed queue: fewer to a batch
export const EVENT_BATCH = 50
export const BATCH_PAUSE_MS = 100
// Retention spends at most this share of its wall time deleting: a batch that took t ms is followed
// by a pause of t * (1 - DUTY) / DUTY. A batch takes longer when the machine is busy delivering, so
// retention yields to delivery by itself, on every process and whoever else loads the database.
// Measured (bench/delivery.ts, BENCH_PHASES=ret; README: Scaling): with a fixed 100 ms pause, batches
// deleting a week of history slowed a 100k drain to 85%; paced at this duty, see the README.
export const BATCH_DUTY = 0.1

/** The pause after a batch that took elapsedMs: retention's pacing (BATCH_DUTY). */
export function pauseAfter (elapsedMs: number): number {
  return Math.max(BATCH_PAUSE_MS, Math.round(elapsedMs * (1 - BATCH_DUTY) / BATCH_DUTY))
}
// old rows accumulate slowly: a pass every 5 minutes keeps each pass to a few batches
const INTERVAL_MS = 5 * 60_000

/** what a batch deletes: delivered messages, dead messages, events */
export type RetentionKind = 'delivered' | 'dead' | 'events'

export interface RetentionOptions {
  /** delete delivered messages older than this, and events as old that no message refers to; 0: keep them */
  deliveredHours: number
  /** delete dead messages whose dead letter is older than this; 0: keep them */
  deadHours: number
  /** told how many rows each batch deleted (the metrics count them) */
  onDeleted?: (kind: RetentionKind, count: number) => void
}

/** One batch of delivered messages past the age. SKIP LOCKED: a row someone holds waits for the next pass. */
export function deleteDelivered (hours: number, limit: number): Statement {
  return {
    name: 'hookpost_retention_delivered',
    text: `DELETE FROM hookpost.messages WHERE id IN (
        SELECT id FROM hookpost.messages
        WHERE sent_at < now() - $1::integer * interval '1 hour' AND event_id IS NULL
        LIMIT $2 FOR UPDATE SKIP LOCKED
      )`,
    values: [hours, limit]
  }
}

/**
 * One batch of dead messages whose dead letter is past the age. A message redriven and dead again
 * has a newer dead letter and stays until that one is old too; a redriven message that is pending
 * or delivered is no longer failed and is not touched here.
 */
export function deleteDead (hours: number, limit: number): Statement {
  return {
    name: 'hookpost_retention_dead',
    text: `DELETE FROM hookpost.messages WHERE id IN (
        SELECT m.id FROM hookpost.dead_letters d JOIN hookpost.messages m ON m.id = d.message_id
        WHERE d.created_at < now() - $1::integer * interval '1 hour' AND m.failed AND m.event_id IS NULL
          AND NOT EXISTS (
            SELECT 1 FROM hookpost.dead_letters newer
            WHERE newer.message_id = m.id AND newer.created_at >= now() - $1::integer * interval '1 hour'
          )
        LIMIT $2 FOR UPDATE OF m SKIP LOCKED
      )`,
    values: [hours, limit]
  }
}

/**
 * One batch of events published more than deliveredHours ago whose messages are all past their age
 * (delivered more than deliveredHours ago, or dead with their latest dead letter more than deadHours
 * old; deadHours 0 keeps dead ones), deleted with those messages (their attempts and dead letters go
 * by the messages' own cascade). A replay holds the events it reads FOR SHARE, so SKIP LOCKED leaves
 * them to the next pass. An index range on created_at, and a probe per event on messages_event_uniq.
 */
export function deleteEvents (deliveredHours: number, deadHours: number, limit: number): Statement {
  return {
    name: 'hookpost_retention_events',
    text: `WITH gone AS (
        DELETE FROM hookpost.events WHERE id IN (
          SELECT e.id FROM hookpost.events e
          WHERE e.created_at < now() - $1::integer * interval '1 hour'
            AND NOT EXISTS (
              SELECT 1 FROM hookpost.messages m
              -- a message that keeps its event: not delivered long enough ago (pending: sent_at NULL), and
              -- not dead long enough ago
              WHERE m.event_id = e.id
                AND NOT coalesce(m.sent_at < now() - $1::integer * interval '1 hour', false)
                AND NOT ($3::integer > 0 AND m.failed AND NOT EXISTS (
                  SELECT 1 FROM hookpost.dead_letters d
                  WHERE d.message_id = m.id AND d.created_at >= now() - $3::integer * interval '1 hour'
                ))
            )
          LIMIT $2 FOR UPDATE OF e SKIP LOCKED
        ) RETURNING id
      ),
      messages AS (DELETE FROM hookpost.messages m USING gone WHERE m.event_id = gone.id RETURNING m.id)
      SELECT (SELECT count(*) FROM gone)::integer AS n, (SELECT count(*) FROM messages)::integer AS messages`,
    values: [deliveredHours, limit, deadHours]
  }
}

export type Purged = Record<RetentionKind, number>

export interface RetentionEvents {
  /** a purge ended: how many rows of each kind it deleted */
  purged: [Purged]
}

export class Retention extends Loop<RetentionEvents> {
  // a pause can last seconds on a busy machine: stop() ends it
  private endPause: (() => void) | undefined

  constructor (private readonly pool: Pool, private readonly o: RetentionOptions, log: Logger, clock?: Clock) {
    super(log, 'retention pass', clock)
  }

  get enabled (): boolean { return this.o.deliveredHours > 0 || this.o.deadHours > 0 }

  /** Purge now (at election), then every few minutes, until stop(). */
  override start (): void {
    if (this.enabled) super.start()
  }

  override async stop (): Promise<void> {
    const stopped = super.stop()
    this.endPause?.()
    await stopped
  }

  protected async pass (): Promise<number> {
    await this.purge()
    return INTERVAL_MS
  }

  /** Delete everything past its age, batch by batch; returns how many rows of each kind went. */
  async purge (): Promise<Purged> {
    const delivered = this.o.deliveredHours > 0
      ? await this.drain('delivered', deleteDelivered(this.o.deliveredHours, BATCH_ROWS))
      : 0
    const dead = this.o.deadHours > 0 ? await this.drain('dead', deleteDead(this.o.deadHours, BATCH_ROWS)) : 0
    // after the messages: an event goes once none of them is left
    const events = this.o.deliveredHours > 0
      ? await this.drain('events', deleteEvents(this.o.deliveredHours, this.o.deadHours, EVENT_BATCH), EVENT_BATCH)
      : 0
    const purged = { delivered, dead, events }
    if (delivered > 0 || dead > 0 || events > 0) this.log.info(purged, 'retention: old messages and events deleted')
    this.emit('purged', purged)
    return purged
  }

  /** Run a batch statement until it deletes less than a batch; events' answers their count as a row (n). */
  private async drain (kind: RetentionKind, statement: Statement, batch = BATCH_ROWS): Promise<number> {
    let total = 0
    // stop() is honoured between batches and ends a pause: at most one DELETE to wait for
    while (!this.stopping) {
      const started = this.clock.now()
      const res = await this.pool.query(statement)
      const n = kind === 'events' ? (res.rows[0]?.n ?? 0) : (res.rowCount ?? 0)
      total += n
      if (n > 0) this.o.onDeleted?.(kind, n)
      if (n < batch) break
      await new Promise<void>((resolve) => {
        const cancel = this.clock.after(pauseAfter(this.clock.now() - started), done)
        function done (): void { cancel(); resolve() }
        this.endPause = done
      })
      this.endPause = undefined
    }
    return total
  }
}
