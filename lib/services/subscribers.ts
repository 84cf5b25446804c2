// Whether any process has GraphQL subscribers (it holds the shared SUBSCRIBERS_LOCK), checked once a
// second: delivery outcomes are published only then, since a NOTIFY per flush costs when nobody listens.
// It runs for the life of the process, not of a leadership: whoever delivers needs it.
import type { Pool } from 'pg'
import type { Logger } from 'pino'
import { Loop } from '../delivery/loop.js'
import { subscribersExist } from '../delivery/sql.js'

const SUBSCRIBERS_CHECK_MS = 1000

export class SubscriberCheck extends Loop {
  private found = false

  constructor (private readonly pool: Pool, log: Logger) {
    super(log, 'checking for subscribers')
  }

  /** as of the last check (within SUBSCRIBERS_CHECK_MS) */
  get seen (): boolean { return this.found }

  protected async pass (): Promise<number> {
    try {
      const { rows } = await this.pool.query<{ yes: boolean }>(subscribersExist())
      this.found = rows[0]?.yes === true
    } catch {
      // keep the last answer: the next check comes within a second
    }
    return SUBSCRIBERS_CHECK_MS
  }
}
