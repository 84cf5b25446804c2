// The delivery loop: the producer decides what to claim, the executor sends, the completer records.
// One loop per process; passes never overlap. Everything it touches outside memory is passed in:
// the claims (database.ts), the send (sender.ts) and the clock, so its policy is tested with fakes.
import type { Logger } from 'pino'
import { systemClock, type Clock } from './clock.js'
import {
  Completer, GONE, UNRECORDED_MAX, type CircuitTurn, type DeadLetter, type DisabledQueue, type Recorded
} from './completer.js'
import type { Claims } from './database.js'
import { Executor, type Send } from './executor.js'
import { Loop } from './loop.js'
import { Producer, type ProducerOptions } from './producer.js'
import type { Cut, Result } from './sender.js'
import type { ClaimedRow, Completion } from './sql.js'

export interface WorkerOptions extends ProducerOptions {
  claims: Claims
  send: Send
  concurrency: number
  log: Logger
  /**
   * Whether this process may claim now: its worker lock (held by the LISTEN connection) is what keeps
   * its claims from being reaped, so nothing is claimed while that connection is down.
   */
  canClaim: () => boolean
  clock?: Clock
  /** the backoff's random source; tests pin it */
  random?: () => number
  /** outcomes waiting to be written beyond which nothing more is claimed (UNRECORDED_MAX; tests lower it) */
  unrecordedMax?: number
}

/** One finished call, as the metrics and the tests see it. */
export interface DeliveryEvent {
  messageId: number
  queueId: number
  attempt: number
  when: Date
  result: Result
  /** null on success; on failure, when it will be retried, or null when it is dead */
  retryAt: Date | null
}

/** The worker's signals, as graphile-worker's events: the metrics count them, tests wait on them. */
export interface WorkerEvents {
  /** a claim returned: rows taken, and due rows it locked (more when the byte budget left some) */
  claimed: [{ count: number, seen: number }]
  /** a call answered 2xx (not yet recorded: see flushed) */
  delivered: [DeliveryEvent]
  /** a call failed; retryAt says whether it will be retried (not yet recorded: see flushed) */
  failed: [DeliveryEvent]
  /** a batch of outcomes was written */
  flushed: [Completion[]]
  /** a failure was written with its retry time */
  retried: [Completion]
  /** a message's retries ran out, written with its dead letter (and DLQ copy) */
  dead: [DeadLetter]
  /** a batch written by this process disabled a queue: its endpoint answered 410 Gone */
  disabled: [DisabledQueue]
  /** a batch written by this process opened or closed a queue's circuit */
  circuit: [CircuitTurn]
  /** claims given back untouched (stopping, stale, cut off by shutdown) */
  released: [{ count: number }]
  /** a closed circuit's held rows were made due again, UNHOLD_AFTER_CLOSE_MS after it closed */
  unheld: [{ queueId: number, count: number }]
}

// the shortest sleep after a claim that found nothing to take
const MIN_IDLE_MS = 50
// how long limited queues wait after their claim failed
const LIMITED_RETRY_MS = 1000
// A release that failed (the database restarting, its connections cut) is tried again after each of
// these: until it succeeds, the rows wait for their lease (a minute or more), and with them their
// ordering keys and concurrency slots (attack round: a fifo queue stood still for the lease)
const RELEASE_RETRIES_MS = [200, 400, 800, 1600, 3200, 6400]
// After a circuit closes, its held rows are made due once more this much later: long enough for a
// claim that read the circuit as open, in any process, to have committed (sql.unholdClosedCircuit)
export const UNHOLD_AFTER_CLOSE_MS = 1000

export class Worker extends Loop<WorkerEvents> {
  private readonly producer: Producer
  private readonly executor: Executor
  private readonly completer: Completer
  private readonly releases = new Set<Promise<void>>()
  // the follow-ups of closed circuits (unhold), cancelled when the worker stops
  private readonly unholds = new Set<() => void>()
  // rows whose lease ran out while they waited (producer.next), reused: dispatch runs once per call
  private readonly expired: ClaimedRow[] = []
  private idle: (() => void) | undefined
  // when the plain claim is next wanted (epoch ms): a pass woken for a limited queue skips it till then,
  // unless something asked for it since the last one began (a NOTIFY, a finished call, a written outcome)
  private claimAt = 0
  private claimAsked = false
  private readonly unrecordedMax: number
  // a pass found too many outcomes waiting to be written: the next written batch wakes the loop
  private recordingBehind = false

