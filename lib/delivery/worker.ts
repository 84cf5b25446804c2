// The delivery loop: claim due messages in batches, send them with bounded concurrency, record the
// outcomes in grouped statements. One loop per process; passes never overlap.
import type { Pool } from 'pg'
import type { Logger } from 'pino'
import type { Dispatcher } from 'undici'
import { DEFAULTS } from '../config.js'
import { Loop } from '../loop.js'
import { nextRetryDelay } from './backoff.js'
import { cutShort, send, type Cut, type Result } from './sender.js'
import * as sql from './sql.js'

export interface WorkerOptions {
  pool: Pool
  dispatcher: Dispatcher
  workerId: string
  concurrency: number
  batchSize: number
  /**
   * bytes of claimed messages (ClaimedRow.size) held at once, waiting for a slot or being sent: a claim
   * asks for no more than the room left, and is made only while under CLAIM_BELOW of it. One message
   * larger than the room is still claimed, so this may be exceeded by less than one message. Default:
   * config's default (the engine passes the configured value; probes that build a worker may leave it out).
   */
  bufferBytes?: number
  leaseMs: number
  pollMs: number
  /** calls in flight at most per queue, so one slow endpoint cannot take every slot */
  queueConcurrency: number
  log: Logger
  /**
   * Whether this process may claim now: its worker lock (held by the LISTEN connection) is what keeps
   * its claims from being reaped, so nothing is claimed while that connection is down.
   */
  canClaim: () => boolean
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

// Outcomes are written as soon as FLUSH_EAGER are waiting, else FLUSH_DELAY_MS after the first: one
// statement and commit cover many. Flushes of ~60 rows cost PostgreSQL a third more per message than
// flushes of 200 (bench/probe-sql.ts); recording later costs nothing but a short wait before a
// delivered message shows as sent (a crash meanwhile means a resend, as for any unrecorded call).
const FLUSH_EAGER = 200
const FLUSH_MAX = 500
const FLUSH_DELAY_MS = 50
const FLUSH_BACKOFF_MAX_MS = 5000

// After a claim that skipped saturated queues came back short, the next skipping claim waits this long
// (a NOTIFY lifts the wait)
const SKIP_CLAIM_BACKOFF_MS = 200
// A skipping claim that finds nothing has walked past every due row of the skipped queues: a backlog
// of 100,000 is tens of ms of PostgreSQL, and of a loop that claims nothing else meanwhile. So after
// one such full claim, the skipping claims that follow look only at rows due since the previous one
// (plus this margin, for rows committed a little after they fell due), an index range of a few rows.
// A full one runs again after a NOTIFY (new rows may be due from any time), after pollMs, or as soon as
// a queue leaves the skipped set (its older rows are wanted again). What a bounded claim cannot see (a
// row another transaction held at the last claim) waits at most pollMs, as under plain polling.
const SKIP_RECENT_MARGIN_MS = 1000
// the shortest sleep after a claim that found nothing to take
const MIN_IDLE_MS = 50
// a claim is sent only while its lease outlasts the call by this much; else it goes back
const LEASE_MARGIN_MS = 5000
// calls past their queue's deadline are aborted by one sweep per worker, not a timer per call
const DEADLINE_SWEEP_MS = 100
// claims wait until the bytes held are below this share of bufferBytes, so that with large bodies a
// claim has room for a quarter of it, rather than one message per finished call
const CLAIM_BELOW = 0.75
// A queue holds at most this share of bufferBytes (and one message more), waiting or in flight, so a
// slow endpoint's large bodies leave room for the other queues: one claim gives a queue at most
// QUEUE_CLAIM of it, and a queue holding more than QUEUE_HOLD - QUEUE_CLAIM is skipped (saturated)
const QUEUE_HOLD = 0.5
const QUEUE_CLAIM = 0.125

/** One queue's claimed messages waiting for a slot, its calls in flight, and the bytes of both (ClaimedRow.size). */
interface QueueSlot { waiting: Claimed[], inFlight: number, bytes: number }

interface Call extends Cut { row: sql.ClaimedRow, deadline: number }

export class Worker extends Loop {
  // claimed but not yet sent, per queue; a Map keeps queues in arrival order for round-robin dispatch
  private readonly queues = new Map<number, QueueSlot>()
  private buffered = 0
  // the sizes (ClaimedRow.size) of the rows claimed here and not yet done with: waiting or in flight
  private bytes = 0
  // the bytes per row of the last claim: with large bodies, a claim asks for about as many rows as fit,
  // rather than locking a batch of which the byte budget keeps a few
  private rowBytes = sql.CLAIM_ROW_OVERHEAD_BYTES
  private inFlight = 0
  private pending: sql.Completion[] = []
  private flushing: Promise<void> | null = null
  private flushTimer: NodeJS.Timeout | undefined
  private flushErrors = 0
  private readonly calls = new Set<Call>()
  private sweeper: NodeJS.Timeout | undefined
  private idle: (() => void) | undefined
  private lastShortSkipClaim = 0
  // when the last short skipping claim started, and the last full (unbounded) one with what it skipped
  private lastSkipClaimAt = 0
  private fullSkipClaim: { at: number, skipped: number[] } | undefined
  private readonly maxBuffered: number
  private readonly bufferBytes: number
  private readonly claimBelowBytes: number
  private readonly queueClaimBytes: number
  private readonly queueSaturatedBytes: number

