// The producer: what to claim, when, and which claimed message goes out next. It holds the buffer
// (claimed rows waiting for a slot, per queue) and applies one fairness rule, saturated(): a queue
// that holds its in-flight limit plus a batch, or nearly its share of the bytes, is skipped by the
// next claim. Pure: no database, no timers; the worker passes `now` and each call's duration in, and
// runs the claims.
import { leaseFor } from './lease.js'
import { CLAIM_ROW_OVERHEAD_BYTES, type ClaimedRow, LANE_CHUNK, type LimitedQueueState } from './sql.js'

export interface ProducerOptions {
  batchSize: number
  /** calls in flight at most per queue, so one slow endpoint cannot take every slot */
  queueConcurrency: number
  /**
   * bytes of claimed rows (ClaimedRow.size) held at once, waiting or in flight: a claim asks for no
   * more than the room left, and is made only while under CLAIM_BELOW of it. One message larger than
   * the room is still claimed, so this may be exceeded by less than one message.
   */
  bufferBytes: number
  leaseMs: number
  pollMs: number
}

/** One claim's parameters (sql.claim). */
export interface ClaimRequest {
  limit: number
  /** saturated queues: the claim takes none of their rows */
  skipQueues: number[]
  /** only rows due in the last recentMs (see SKIP_RECENT_MARGIN_MS); undefined: every due row */
  recentMs: number | undefined
  maxBytes: number
  queueMaxBytes: number
  /** when the claim was planned */
  at: number
}

// After a claim that skipped saturated queues came back short, the next skipping claim waits this long
// (a NOTIFY lifts the wait)
export const SKIP_CLAIM_BACKOFF_MS = 200
// A skipping claim that finds nothing has walked past every due row of the skipped queues: a backlog
// of 100,000 is tens of ms of PostgreSQL, and of a loop that claims nothing else meanwhile. So after
// one such full claim, the skipping claims that follow look only at rows due since the previous one
// (plus this margin, for rows committed a little after they fell due), an index range of a few rows.
// A full one runs again after a NOTIFY (new rows may be due from any time), after pollMs, or as soon as
// a queue leaves the skipped set (its older rows are wanted again). What a bounded claim cannot see (a
// row another transaction held at the last claim) waits at most pollMs, as under plain polling.
const SKIP_RECENT_MARGIN_MS = 1000
// a claim is sent only while its lease outlasts the call by this much; else it goes back
const LEASE_MARGIN_MS = 5000
// claims wait until the bytes held are below this share of bufferBytes, so that with large bodies a
// claim has room for a quarter of it, rather than one message per finished call
const CLAIM_BELOW = 0.75
// A queue holds at most this share of bufferBytes (and one message more), waiting or in flight, so a
// slow endpoint's large bodies leave room for the other queues: one claim gives a queue at most
// QUEUE_CLAIM of it, and a queue holding more than QUEUE_HOLD - QUEUE_CLAIM is skipped (saturated)
const QUEUE_HOLD = 0.5
const QUEUE_CLAIM = 0.125
// The slots a queue may not use (concurrency - queueConcurrency) are kept so that another queue's
// message finds one free when a hot queue's calls hang. While no other queue has a row waiting here,
// a queue whose calls answer within this on average may use them too: they come back as fast as its
// calls end. A slow queue never borrows; one that starts hanging holds them at most one timeout.
// Measured (bench/probe-worker.ts, one queue, 100k backlog): 54 -> 62 calls in flight, 8,626 -> 9,690/s.
export const BORROW_MAX_MS = 250
// the weight of the latest call in a queue's running mean of call durations
const DURATION_WEIGHT = 0.2

// A limited queue whose slots are all taken (by any process) is asked again this often; its own
// calls' outcomes ask at once
export const SLOTS_RECHECK_MS = 25
// Limited claims asked for by the clock (a rate's next call) run at most this often: each asks every
// limited queue that is due, so queues whose next call falls due at scattered times share a statement
// rather than each making its own (a rate's bucket holds a second's calls: nothing is lost by waiting).
// One asked for by an outcome (a slot or a key let go) runs at once. bench/flow.ts, beside: ten queues at
// 50/s beside unlimited ones cost those 23% without it, 15% with it.
export const LIMITED_CLAIM_GAP_MS = 20