  constructor (private readonly o: WorkerOptions) {
    const clock = o.clock ?? systemClock
    super(o.log, 'claiming messages', clock)
    this.unrecordedMax = o.unrecordedMax ?? UNRECORDED_MAX
    this.producer = new Producer(o)
    this.executor = new Executor({ concurrency: o.concurrency, send: o.send, clock, onDone: (...a) => this.sent(...a) })
    this.completer = new Completer({
      complete: o.claims.complete, clock, log: o.log, random: o.random, onFlushed: (b, d) => this.flushed(b, d)
    })
  }

  get inFlightCount (): number { return this.executor.inFlight }
  /** outcomes waiting to be written (not those of the statement being written) */
  get waitingOutcomes (): number { return this.completer.waiting }
  /** bytes of the messages claimed here and not yet done with, waiting or in flight (ClaimedRow.size) */
  get bufferedBytes (): number { return this.producer.bufferedBytes }

  override start (): void {
    if (this.active) return
    this.completer.restart()
    this.executor.start()
    super.start()
  }

  /**
   * New messages may be due (LISTEN): a claim that skips saturated queues may run again at once.
   * lanes: rows may have entered the limited lane (sql.laneQueues): a NOTIFY 'lane', claims reaped, the
   * LISTEN connection back (what was sent meanwhile is lost)
   */
  override notify (lanes = true): void {
    this.producer.notified(lanes)
    this.claimAsked = true
    super.notify()
  }

  protected async pass (): Promise<number> {
    this.release(this.producer.stale(this.clock.now()))
    if (!this.o.canClaim()) return this.o.pollMs // the LISTEN reconnect notifies us
    // calls outrunning the statements that record them: nothing more is claimed until a batch is
    // written, and the rows already claimed are still sent. Claiming on would only pile outcomes up
    // in memory while their leases run
    if (this.behind()) return this.o.pollMs
    if (this.producer.laneCheckDue(this.clock.now())) {
      try {
        this.producer.laneChecked(await this.o.claims.laneQueues(), this.clock.now())
      } catch (err) {
        // as a failed limited claim: the plain claim goes on, the lane is looked at again later
        this.log.error({ err, retryInMs: LIMITED_RETRY_MS }, 'looking for queues in the limited lane failed')
        this.producer.laneChecked([], this.clock.now() - this.o.pollMs + LIMITED_RETRY_MS)
      }
    }
    const limitedReq = this.producer.limitedPlan(this.clock.now())
    if (limitedReq !== undefined) {
      try {
        const { rows, states } = await this.o.claims.claimLimited(limitedReq.queueIds, limitedReq.rooms)
        this.producer.limitedClaimed(limitedReq, rows, states, this.clock.now())
        // rows moved back to the plain claim's range: it looks for them now
        if (states.some(st => st.unlaned > 0)) this.claimAsked = true
        this.emit('claimed', { count: rows.length, seen: rows.length })
        this.dispatch()
      } catch (err) {
        // the limited queues wait; the others are claimed as ever (attack round: a limit that broke the
        // limited claim stopped every queue's delivery)
        this.log.error({ err, queueIds: limitedReq.queueIds, retryInMs: LIMITED_RETRY_MS },
          'claiming limited queues failed')
        this.producer.limitedFailed(limitedReq, this.clock.now(), LIMITED_RETRY_MS)
      }
    }
    const limitedWait = (): number => this.producer.limitedWait(this.clock.now())
    if (!this.claimAsked && this.clock.now() < this.claimAt) {
      return Math.min(this.claimAt - this.clock.now(), limitedWait())
    }
    this.claimAsked = false
    // set again only by a claim that comes back short, from the next due row; a full one claims again
    this.claimAt = 0
    const wait = this.producer.claimWait(this.clock.now())
    if (wait > 0) return Math.min(wait, limitedWait())
    const req = this.producer.plan(this.clock.now())
    const { rows, seen, limited } = await this.o.claims.claim(req)
    // rows of limited queues were left: claimLimited's from now on, and the plain claim runs again
    // without them
    this.producer.markLimited(limited)
    const more = this.producer.claimed(req, rows, seen, this.clock.now()) || limited.length > 0
    this.emit('claimed', { count: rows.length, seen })
    this.dispatch()
    if (more) return 0
    // a finishing call or a NOTIFY wakes us; else the next row falls due (a due row another
    // transaction holds is skipped by the claim but still "due": never spin on it)
    const at = await this.o.claims.nextDue(req.skipQueues)
    // a due time JS cannot count with (±infinity, a year past 275760: through plain SQL) is a poll
    const dueAt = at instanceof Date ? at.getTime() : Number.NaN
    const untilDue = Number.isFinite(dueAt) ? Math.min(this.o.pollMs, dueAt - this.clock.now()) : this.o.pollMs
    const sleep = Math.max(MIN_IDLE_MS, untilDue)
    this.claimAt = this.clock.now() + sleep
    return Math.min(sleep, limitedWait())
  }