  constructor (private readonly o: WorkerOptions) {
    super(o.log, 'claiming messages')
    // bytes bound the memory; this, how many rows wait here out of other processes' reach
    this.maxBuffered = 10 * o.batchSize
    this.bufferBytes = o.bufferBytes ?? DEFAULTS.bufferBytes
    this.claimBelowBytes = CLAIM_BELOW * this.bufferBytes
    this.queueClaimBytes = Math.floor(QUEUE_CLAIM * this.bufferBytes)
    this.queueSaturatedBytes = (QUEUE_HOLD - QUEUE_CLAIM) * this.bufferBytes
  }

  get inFlightCount (): number { return this.inFlight }
  /** bytes of the messages claimed here and not yet done with, waiting or in flight (ClaimedRow.size) */
  get bufferedBytes (): number { return this.bytes }

  override start (): void {
    super.start()
    this.sweeper ??= setInterval(() => this.sweepDeadlines(), DEADLINE_SWEEP_MS)
    this.sweeper.unref()
  }

  /** New messages may be due (LISTEN): a claim that skips saturated queues may run again at once. */
  override notify (): void {
    this.lastShortSkipClaim = 0
    // new rows may carry any due time (a "when" in the past, a transaction that committed late): the
    // next skipping claim looks at everything
    this.fullSkipClaim = undefined
    super.notify()
  }

  protected async pass (): Promise<number> {
    this.dropStale()
    if (!this.o.canClaim()) return this.o.pollMs // the LISTEN reconnect notifies us
    const ready = this.dispatchable()
    // keep a batch ready beyond the calls in flight, so the next claim overlaps the sending; the byte
    // limit bounds memory when the bodies are large. A finished call nudges the loop once under the
    // limits again (claimWanted)
    if (ready >= this.o.batchSize || this.buffered >= this.maxBuffered || this.bytes >= this.claimBelowBytes) return this.o.pollMs
    const skipped = this.saturatedQueues()
    if (skipped.length > 0 && Date.now() - this.lastShortSkipClaim < SKIP_CLAIM_BACKOFF_MS) return SKIP_CLAIM_BACKOFF_MS
    const budget = this.bufferBytes - this.bytes
    const room = Math.min(this.o.batchSize, Math.max(1, Math.ceil(budget / this.rowBytes)))
    const started = Date.now()
    const recentMs = skipped.length > 0 ? this.skipClaimWindow(skipped, started) : undefined
    const result = (await this.o.pool.query<sql.ClaimResultRow>(sql.claim(room, this.o.leaseMs, this.o.workerId, skipped, recentMs, budget, this.queueClaimBytes))).rows
    const seen = result[0]?.seen ?? 0
    const rows = sql.claimedRows(result)
    const now = Date.now()
    let bytes = 0
    for (const row of rows) {
      const s = this.slot(row.queueId)
      s.waiting.push({ row, claimedAt: now })
      s.bytes += row.size
      bytes += row.size
    }
    this.buffered += rows.length
    this.bytes += bytes
    if (rows.length > 0) this.rowBytes = bytes / rows.length
    this.dispatch()
    // there may be more, or the budget left due rows out: claim again, if there is room (the first
    // check above). A claim cut short by bytes must not count as one that saw every due row (below)
    if (seen === room || seen > rows.length) return 0
    if (skipped.length > 0) {
      this.lastShortSkipClaim = now
      this.lastSkipClaimAt = started
      if (recentMs === undefined) this.fullSkipClaim = { at: started, skipped }
      // a finishing call or a NOTIFY wakes us; else the next message of another queue falling due
      return Math.max(MIN_IDLE_MS, await this.untilNextDue(skipped))
    }
    // a due row another transaction holds is skipped by the claim but still "due": never spin on it
    return Math.max(MIN_IDLE_MS, await this.untilNextDue([]))
  }

