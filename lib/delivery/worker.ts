// The delivery loop: claim due messages in batches, send them with bounded concurrency, record the
// outcomes in grouped statements. One loop per process; passes never overlap.
import type { Pool } from 'pg'
import type { Logger } from 'pino'
import type { Dispatcher } from 'undici'
import { Loop } from '../loop.js'
import { nextRetryDelay } from './backoff.js'
import { send, type Result } from './sender.js'
import * as sql from './sql.js'

export interface WorkerOptions {
  pool: Pool
  dispatcher: Dispatcher
  workerId: string
  concurrency: number
  batchSize: number
  leaseMs: number
  pollMs: number
  /** calls in flight at most per queue, so one slow endpoint cannot take every slot */
  queueConcurrency: number
  log: Logger
}

interface Claimed { row: sql.ClaimedRow, claimedAt: number }

export interface DeliveryEvent {
  messageId: number
  queueId: number
  attempt: number
  when: Date
  result: Result
  /** null on success; on failure, when it will be retried, or null when it is dead */
  retryAt: Date | null
}

// Outcomes are written when this many are waiting, or after FLUSH_DELAY_MS: one commit covers many
const FLUSH_MAX = 500
const FLUSH_DELAY_MS = 2
const FLUSH_BACKOFF_MAX_MS = 5000

export class Worker extends Loop {
  private buffer: Claimed[] = []
  private inFlight = 0
  private readonly perQueue = new Map<number, number>()
  private pending: sql.Completion[] = []
  private flushing: Promise<void> | null = null
  private flushTimer: NodeJS.Timeout | undefined
  private flushErrors = 0
  private readonly calls = new Map<AbortController, sql.ClaimedRow>()
  private idle: (() => void) | undefined

  constructor (private readonly o: WorkerOptions) {
    super(o.log, 'claiming messages')
  }

  get inFlightCount (): number { return this.inFlight }

  protected async pass (): Promise<number> {
    this.dropStale()
    // keep about one window of claimed messages ready beyond the calls in flight
    const window = this.o.concurrency
    const ready = this.dispatchable()
    if (ready >= window / 2) return this.o.pollMs // a finishing call wakes us
    const room = Math.min(this.o.batchSize, 2 * window - this.inFlight - ready)
    if (room <= 0) return this.o.pollMs
    const skipped = this.saturatedQueues()
    const { rows } = await this.o.pool.query<sql.ClaimedRow>(sql.claim(room, this.o.leaseMs, this.o.workerId, skipped))
    const now = Date.now()
    for (const row of rows) this.buffer.push({ row, claimedAt: now })
    this.count(rows, +1)
    this.dispatch()
    if (rows.length === room) return 0 // there may be more: claim again once there is room
    // with queues skipped, due work may remain: a finishing call wakes us, not a busy loop
    return skipped.length > 0 ? this.o.pollMs : await this.untilNextDue()
  }

  private async untilNextDue (): Promise<number> {
    const { rows } = await this.o.pool.query<{ at: Date | null }>(sql.nextDue())
    const at = rows[0]?.at
    if (at === null || at === undefined) return this.o.pollMs
    return Math.max(0, Math.min(this.o.pollMs, at.getTime() - Date.now()))
  }

  private count (rows: sql.ClaimedRow[], delta: number): void {
    for (const r of rows) {
      const n = (this.perQueue.get(r.queueId) ?? 0) + delta
      if (n <= 0) this.perQueue.delete(r.queueId)
      else this.perQueue.set(r.queueId, n)
    }
  }

  /**
   * Queues that already have their in-flight limit plus a window claimed here: the next claim skips
   * them, so a slow endpoint's backlog cannot fill every claim and starve the other queues.
   */
  private saturatedQueues (): number[] {
    const out: number[] = []
    for (const [q, n] of this.perQueue) if (n >= this.o.queueConcurrency + this.o.concurrency) out.push(q)
    return out
  }

  private readonly inFlightPerQueue = new Map<number, number>()

  private dispatchable (): number {
    let n = 0
    for (const c of this.buffer) if ((this.inFlightPerQueue.get(c.row.queueId) ?? 0) < this.o.queueConcurrency) n++
    return n
  }

  /** Start calls from the buffer while there are free slots, respecting each queue's limit. */
  private dispatch (): void {
    if (this.inFlight >= this.o.concurrency || this.buffer.length === 0) return
    const keep: Claimed[] = []
    for (const c of this.buffer) {
      const q = c.row.queueId
      const qn = this.inFlightPerQueue.get(q) ?? 0
      if (this.inFlight < this.o.concurrency && qn < this.o.queueConcurrency && !this.stopping) {
        this.inFlight++
        this.inFlightPerQueue.set(q, qn + 1)
        void this.deliver(c.row)
      } else {
        keep.push(c)
      }
    }
    this.buffer = keep
  }

  /** A claim that waited too long here (its queue is saturated) goes back before its lease ends. */
  private dropStale (): void {
    const limit = Date.now() - this.o.leaseMs / 2
    const stale = this.buffer.filter(c => c.claimedAt < limit)
    if (stale.length === 0) return
    this.buffer = this.buffer.filter(c => c.claimedAt >= limit)
    this.count(stale.map(c => c.row), -1)
    void this.release(stale.map(c => c.row))
  }

  private readonly releases = new Set<Promise<void>>()