  /** Start calls while there are free slots and rows waiting; none without the worker lock (giveBackWaiting). */
  private dispatch (): void {
    if (!this.o.canClaim()) {
      this.giveBackWaiting()
      return
    }
    const expired = this.expired
    const now = this.clock.now()
    while (!this.executor.full && !this.stopping) {
      const row = this.producer.next(now, expired)
      if (row === undefined) break
      this.executor.run(row)
    }
    if (expired.length > 0) this.release(expired.splice(0))
  }

  private sent (row: ClaimedRow, attempt: number, result: Result, cut: Cut): void {
    this.producer.done(row, result.durationMs)
    if (!result.ok && cut.reason !== undefined && cut.reason.name !== 'TimeoutError') {
      // cut off by shutdown: not an attempt the endpoint failed, so give the message back as it was
      this.release([row])
    } else {
      const { retryAt, parked, holdUntil } = this.completer.record(row, attempt, result)
      this.logOutcome(row, attempt, result, retryAt)
      // The endpoint said stop (410: its queue is disabled as the outcome is written) or wait (429 or 503
      // with Retry-After: the queue is held), or a half-open queue's probe failed (it opens again): what
      // waits here goes back, for the claims that meet it to park or hold (sql.claim). Once this outcome
      // is written: given back before, it was due at once, and the next claim sent it as more probes
      // (attack round)
      if (parked || holdUntil !== null || (row.queue.probe && !result.ok)) {
        const rows = this.producer.dropQueue(row.queueId)
        if (rows.length > 0) {
          const back = (): void => this.release(rows)
          this.completer.flush().then(back, back)
        }
      }
      const event: DeliveryEvent = { messageId: row.id, queueId: row.queueId, attempt, when: row.when, result, retryAt }
      this.emit(result.ok ? 'delivered' : 'failed', event)
    }
    this.dispatch()
    // running low: claim more. wake(), not a bare timer: the loop may be mid-pass, not asleep
    if (this.stopping || this.behind()) {
      // a written batch wakes the loop
    } else if (this.producer.claimWait(this.clock.now()) === 0) {
      this.claimAsked = true
      this.wake()
    } else if (this.producer.limitedWait(this.clock.now()) === 0) this.wake()
    if (this.executor.inFlight === 0) this.idle?.()
  }

  private flushed (batch: Completion[], { dead, disabled, circuits, throttled }: Recorded): void {
    // a limited queue's slot or ordering key may be free again; a throttled queue is limited from now on,
    // and what waits here goes back, to be claimed at its rate (every process is told: database.ts)
    this.producer.markLimited(throttled)
    for (const q of throttled) this.giveBackQueue(q)
    this.producer.written(batch.filter(c => c.slotted || c.ordered).map(c => c.queueId))
    for (const c of circuits) {
      this.log.warn({ queueId: c.id, consecutiveFailures: c.consecutiveFailures },
        c.state === 'open' ? 'circuit opened: the queue is held' : 'circuit closed: the queue flows again')
      this.emit('circuit', c)
      // an open circuit holds the queue: what waits here goes back, for the claims to hold
      if (c.state === 'open') this.giveBackQueue(c.id)
      else {
        const cancel = this.clock.after(UNHOLD_AFTER_CLOSE_MS, () => {
          this.unholds.delete(cancel)
          this.unhold(c.id)
        })
        this.unholds.add(cancel)
      }
    }
    for (const q of disabled) {
      this.log.warn({ queueId: q.id, reason: q.reason }, 'queue disabled; its messages are parked until it is enabled')
      this.emit('disabled', q)
    }
    for (const d of dead) {
      this.log.warn({ messageId: d.messageId, queueId: d.queueId, dlqMessageId: d.dlqMessageId },
        'message dead-lettered')
      this.emit('dead', d)
    }
    let retries = false
    for (const c of batch) {
      if (c.retryAt === null) continue
      retries = true
      this.emit('retried', c)
    }
    this.emit('flushed', batch)
    if (this.recordingBehind && !this.behind()) {
      this.recordingBehind = false
      this.claimAsked = true
      this.wake()
    }
    // a retry time or a dead-letter copy can be the next thing due: the loop may be asleep past it; an
    // ordering key let go can make its next message due; a limited queue may have a free slot
    if (retries || dead.length > 0 || throttled.length > 0 || batch.some(c => c.slotted || c.ordered)) {
      this.claimAsked = true
      this.wake()
    } else if (this.producer.limitedWait(this.clock.now()) === 0) this.wake()
  }