  /** How far back a skipping claim must look: undefined for all of it (SKIP_RECENT_MARGIN_MS). */
  private skipClaimWindow (skipped: number[], now: number): number | undefined {
    const full = this.fullSkipClaim
    if (full === undefined || now - full.at >= this.o.pollMs) return undefined
    if (!full.skipped.every(q => skipped.includes(q))) return undefined
    return now - this.lastSkipClaimAt + SKIP_RECENT_MARGIN_MS
  }

  /** How long until the next message falls due (skipping: the next one of a queue not skipped). */
  private async untilNextDue (skipped: number[]): Promise<number> {
    const { rows } = await this.o.pool.query<{ at: Date | null }>(skipped.length > 0 ? sql.nextDueBeyond(skipped) : sql.nextDue())
    const at = rows[0]?.at
    if (at === null || at === undefined) return this.o.pollMs
    return Math.max(0, Math.min(this.o.pollMs, at.getTime() - Date.now()))
  }

  private slot (queueId: number): QueueSlot {
    let s = this.queues.get(queueId)
    if (s === undefined) {
      s = { waiting: [], inFlight: 0, bytes: 0 }
      this.queues.set(queueId, s)
    }
    return s
  }

  private forget (queueId: number, s: QueueSlot): void {
    if (s.waiting.length === 0 && s.inFlight === 0) this.queues.delete(queueId)
  }

  /**
   * Queues that already have their in-flight limit plus a batch claimed here, or nearly their share of
   * the bytes (QUEUE_HOLD): the next claim skips them, so a slow endpoint's backlog cannot fill every
   * claim, or the byte budget, and starve the other queues.
   */
  private saturatedQueues (): number[] {
    const out: number[] = []
    for (const [q, s] of this.queues) if (this.saturated(s)) out.push(q)
    return out
  }

  private saturated (s: QueueSlot): boolean {
    return s.waiting.length + s.inFlight >= this.o.queueConcurrency + this.o.batchSize || s.bytes > this.queueSaturatedBytes
  }

  /**
   * Whether a pass would claim now, by the same rules as pass(), without allocating: a finished call
   * wakes the loop only then. Waking it after every call (a pass per delivery that found nothing to
   * do) was a tenth of the worker's allocations.
   */
  private claimWanted (): boolean {
    if (this.buffered >= this.maxBuffered || this.bytes >= this.claimBelowBytes) return false
    let ready = 0
    let saturated = false
    for (const s of this.queues.values()) {
      ready += Math.min(s.waiting.length, Math.max(0, this.o.queueConcurrency - s.inFlight))
      if (this.saturated(s)) saturated = true
    }
    if (ready >= this.o.batchSize) return false
    return !saturated || Date.now() - this.lastShortSkipClaim >= SKIP_CLAIM_BACKOFF_MS
  }

  /** Claimed messages whose queue has a free slot: what can be sent as soon as the worker has one. */
  private dispatchable (): number {
    let n = 0
    for (const s of this.queues.values()) n += Math.min(s.waiting.length, Math.max(0, this.o.queueConcurrency - s.inFlight))
    return n
  }