  private async release (rows: sql.ClaimedRow[]): Promise<void> {
    if (rows.length === 0) return
    const p = this.releaseNow(rows)
    this.releases.add(p)
    await p.finally(() => this.releases.delete(p))
  }

  private async releaseNow (rows: sql.ClaimedRow[]): Promise<void> {
    try {
      await this.o.pool.query(sql.release(rows.map(r => r.id), this.o.workerId))
    } catch (err) {
      // the lease runs out by itself: nothing is lost
      this.o.log.warn({ err, count: rows.length }, 'releasing claims failed; they fall due when their lease ends')
    }
  }

  private async deliver (row: sql.ClaimedRow): Promise<void> {
    const attempt = row.attempts + 1
    const ac = new AbortController()
    this.calls.set(ac, row)
    const result = await send(this.o.dispatcher, {
      messageId: row.id,
      queueId: row.queueId,
      attempt,
      url: row.callbackUrl,
      method: row.method,
      queueHeaders: row.queueHeaders,
      headers: row.headers,
      body: row.body,
      timeoutMs: row.timeoutMs,
      idempotencyKey: row.idempotencyKey,
      signingSecrets: row.signingSecrets
    }, ac.signal)
    this.calls.delete(ac)
    this.inFlight--
    const qn = (this.inFlightPerQueue.get(row.queueId) ?? 1) - 1
    if (qn <= 0) this.inFlightPerQueue.delete(row.queueId)
    else this.inFlightPerQueue.set(row.queueId, qn)
    this.count([row], -1)

    if (ac.signal.aborted) {
      // cut off by shutdown: not an attempt the endpoint failed, so give the message back as it was
      void this.release([row])
    } else {
      let retryAt: Date | null = null
      if (!result.ok) {
        const delay = nextRetryDelay({ retries: row.retries, status: result.status, retryAfter: result.retryAfter }, row)
        retryAt = delay === null ? null : new Date(Date.now() + delay)
      }
      this.pending.push({ id: row.id, queueId: row.queueId, attempt, when: row.when, result, retryAt })
      this.scheduleFlush()
      const event: DeliveryEvent = { messageId: row.id, queueId: row.queueId, attempt, when: row.when, result, retryAt }
      const line = { messageId: row.id, queueId: row.queueId, attempt, status: result.status, durationMs: result.durationMs }
      if (result.ok) {
        this.o.log.debug(line, 'delivered')
      } else {
        this.o.log.info({ ...line, errorKind: result.errorKind, error: result.error, retryAt }, retryAt !== null ? 'delivery failed; will retry' : 'delivery failed; retries exhausted')
      }
      this.emit(result.ok ? 'delivered' : 'failed', event)
    }

    this.dispatch()
    if (this.dispatchable() < this.o.concurrency / 2) this.wake()
    if (this.inFlight === 0) this.idle?.()
  }

  private scheduleFlush (): void {
    if (this.flushing !== null) return // the running flush picks these up when it ends
    if (this.pending.length >= FLUSH_MAX) {
      clearTimeout(this.flushTimer)
      this.flushTimer = undefined
      void this.flush()
    } else if (this.flushTimer === undefined) {
      this.flushTimer = setTimeout(() => { this.flushTimer = undefined; void this.flush() }, FLUSH_DELAY_MS)
    }
  }

  /** Write every waiting outcome; one flush at a time, and a failed flush keeps its batch for the next. */
  async flush (): Promise<void> {
    if (this.flushing !== null) return await this.flushing
    if (this.pending.length === 0) return
    this.flushing = (async () => {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0, FLUSH_MAX)
        try {
          const { rows } = await this.o.pool.query<{ messageId: number, dlqMessageId: number | null, queueId: number }>(sql.complete(batch, this.o.workerId))
          this.flushErrors = 0
          for (const d of rows) {
            this.o.log.warn({ messageId: d.messageId, queueId: d.queueId, dlqMessageId: d.dlqMessageId }, 'message dead-lettered')
            this.emit('dead', d)
          }
          this.emit('recorded', batch)
        } catch (err) {
          this.pending.unshift(...batch)
          this.flushErrors++
          const wait = Math.min(FLUSH_BACKOFF_MAX_MS, 50 * 2 ** Math.min(this.flushErrors, 10))
          this.o.log.error({ err, count: batch.length, retryInMs: wait }, 'recording delivery outcomes failed; will retry')
          if (this.stopping && this.flushErrors > 5) return // shutting down: the leases will hand them out again
          await new Promise(resolve => setTimeout(resolve, wait))
        }
      }
    })().finally(() => { this.flushing = null })
    return await this.flushing
  }

  /**
   * Stop claiming at once and give back what was claimed but not started. Calls in flight get
   * graceMs to finish and be recorded; any still running then are aborted and released.
   */
  override async stop (graceMs = 0): Promise<void> {
    if (!this.active) return
    await this.stopLoop()
    const unsent = this.buffer.map(c => c.row)
    this.buffer = []
    this.count(unsent, -1)
    await this.release(unsent)
    if (this.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs)
        this.idle = () => { clearTimeout(timer); resolve() }
      })
      this.idle = undefined
      for (const ac of this.calls.keys()) ac.abort()
      // aborted calls settle promptly; wait for their release
      while (this.inFlight > 0) await new Promise(resolve => setTimeout(resolve, 10))
    }
    await Promise.all(this.releases)
    clearTimeout(this.flushTimer)
    this.flushTimer = undefined
    await this.flush()
    this.markStopped()
  }
}