/** One limited claim's parameters (sql.claimLimited): the limited queues to ask, with this process's room for each. */
export interface LimitedClaimRequest { queueIds: number[], rooms: number[] }

interface Claimed { row: ClaimedRow, claimedAt: number }

/**
 * One queue's claimed rows waiting for a slot, its calls in flight, the bytes of both, and the running
 * mean of its calls' durations (-1 until one ends).
 */
interface QueueSlot { waiting: Claimed[], inFlight: number, bytes: number, meanMs: number }

export class Producer {
  // a Map keeps queues in arrival order for round-robin dispatch
  private readonly queues = new Map<number, QueueSlot>()
  private buffered = 0
  private bytes = 0
  // the bytes per row of the last claim: with large bodies, a claim asks for about as many rows as fit,
  // rather than locking a batch of which the byte budget keeps a few
  private rowBytes = CLAIM_ROW_OVERHEAD_BYTES
  private lastShortSkipClaim = Number.NEGATIVE_INFINITY
  // when the last skipping claim started, and the last full (unbounded) one with what it skipped
  private lastSkipClaimAt = 0
  private fullSkipClaim: { at: number, skipped: number[] } | undefined
  // bytes bound the memory; this, how many rows wait here out of other processes' reach
  private readonly maxBuffered: number
  private readonly claimBelowBytes: number
  private readonly queueClaimBytes: number
  private readonly queueSaturatedBytes: number
  // Limited queues (sql.claimLimited), with when to ask each again (epoch ms; 0: at once). Their rows
  // are in the limited lane, out of the plain claim's range; a queue joins when the plain claim meets
  // rows of it (and moves them there) or the lane is found to hold some, and leaves when claimLimited
  // says it is no longer limited, or not active, and has moved its last rows back (the plain claim then
  // sends, parks, holds or probes them)
  private readonly limited = new Map<number, number>()
  private lastLimitedClaim = Number.NEGATIVE_INFINITY
  // when to ask which queues have rows in the lane (sql.laneQueues): 0, at once
  private laneCheckAt = 0

  constructor (private readonly o: ProducerOptions) {
    this.maxBuffered = 10 * o.batchSize
    this.claimBelowBytes = CLAIM_BELOW * o.bufferBytes
    this.queueClaimBytes = Math.floor(QUEUE_CLAIM * o.bufferBytes)
    this.queueSaturatedBytes = (QUEUE_HOLD - QUEUE_CLAIM) * o.bufferBytes
  }

  /** rows claimed here and not yet done with, waiting or in flight */
  get bufferedBytes (): number { return this.bytes }
  /** rows claimed here waiting for a slot */
  get waiting (): number { return this.buffered }

  /**
   * New rows may be due from any time (a NOTIFY): the next skipping claim runs at once and looks at all.
   * lanes: rows may have entered the limited lane too (inserted there, reaped, or notifications lost
   * while the LISTEN connection was down): the lane is looked at again.
   */
  notified (lanes: boolean): void {
    this.lastShortSkipClaim = Number.NEGATIVE_INFINITY
    this.fullSkipClaim = undefined
    for (const q of this.limited.keys()) this.limited.set(q, 0)
    if (lanes) this.laneCheckAt = 0
  }

  /** Whether to ask now which queues have rows in the limited lane. */
  laneCheckDue (now: number): boolean { return now >= this.laneCheckAt }

  /** The queues with rows in the limited lane: claimLimited's. The lane is looked at again after pollMs. */
  laneChecked (queueIds: number[], now: number): void {
    for (const q of queueIds) if (!this.limited.has(q)) this.limited.set(q, 0)
    this.laneCheckAt = now + this.o.pollMs
  }

  /** Queues the plain claim met as limited (or whose throttle began here): claimLimited's from now on. */
  markLimited (queueIds: number[]): void {
    for (const q of queueIds) this.limited.set(q, 0)
  }

