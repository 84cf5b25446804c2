// The completer: outcomes wait here until they are written, many to a statement, and a failure gets
// its retry time here (backoff.ts). Outcomes are written as soon as FLUSH_EAGER are waiting, else
// FLUSH_DELAY_MS after the first: flushes of ~60 rows cost PostgreSQL a third more per message than
// flushes of 200 (bench/probe-sql.ts); recording later costs nothing but a short wait before a
// delivered message shows as sent (a crash meanwhile means a resend, as for any unrecorded call).
import type { Logger } from 'pino'
import { askedDelay, nextRetryDelay } from './backoff.js'
import type { Clock } from './clock.js'
import type { Result } from './sender.js'
import type { ClaimedRow, Completion } from './sql.js'

/** A message whose retries ran out, as the completing statement reports it. */
export interface DeadLetter { messageId: number, queueId: number, dlqMessageId: number | null }

/** A queue a 410 Gone disabled, as the completing statement reports it (and the operational event tells it). */
export interface DisabledQueue { id: number, name: string, disabledAt: Date, reason: string }

/** A queue whose circuit a batch opened (its run of failures reached the threshold) or closed (a probe got through). */
export interface CircuitTurn { id: number, name: string, state: 'open' | 'closed', consecutiveFailures: number }

/**
 * What writing a batch did besides recording it: the messages that died, the queues disabled, the
 * circuits turned, the queues newly throttled (adaptive throttling: claimed as limited from now on).
 */
export interface Recorded {
  dead: DeadLetter[]
  disabled: DisabledQueue[]
  circuits: CircuitTurn[]
  throttled: number[]
}

/** Write a batch of outcomes in one statement. */
export type Complete = (batch: Completion[]) => Promise<Recorded>

/** the answer that disables a queue: Standard Webhooks' "stop sending" */
export const GONE = 410

const FLUSH_EAGER = 200
/**
 * Outcomes waiting to be written beyond which the worker claims no more (backpressure): calls can
 * outrun the statements that record them (a backlog of 1,000,000: 250,000 outcomes waited in memory,
 * each message's lease running). Four full statements: under a second of writing.
 */
export const UNRECORDED_MAX = 2000
// the calls a queue got in its last whole second, kept for this many queues at most (then forgotten)
const RATE_METER_QUEUES = 10_000
const FLUSH_MAX = 500
const FLUSH_DELAY_MS = 50
const FLUSH_BACKOFF_MAX_MS = 5000
// a flush that keeps failing while stopping gives up after this many tries: the leases hand the
// messages out again
const STOPPING_FLUSH_TRIES = 5

export class Completer {
  private pending: Completion[] = []
  private flushing: Promise<void> | null = null
  private cancelTimer: (() => void) | undefined
  private errors = 0
  private stopping = false
  // an outcome that frees a concurrency slot or an ordering key, or holds, disables or probes its queue,
  // waits for no timer: what comes next for its queue or key waits on it being written. Under load,
  // outcomes still share a statement: those that come while one is written go in the next
  private urgent = false
  private readonly meter = new Map<number, { at: number, n: number, prev: number }>()

  constructor (private readonly o: {
    complete: Complete
    clock: Clock
    log: Logger
    /** the backoff's random source; tests pin it */
    random?: () => number
    /** a batch was written, with the messages of it that died */
    onFlushed: (batch: Completion[], recorded: Recorded) => void
  }) {}

  get waiting (): number { return this.pending.length }