  /** A closed circuit's rows still held for its probe: due now, and this loop claims them. */
  private unhold (queueId: number): void {
    if (this.stopping || !this.active) return
    this.o.claims.unhold(queueId).then((n) => {
      this.emit('unheld', { queueId, count: n })
      if (n > 0) {
        this.claimAsked = true
        this.wake()
      }
    }, (err: Error) => {
      // the poll or the next NOTIFY finds them once their hold ends; nothing is lost
      this.log.warn({ err, queueId }, 'making a closed circuit\'s held messages due failed')
    })
  }

  /** Too many outcomes wait to be written: no claim until a written batch brings them down. */
  private behind (): boolean {
    if (this.completer.waiting < this.unrecordedMax) return false
    this.recordingBehind = true
    return true
  }

  private logOutcome (row: ClaimedRow, attempt: number, result: Result, retryAt: Date | null): void {
    const log = this.log
    if (result.ok) {
      if (log.isLevelEnabled('debug')) {
        const { status, durationMs } = result
        log.debug({ messageId: row.id, queueId: row.queueId, attempt, status, durationMs }, 'delivered')
      }
      return
    }
    log.info({
      messageId: row.id,
      queueId: row.queueId,
      attempt,
      status: result.status,
      durationMs: result.durationMs,
      errorKind: result.errorKind,
      error: result.error,
      retryAt
    }, retryAt !== null
      ? 'delivery failed; will retry'
      : result.status === GONE ? 'delivery failed with 410 Gone; message parked' : 'delivery failed; retries exhausted')
  }

  private release (rows: ClaimedRow[], attempt = 0): void {
    if (rows.length === 0) return
    const p = this.o.claims.release(rows).then(
      () => { this.emit('released', { count: rows.length }) },
      (err) => {
        const retryInMs = RELEASE_RETRIES_MS[attempt]
        if (retryInMs === undefined || this.stopping) {
          // the lease runs out by itself: nothing is lost
          this.log.warn({ err, count: rows.length }, 'releasing claims failed; they fall due when their lease ends')
          return
        }
        // the same claims, matched by their tokens: a release that did commit changes nothing when repeated
        this.log.warn({ err, count: rows.length, retryInMs }, 'releasing claims failed; trying again')
        this.clock.after(retryInMs, () => this.release(rows, attempt + 1))
      })
    this.releases.add(p)
    // p handles a failed release itself: only a throwing 'released' listener lands in the catch
    p.finally(() => this.releases.delete(p))
      .catch((err: Error) => this.log.error({ err }, "a 'released' listener failed"))
  }

  /** Write the outcomes waiting to be recorded now. */
  async flush (): Promise<void> {
    await this.completer.flush()
  }

  /**
   * This process's worker lock is gone (its LISTEN connection dropped), so its claims are no longer
   * its own for sure: another process's reaper may hand them back once the lock has stayed away for the
   * grace period. Rows waiting here go back now rather than be sent late by two processes; calls in
   * flight go on (the grace covers them), and nothing is claimed until the lock is back (canClaim).
   */
  giveBackWaiting (): void {
    this.release(this.producer.drain())
  }

  /**
   * A queue was paused or disabled, or got a limit: its rows waiting here go back, for the next claim
   * to park them or move them to the limited lane.
   */
  giveBackQueue (queueId: number): void {
    this.release(this.producer.dropQueue(queueId))
  }

  /** Stop claiming at once and give back what was claimed but not started; calls in flight go on. */
  async stopClaiming (): Promise<void> {
    if (!this.active || this.stopping) return
    await this.stopLoop()
    this.release(this.producer.drain())
    await Promise.all(this.releases)
  }

  /**
   * Stop claiming at once and give back what was claimed but not started. Calls in flight get
   * graceMs to finish and be recorded; any still running then are aborted and released.
   */
  override async stop (graceMs = 0): Promise<void> {
    if (!this.active) return
    await this.stopClaiming()
    if (this.executor.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const cancel = this.clock.after(graceMs, done)
        function done (): void { cancel(); resolve() }
        this.idle = done
      })
      this.idle = undefined
      if (this.executor.inFlight > 0) {
        const settled = new Promise<void>((resolve) => { this.idle = resolve })
        this.executor.cutAll(new Error('shutting down'))
        // aborted calls settle promptly, each giving its message back
        await settled
        this.idle = undefined
      }
    }
    this.executor.stop()
    await Promise.all(this.releases)
    await this.completer.stop()
    for (const cancel of this.unholds) cancel()
    this.unholds.clear()
    this.markStopped()
  }
}