  /**
   * Start calls while there are free slots: round-robin over queues, each within its own limit. A queue
   * that got a slot moves to the back, so a busy queue cannot keep the front place and starve others.
   */
  private dispatch (): void {
    let expired: sql.ClaimedRow[] | undefined
    let started = true
    while (started && this.inFlight < this.o.concurrency && this.buffered > 0 && !this.stopping) {
      started = false
      // each queue once per round: a queue moved to the back is met again by this loop, so count
      let left = this.queues.size
      for (const [q, s] of this.queues) {
        if (left-- === 0 || this.inFlight >= this.o.concurrency) break
        if (s.waiting.length === 0 || s.inFlight >= this.o.queueConcurrency) continue
        const c = s.waiting.shift()!
        this.buffered--
        // the lease runs from the claim: a call that could outlive it would be handed out twice
        if (Date.now() - c.claimedAt + c.row.queue.timeoutMs > Math.max(this.o.leaseMs, c.row.queue.timeoutMs + 30_000) - LEASE_MARGIN_MS) {
          this.bytes -= c.row.size
          s.bytes -= c.row.size
          expired ??= []
          expired.push(c.row)
          continue
        }
        s.inFlight++
        this.inFlight++
        started = true
        this.queues.delete(q)
        this.queues.set(q, s)
        void this.deliver(q, s, c.row)
      }
    }
    if (expired !== undefined) void this.release(expired)
  }

  /** A claim that waited too long here (its queue is saturated) goes back before its lease ends. */
  private dropStale (): void {
    const limit = Date.now() - this.o.leaseMs / 2
    const stale: sql.ClaimedRow[] = []
    for (const [q, s] of this.queues) {
      while (s.waiting.length > 0 && s.waiting[0]!.claimedAt < limit) {
        const row = s.waiting.shift()!.row
        s.bytes -= row.size
        this.bytes -= row.size
        stale.push(row)
      }
      this.forget(q, s)
    }
    if (stale.length === 0) return
    this.buffered -= stale.length
    void this.release(stale)
  }

  private sweepDeadlines (): void {
    const now = Date.now()
    for (const c of this.calls) {
      if (now >= c.deadline) cutShort(c, Object.assign(new Error('the queue timeout ran out before the response was complete'), { name: 'TimeoutError' }))
    }
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
      await this.o.pool.query(sql.release(rows, this.o.workerId))
    } catch (err) {
      // the lease runs out by itself: nothing is lost
      this.o.log.warn({ err, count: rows.length }, 'releasing claims failed; they fall due when their lease ends')
    }
  }

  private async deliver (queueId: number, s: QueueSlot, row: sql.ClaimedRow): Promise<void> {
    const attempt = row.attempts + 1
    const q = row.queue
    const call: Call = { row, deadline: Date.now() + q.timeoutMs, reason: undefined, abort: undefined }
    this.calls.add(call)
    const result = await send(this.o.dispatcher, {
      messageId: row.id,
      queueId: row.queueId,
      attempt,
      url: q.callbackUrl,
      method: q.method,
      queueHeaders: q.headers,
      headers: row.headers,
      body: row.body,
      timeoutMs: q.timeoutMs,
      idempotencyKey: row.idempotencyKey,
      signingSecrets: q.signingSecrets
    }, call)
    this.calls.delete(call)
    this.inFlight--
    s.inFlight--
    this.bytes -= row.size
    s.bytes -= row.size
    this.forget(queueId, s)

    if (!result.ok && call.reason !== undefined && call.reason.name !== 'TimeoutError') {
      // cut off by shutdown: not an attempt the endpoint failed, so give the message back as it was
      void this.release([row])
    } else {
      let retryAt: Date | null = null
      if (!result.ok) {
        const delay = nextRetryDelay({ retries: row.retries, status: result.status, retryAfter: result.retryAfter }, q)
        retryAt = delay === null ? null : new Date(Date.now() + delay)
      }
      this.pending.push({ id: row.id, claimToken: row.claimToken, queueId: row.queueId, attempt, when: row.when, result, retryAt })
      this.scheduleFlush()
      if (result.ok) {
        if (this.o.log.isLevelEnabled('debug')) {
          this.o.log.debug({ messageId: row.id, queueId: row.queueId, attempt, status: result.status, durationMs: result.durationMs }, 'delivered')
        }
      } else {
        this.o.log.info({ messageId: row.id, queueId: row.queueId, attempt, status: result.status, durationMs: result.durationMs, errorKind: result.errorKind, error: result.error, retryAt },
          retryAt !== null ? 'delivery failed; will retry' : 'delivery failed; retries exhausted')
      }
      const event: DeliveryEvent = { messageId: row.id, queueId: row.queueId, attempt, when: row.when, result, retryAt }
      this.emit(result.ok ? 'delivered' : 'failed', event)
    }

    this.dispatch()
    // running low: claim more. nudge(), not a bare wake: the loop may be mid-pass, not asleep
    if (!this.stopping && this.claimWanted()) this.nudge()
    if (this.inFlight === 0) this.idle?.()
  }