  /** The limited claim failed: its queues are asked again after this long, and the plain claim goes on. */
  limitedFailed (req: LimitedClaimRequest, now: number, backoffMs: number): void {
    for (const q of req.queueIds) if (this.limited.has(q)) this.limited.set(q, now + backoffMs)
  }

  /** Outcomes of these queues were written: a limited one may have a slot or an ordering key free again. */
  written (queueIds: Iterable<number>): void {
    for (const q of queueIds) if (this.limited.has(q)) this.limited.set(q, 0)
  }

  /** The limited claim to run now, if any queue is due to be asked and has room here. */
  limitedPlan (now: number): LimitedClaimRequest | undefined {
    if (this.limited.size === 0 || this.full()) return
    const gap = now - this.lastLimitedClaim < LIMITED_CLAIM_GAP_MS
    const queueIds: number[] = []
    const rooms: number[] = []
    for (const [q, at] of this.limited) {
      if (at > now || (gap && at !== 0)) continue
      const room = this.room(q)
      if (room <= 0) continue
      queueIds.push(q)
      rooms.push(room)
    }
    if (queueIds.length === 0) return
    this.lastLimitedClaim = now
    return { queueIds, rooms }
  }

  /**
   * How long until a limited queue is to be asked again (Infinity: none is, or the buffer is full: a
   * finished call asks again). Never 0 when limitedPlan() would claim nothing: the loop would spin
   * without yielding (attack round: with the buffer full, it did, and no call was dispatched again).
   */
  limitedWait (now: number): number {
    // the lane asked for (a NOTIFY): a pass now. Else it is looked at by the first pass after pollMs:
    // the loop never sleeps longer
    if (this.laneCheckAt === 0) return 0
    if (this.full()) return Number.POSITIVE_INFINITY
    let at = Number.POSITIVE_INFINITY
    for (const [q, t] of this.limited) if (t < at && this.room(q) > 0) at = t
    if (at === 0) return 0
    return Math.max(0, at - now, this.lastLimitedClaim + LIMITED_CLAIM_GAP_MS - now)
  }

  /** Take a limited claim's rows, and when to ask each queue again. */
  limitedClaimed (req: LimitedClaimRequest, rows: ClaimedRow[], states: LimitedQueueState[], now: number): void {
    this.take(rows, now)
    const got = new Map<number, number>()
    for (const r of rows) got.set(r.queueId, (got.get(r.queueId) ?? 0) + 1)
    // a queue deleted meanwhile has no state: it leaves (attack round: it stayed due, and the loop spun)
    const told = new Set(states.map(st => st.queueId))
    for (const q of req.queueIds) if (!told.has(q)) this.limited.delete(q)
    for (const st of states) {
      if (!st.limited || !st.active) {
        // its rows go back to the plain claim, a chunk at a time: while some may be left, ask again
        if (st.unlaned >= LANE_CHUNK) this.limited.set(st.queueId, now)
        else this.limited.delete(st.queueId)
        continue
      }
      if (st.nextAtMs === null) { // nothing pending: a NOTIFY asks again
        this.limited.set(st.queueId, Number.POSITIVE_INFINITY)
        continue
      }
      let at = Math.max(st.nextAtMs, st.rateNextMs ?? 0)
      if (st.slotsLeft !== null && st.slotsLeft <= 0) at = Math.max(at, now + SLOTS_RECHECK_MS)
      // rows due and none taken (held by another claim, or waiting for an earlier one of their key):
      // never spin on them
      if (at <= now && got.get(st.queueId) === undefined) at = now + SLOTS_RECHECK_MS
      this.limited.set(st.queueId, at)
    }
  }

  private full (): boolean {
    return this.buffered >= this.maxBuffered || this.bytes >= this.claimBelowBytes
  }

  /** This process's room for more of a queue's rows: up to its per-queue concurrency, waiting or in flight. */
  private room (queueId: number): number {
    const s = this.queues.get(queueId)
    return s === undefined ? this.o.queueConcurrency : this.o.queueConcurrency - s.waiting.length - s.inFlight
  }