  /**
   * Queue one attempt's outcome; a failure gets its retry time, or null when its retries ran out. A 410
   * Gone is neither: the message is parked (Standard Webhooks: 410 means "stop"), its queue disabled.
   */
  record (row: ClaimedRow, attempt: number, result: Result): Completion {
    let retryAt: Date | null = null
    let holdUntil: Date | null = null
    const parked = !result.ok && result.status === GONE
    if (!result.ok && !parked) {
      const now = this.o.clock.now()
      const asked = askedDelay({ status: result.status, retryAfter: result.retryAfter, now }, row.queue)
      holdUntil = asked === null ? null : new Date(now + asked)
      const delay = nextRetryDelay({ retries: row.retries, status: result.status, retryAfter: result.retryAfter, now },
        row.queue, this.o.random)
      retryAt = delay === null ? null : new Date(now + delay)
    }
    const c: Completion = {
      id: row.id,
      claimToken: row.claimToken,
      queueId: row.queueId,
      attempt,
      when: row.when,
      result,
      retryAt,
      parked,
      holdUntil,
      slotted: row.slot !== null,
      ordered: row.ordered,
      observedRate: this.observe(row.queueId)
    }
    this.pending.push(c)
    // waiting on this outcome: the next call of a slot or a key; the queue's other calls, for a hold, a
    // disabled queue or a probe's answer
    if (row.slot !== null || row.ordered || parked || holdUntil !== null || row.queue.probe) this.urgent = true
    this.schedule()
    return c
  }

  /** Count a call to the queue; its calls in the last whole second (this one's, until one has passed). */
  private observe (queueId: number): number {
    const now = this.o.clock.now()
    let m = this.meter.get(queueId)
    if (m === undefined) {
      if (this.meter.size >= RATE_METER_QUEUES) this.meter.clear()
      m = { at: now, n: 0, prev: 0 }
      this.meter.set(queueId, m)
    } else if (now - m.at >= 1000) {
      m.prev = now - m.at < 2000 ? m.n : 0
      m.n = 0
      m.at = now
    }
    m.n++
    return Math.max(m.prev, m.n)
  }

  private schedule (): void {
    if (this.flushing !== null || this.pending.length === 0) return // a running flush looks again when it ends
    if (this.pending.length >= FLUSH_EAGER || this.urgent) {
      this.cancelTimer?.()
      this.cancelTimer = undefined
      // urgent: all that waits, in one statement
      this.flushInBackground(this.urgent)
    } else if (this.cancelTimer === undefined) {
      this.cancelTimer = this.o.clock.after(FLUSH_DELAY_MS, () => {
        this.cancelTimer = undefined
        this.flushInBackground(true)
      })
    }
  }

  /** flush() with nobody waiting on it: a failed write is retried inside, so only a bug lands in the catch */
  private flushInBackground (all: boolean): void {
    this.flush(all).catch((err: Error) => this.o.log.error({ err }, 'flushing delivery outcomes failed'))
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
    this.flushing = this.writeAll(all).finally(() => {
      this.flushing = null
      // what came in meanwhile, or what an eager flush left, waits for the timer; not after giving up
      if (this.errors === 0) this.schedule()
    })
    await this.flushing
  }

  private async writeAll (all: boolean): Promise<void> {
    while (this.pending.length >= (all ? 1 : FLUSH_EAGER)) {
      const batch = this.pending.splice(0, FLUSH_MAX)
      this.urgent = false
      try {
        const recorded = await this.o.complete(batch)
        this.errors = 0
        this.o.onFlushed(batch, recorded)
      } catch (err) {
        this.pending.unshift(...batch)
        this.errors++
        const wait = Math.min(FLUSH_BACKOFF_MAX_MS, 50 * 2 ** Math.min(this.errors, 10))
        this.o.log.error({ err, count: batch.length, retryInMs: wait },
          'recording delivery outcomes failed; will retry')
        if (this.stopping && this.errors > STOPPING_FLUSH_TRIES) return
        await new Promise<void>(resolve => this.o.clock.after(wait, resolve))
      }
    }
  }

  /** Write what is left, giving up after a few failures (the leases hand those messages out again). */
  async stop (): Promise<void> {
    this.stopping = true
    this.cancelTimer?.()
    this.cancelTimer = undefined
    await this.flush()
  }

  /** Ready to run again after stop(). */
  restart (): void {
    this.stopping = false
    this.errors = 0
  }
}
