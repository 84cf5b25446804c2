// Group commit for the enqueue path. Every POST /messages is one durable commit, and a commit costs an
// fsync (~2,000 a second on this class of disk), so under concurrency the single-row INSERTs queue up
// behind the disk. Requests that arrive while an INSERT is in flight are coalesced into the next one:
// one commit covers all of them, and each caller still gets its reply only after that commit, so an
// accepted message is exactly as durable as before. A lone request goes at once: no timer, no delay.
import type { Pool } from 'pg'
import { errors } from '../errors.js'
import { createMessage, insertMessagesEach, type Enqueued, type MessageInput, type OnEnqueued } from './messages.js'

// one statement's worth: beyond this the INSERT itself gets slower than the fsync it saves
const MAX_BATCH = 500

interface Waiting { input: MessageInput, resolve: (e: Enqueued) => void, reject: (err: unknown) => void }

/**
 * A 4xx is about the input: our own validation before any statement, or PostgreSQL refusing the
 * statement for what a row holds (SQLSTATE classes 22 and 23, translated by the store). Either way
 * nothing of the statement was written, so its inputs may be tried again one by one. Any other error
 * (a timeout, a lost connection) may have left the statement committing: retrying would write twice.
 */
function isInputError (err: unknown): boolean {
  const status = (err as { statusCode?: unknown } | null)?.statusCode
  return typeof status === 'number' && status >= 400 && status < 500
}

function notAttempted (): Error {
  return new errors.HOOKPOST_ERR_DATABASE_UNAVAILABLE('not attempted after the database failed on an earlier message')
}

export class EnqueueBatcher {
  private waiting: Waiting[] = []
  private running = false

  constructor (private readonly pool: Pool, private readonly onEnqueued?: OnEnqueued) {}

  async enqueue (input: MessageInput): Promise<Enqueued> {
    return await new Promise<Enqueued>((resolve, reject) => {
      this.waiting.push({ input, resolve, reject })
      // drain() settles every caller itself and catches what fails: only a bug could reject it. Thrown again
      // outside the promise, such a bug stays as loud as the unhandled rejection it used to be
      if (!this.running) this.drain().catch((err: unknown) => queueMicrotask(() => { throw err }))
    })
  }

  private async drain (): Promise<void> {
    this.running = true
    while (this.waiting.length > 0) {
      const batch = this.waiting.splice(0, MAX_BATCH)
      if (batch.length > 1) {
        try {
          const out = await insertMessagesEach(this.pool, batch.map(w => w.input), this.onEnqueued)
          out.forEach((o, i) => o.ok ? batch[i]!.resolve(o.value) : batch[i]!.reject(o.error))
          continue
        } catch (err) {
          if (!isInputError(err)) {
            for (const w of batch) w.reject(err)
            this.refuseWaiting()
            continue
          }
          // one bad message (an unknown queue, say) fails the whole statement: retry one by one so
          // that only it gets the error
        }
      }
      await this.oneByOne(batch)
    }
    this.running = false
  }

  /**
   * After the database failed a statement (its timeout, a lost connection), the requests that queued
   * meanwhile are refused, not sent: each batch behind would wait out its own timeout, and a request
   * would wait several timeouts for its 503 (attack finding: 4 x the timeout under a held lock).
   * Nothing of theirs was written; a request arriving after this starts a new batch.
   */
  private refuseWaiting (): void {
    for (const w of this.waiting.splice(0)) w.reject(notAttempted())
  }

  private async oneByOne (batch: Waiting[]): Promise<void> {
    for (let i = 0; i < batch.length; i++) {
      const w = batch[i]!
      try {
        w.resolve(await createMessage(this.pool, w.input, this.onEnqueued))
      } catch (err) {
        w.reject(err)
        if (isInputError(err)) continue
        // the database itself failed: the rest would each wait out the same timeout, one after
        // another, while every other enqueue waits behind them. They were not sent: nothing written.
        for (const rest of batch.slice(i + 1)) rest.reject(notAttempted())
        this.refuseWaiting()
        return
      }
    }
  }
}
