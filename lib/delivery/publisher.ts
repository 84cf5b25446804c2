// Recorded outcomes, announced to every process (GraphQL subscriptions) over NOTIFY, but only while
// some process has subscribers: a NOTIFY per flush costs when nobody listens.
import type { Pool } from 'pg'
import type { Logger } from 'pino'
import { CHANNELS } from '../db/channels.js'
import { encodeOutcomes, outcomeOf } from './events.js'
import type { Completion } from './sql.js'

export function outcomePublisher (pool: Pool, wanted: () => boolean, log: Logger): (batch: Completion[]) => void {
  return (batch) => {
    if (!wanted()) return
    for (const payload of encodeOutcomes(batch.map(outcomeOf))) {
      pool.query('SELECT pg_notify($1, $2)', [CHANNELS.events, payload])
        .catch((err) => log.warn({ err }, 'publishing delivery events failed'))
    }
  }
}
