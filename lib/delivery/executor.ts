// The executor: runs the calls, at most `concurrency` at once, each cut short at its queue's deadline.
// One sweep per executor enforces the deadlines, not a timer per call: a timer per call costs more
// than the call (sender.ts).
import type { Clock } from './clock.js'
import type { Dispatcher } from 'undici'
import { cutShort, send, type Cut, type Result } from './sender.js'
import type { ClaimedRow } from './sql.js'

/** One attempt of one claimed row; `cut` is how the executor aborts it. */
export type Send = (row: ClaimedRow, attempt: number, cut: Cut) => Promise<Result>

/** The real Send: a claimed row, and its queue's target, as one call through the dispatcher. */
export function sendClaimed (dispatcher: Dispatcher): Send {
  return async (row, attempt, cut) => await send(dispatcher, {
    messageId: row.id,
    queueId: row.queueId,
    attempt,
    url: row.queue.callbackUrl,
    method: row.queue.method,
    queueHeaders: row.queue.headers,
    headers: row.headers,
    body: row.body,
    timeoutMs: row.queue.timeoutMs,
    idempotencyKey: row.idempotencyKey,
    eventId: row.eventId,
    eventType: row.eventType,
    signingSecrets: row.queue.signingSecrets
  }, cut)
}

// how often the deadlines are checked: a call overruns its queue's timeout by at most this
const DEADLINE_SWEEP_MS = 100

const TIMED_OUT = 'the queue timeout ran out before the response was complete'

interface Call extends Cut { deadline: number }

export class Executor {
  private readonly calls = new Set<Call>()
  private stopSweep: (() => void) | undefined

  constructor (private readonly o: {
    concurrency: number
    send: Send
    clock: Clock
    /** a call ended; `cut` says whether it was cut short, and why */
    onDone: (row: ClaimedRow, attempt: number, result: Result, cut: Cut) => void
  }) {}

  get inFlight (): number { return this.calls.size }
  get full (): boolean { return this.calls.size >= this.o.concurrency }

  start (): void {
    this.stopSweep ??= this.o.clock.every(DEADLINE_SWEEP_MS, () => this.sweep())
  }

  stop (): void {
    this.stopSweep?.()
    this.stopSweep = undefined
  }

  run (row: ClaimedRow): void {
    const startedMs = this.o.clock.now()
    const call: Call = { deadline: startedMs + row.queue.timeoutMs, reason: undefined, abort: undefined }
    this.calls.add(call)
    const attempt = row.attempts + 1
    // send() resolves with a failed Result rather than throwing; a throw is recorded as one all the same.
    // One then() with both callbacks: a chain of catch().then() costs a promise and a closure per link
    this.o.send(row, attempt, call).then(
      (result) => this.done(row, attempt, result, call),
      (err: Error) => this.done(row, attempt, {
        ok: false,
        status: null,
        errorKind: 'network',
        error: String(err?.message ?? err),
        responseBody: null,
        retryAfter: undefined,
        startedAt: new Date(startedMs),
        durationMs: this.o.clock.now() - startedMs
      }, call))
  }

  private done (row: ClaimedRow, attempt: number, result: Result, call: Call): void {
    this.calls.delete(call)
    try {
      this.o.onDone(row, attempt, result, call)
    } catch (err) {
      // only a bug lands here: thrown again outside the promise, it stays as loud as the unhandled
      // rejection it used to be
      queueMicrotask(() => { throw err })
    }
  }

  /** Cut short every call past its deadline, with the TimeoutError the attempt log records. */
  sweep (): void {
    const now = this.o.clock.now()
    for (const c of this.calls) {
      if (now >= c.deadline) {
        cutShort(c, Object.assign(new Error(TIMED_OUT), { name: 'TimeoutError' }))
      }
    }
  }

  /** Abort every call in flight (shutdown past its grace). */
  cutAll (reason: Error): void {
    for (const c of this.calls) cutShort(c, reason)
  }
}