  private scheduleFlush (): void {
    if (this.flushing !== null || this.pending.length === 0) return // a running flush looks again when it ends
    if (this.pending.length >= FLUSH_EAGER) {
      clearTimeout(this.flushTimer)
      this.flushTimer = undefined
      void this.flush(false)
    } else if (this.flushTimer === undefined) {
      this.flushTimer = setTimeout(() => { this.flushTimer = undefined; void this.flush() }, FLUSH_DELAY_MS)
    }
  }

  /**
   * Write the waiting outcomes, one statement at a time: all of them, or (eager) only while a full
   * batch waits, leaving the rest to the timer. One flush runs at a time, and a failed statement keeps
   * its batch for the next.
   */
  async flush (all = true): Promise<void> {
    while (this.flushing !== null) {
      await this.flushing
      if (!all) return
    }
    if (this.pending.length === 0) return
    this.flushing = (async () => {
      while (this.pending.length >= (all ? 1 : FLUSH_EAGER)) {
        const batch = this.pending.splice(0, FLUSH_MAX)
        try {
          const { rows } = await this.o.pool.query<{ messageId: number, dlqMessageId: number | null, queueId: number }>(sql.complete(batch, this.o.workerId))
          this.flushErrors = 0
          for (const d of rows) {
            this.o.log.warn({ messageId: d.messageId, queueId: d.queueId, dlqMessageId: d.dlqMessageId }, 'message dead-lettered')
            this.emit('dead', d)
          }
          this.emit('recorded', batch)
          // a retry time or a dead-letter copy can be the next thing due: the loop may be asleep past it
          if (rows.length > 0 || batch.some(c => c.retryAt !== null)) this.nudge()
        } catch (err) {
          this.pending.unshift(...batch)
          this.flushErrors++
          const wait = Math.min(FLUSH_BACKOFF_MAX_MS, 50 * 2 ** Math.min(this.flushErrors, 10))
          this.o.log.error({ err, count: batch.length, retryInMs: wait }, 'recording delivery outcomes failed; will retry')
          if (this.stopping && this.flushErrors > 5) return // shutting down: the leases will hand them out again
          await new Promise(resolve => setTimeout(resolve, wait))
        }
      }
    })().finally(() => {
      this.flushing = null
      // what came in meanwhile, or what an eager flush left, waits for the timer; not after giving up
      if (this.flushErrors === 0) this.scheduleFlush()
    })
    return await this.flushing
  }

  /** Stop claiming at once and give back what was claimed but not started; calls in flight go on. */
  async stopClaiming (): Promise<void> {
    if (!this.active || this.stopping) return
    await this.stopLoop()
    const unsent: sql.ClaimedRow[] = []
    for (const s of this.queues.values()) {
      for (const c of s.waiting.splice(0)) {
        unsent.push(c.row)
        s.bytes -= c.row.size
        this.bytes -= c.row.size
      }
    }
    this.buffered = 0
    await this.release(unsent)
  }

  /**
   * Stop claiming at once and give back what was claimed but not started. Calls in flight get
   * graceMs to finish and be recorded; any still running then are aborted and released.
   */
  override async stop (graceMs = 0): Promise<void> {
    if (!this.active) return
    await this.stopClaiming()
    if (this.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs)
        this.idle = () => { clearTimeout(timer); resolve() }
      })
      this.idle = undefined
      for (const c of this.calls) cutShort(c, new Error('shutting down'))
      // aborted calls settle promptly; wait for their release
      while (this.inFlight > 0) await new Promise(resolve => setTimeout(resolve, 10))
    }
    clearInterval(this.sweeper)
    this.sweeper = undefined
    await Promise.all(this.releases)
    clearTimeout(this.flushTimer)
    this.flushTimer = undefined
    await this.flush()
    this.queues.clear()
    this.markStopped()
  }
}