  /**
   * 0 when a claim should run now; else how long to wait (a finished call, a NOTIFY or the wait's end
   * asks again). A batch is kept ready beyond the calls in flight, so the next claim overlaps the
   * sending; the buffer's row and byte limits bound memory. The one rule for both the loop's pass and
   * the wake-up after a finished call; it allocates nothing, as it runs once per delivery.
   */
  claimWait (now: number): number {
    if (this.full()) return this.o.pollMs
    let ready = 0
    let saturated = false
    for (const s of this.queues.values()) {
      ready += this.sendable(s)
      if (!saturated && this.saturated(s)) saturated = true
    }
    if (ready >= this.o.batchSize) return this.o.pollMs
    if (!saturated) return 0
    return Math.max(0, SKIP_CLAIM_BACKOFF_MS - (now - this.lastShortSkipClaim))
  }

  /** The next claim, when claimWait() said 0. */
  plan (now: number): ClaimRequest {
    // limited queues are not skipped: their rows are out of the plain claim's range (the limited lane),
    // but for those of a queue limited since they were enqueued, which the claim moves there as it meets them
    const skipQueues: number[] = []
    for (const [q, s] of this.queues) if (!this.limited.has(q) && this.saturated(s)) skipQueues.push(q)
    const budget = this.o.bufferBytes - this.bytes
    return {
      limit: Math.min(this.o.batchSize, Math.max(1, Math.ceil(budget / this.rowBytes))),
      skipQueues,
      recentMs: skipQueues.length > 0 ? this.skipClaimWindow(skipQueues, now) : undefined,
      maxBytes: budget,
      queueMaxBytes: this.queueClaimBytes,
      at: now
    }
  }

  /**
   * Take a claim's rows into the buffer. Returns whether to claim again at once: a full claim, or one
   * the byte budget cut short, may have left due rows behind. After a short one, the worker sleeps until
   * the next row falls due (of the queues not skipped).
   */
  claimed (req: ClaimRequest, rows: ClaimedRow[], seen: number, now: number): boolean {
    this.take(rows, now)
    // a claim cut short by bytes must not count as one that saw every due row
    if (seen === req.limit || seen > rows.length) return true
    if (req.skipQueues.length > 0) {
      this.lastShortSkipClaim = now
      this.lastSkipClaimAt = req.at
      if (req.recentMs === undefined) this.fullSkipClaim = { at: req.at, skipped: req.skipQueues }
    }
    return false
  }

  /**
   * The next row to send, round-robin over queues, each within its own limit: a queue that got a slot
   * moves to the back, so a busy queue cannot keep the front place and starve others. When every queue
   * with rows waiting is at its limit and there is just one, it may borrow (BORROW_MAX_MS); the worker
   * asks only while the executor has a free slot. Rows whose lease would run out before their call
   * could end go to `expired`, to be given back.
   */
  next (now: number, expired: ClaimedRow[]): ClaimedRow | undefined {
    if (this.buffered === 0) return undefined
    let waitingQueues = 0
    let lone: QueueSlot | undefined
    let loneId = 0
    for (const [q, s] of this.queues) {
      while (this.sendable(s) > 0) {
        const row = this.start(q, s, now, expired)
        if (row !== undefined) return row
      }
      if (s.waiting.length > 0) {
        waitingQueues++
        lone = s
        loneId = q
      }
    }
    if (waitingQueues !== 1 || lone === undefined || lone.meanMs < 0 || lone.meanMs >= BORROW_MAX_MS) return undefined
    if (lone.waiting[0]!.row.queue.probe) return undefined
    while (lone.waiting.length > 0) {
      const row = this.start(loneId, lone, now, expired)
      if (row !== undefined) return row
    }
    return undefined
  }

  private take (rows: ClaimedRow[], now: number): void {
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
  }

  /** A call ended (or never started: no duration): its row leaves the buffer. */
  done (row: ClaimedRow, durationMs?: number): void {
    // a limited queue that had no room here is asked at once (a rate's next call is the clock's business)
    if (this.limited.has(row.queueId) && this.room(row.queueId) <= 0) this.limited.set(row.queueId, 0)
    const s = this.queues.get(row.queueId)
    if (s === undefined) return
    s.inFlight--
    if (durationMs !== undefined) {
      s.meanMs = s.meanMs < 0 ? durationMs : s.meanMs + (durationMs - s.meanMs) * DURATION_WEIGHT
    }
    this.drop(s, row)
    this.forget(row.queueId, s)
  }

  /** Rows that waited here half the configured lease (their queue is saturated): to give back before it ends. */
  stale (now: number): ClaimedRow[] {
    const limit = now - this.o.leaseMs / 2
    const out: ClaimedRow[] = []
    for (const [q, s] of this.queues) {
      while (s.waiting.length > 0 && s.waiting[0]!.claimedAt < limit) {
        const row = s.waiting.shift()!.row
        this.drop(s, row)
        this.buffered--
        out.push(row)
      }
      this.forget(q, s)
    }
    return out
  }

  /** The rows of one queue still waiting (it was disabled): to give back. */
  dropQueue (queueId: number): ClaimedRow[] {
    const s = this.queues.get(queueId)
    if (s === undefined) return []
    const out = s.waiting.splice(0).map(c => c.row)
    for (const row of out) this.drop(s, row)
    this.buffered -= out.length
    this.forget(queueId, s)
    return out
  }

  /** Every row still waiting (stopping): to give back. Calls in flight stay counted until done(). */
  drain (): ClaimedRow[] {
    const out: ClaimedRow[] = []
    for (const [q, s] of this.queues) {
      for (const c of s.waiting.splice(0)) {
        this.drop(s, c.row)
        out.push(c.row)
      }
      this.forget(q, s)
    }
    this.buffered = 0
    return out
  }

  /** The queue's first waiting row, now in flight; undefined when its lease would end too soon (to `expired`). */
  private start (q: number, s: QueueSlot, now: number, expired: ClaimedRow[]): ClaimedRow | undefined {
    const c = s.waiting.shift()!
    this.buffered--
    // the lease runs from the claim: a call that could outlive it would be handed out twice
    const timeoutMs = c.row.queue.timeoutMs
    if (now - c.claimedAt + timeoutMs > leaseFor(this.o.leaseMs, timeoutMs) - LEASE_MARGIN_MS) {
      this.drop(s, c.row)
      expired.push(c.row)
      return undefined
    }
    s.inFlight++
    this.queues.delete(q)
    this.queues.set(q, s)
    return c.row
  }

  private sendable (s: QueueSlot): number {
    // a half-open circuit is probed by one call at a time (sql.QueueTarget.probe)
    const limit = s.waiting.length > 0 && s.waiting[0]!.row.queue.probe ? 1 : this.o.queueConcurrency
    return Math.min(s.waiting.length, Math.max(0, limit - s.inFlight))
  }

  /** The fairness rule: a queue holding its limit plus a batch, or nearly its share of the bytes. */
  private saturated (s: QueueSlot): boolean {
    return s.waiting.length + s.inFlight >= this.o.queueConcurrency + this.o.batchSize ||
      s.bytes > this.queueSaturatedBytes
  }

  /** How far back a skipping claim must look: undefined for all of it (SKIP_RECENT_MARGIN_MS). */
  private skipClaimWindow (skipped: number[], now: number): number | undefined {
    const full = this.fullSkipClaim
    if (full === undefined || now - full.at >= this.o.pollMs) return undefined
    if (!full.skipped.every(q => skipped.includes(q))) return undefined
    return now - this.lastSkipClaimAt + SKIP_RECENT_MARGIN_MS
  }

  private slot (queueId: number): QueueSlot {
    let s = this.queues.get(queueId)
    if (s === undefined) {
      s = { waiting: [], inFlight: 0, bytes: 0, meanMs: -1 }
      this.queues.set(queueId, s)
    }
    return s
  }

  private drop (s: QueueSlot, row: ClaimedRow): void {
    s.bytes -= row.size
    this.bytes -= row.size
  }

  private forget (queueId: number, s: QueueSlot): void {
    if (s.waiting.length === 0 && s.inFlight === 0) this.queues.delete(queueId)
  }
}
