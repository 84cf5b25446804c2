// hookpost's own events, published through the fan-out like any application's (lib/store/events.ts):
// an operator subscribes a queue (a Slack or PagerDuty webhook) to `hookpost.*` and hears of a queue
// disabled, a circuit opened or closed, or a message dead-lettered. Counted in /metrics. Published by
// the process that saw it happen, each once (an idempotency key per occurrence, in the hookpost.*
// namespace only hookpost may use); at most once: a publish that fails is logged, not retried.
import type { Pool } from 'pg'
import type { Logger } from 'pino'
import type { CircuitTurn, DeadLetter, DisabledQueue } from '../delivery/completer.js'
import type { Reaper } from './reaper.js'
import type { Worker } from '../delivery/worker.js'

export const OPERATIONAL_EVENTS = {
  queueDisabled: 'hookpost.queue.disabled',
  circuitOpened: 'hookpost.queue.circuit_opened',
  circuitClosed: 'hookpost.queue.circuit_closed',
  messageDeadLettered: 'hookpost.message.dead_lettered'
} as const
export type OperationalEvent = typeof OPERATIONAL_EVENTS[keyof typeof OPERATIONAL_EVENTS]

/**
 * One event per dead message of a flushed batch, in one statement. A message that was itself one of
 * hookpost's events gets none, nor does the dead-letter copy of one (attack round: an alert queue and
 * its dead-letter queue, both failing, fed each other without end). Through publish_event, which takes
 * the reserved hookpost.* types and keys that hookpost.publish and the API refuse (lib/api/events.ts).
 */
const DEAD_LETTERED_SQL = `SELECT count(*) FILTER (WHERE p.created)::integer AS n
  FROM unnest($1::bigint[], $2::bigint[]) AS d(id, dlq)
    JOIN hookpost.messages m ON m.id = d.id
    LEFT JOIN hookpost.messages o ON o.id = m.dead_letter_of
    CROSS JOIN LATERAL hookpost.publish_event($3, json_build_object(
      'messageId', m.id, 'queueId', m.queue_id, 'attempts', m.attempts, 'lastStatus', m.last_status,
      'lastError', m.last_error, 'deadLetterQueueMessageId', d.dlq, 'eventId', m.event_id, 'eventType', m.event_type),
      '{}', now(), $3 || ':' || m.id || ':' || m.attempts) AS p
  WHERE coalesce(m.event_type, o.event_type, '') NOT LIKE 'hookpost.%'`

const PUBLISH_SQL = 'SELECT created FROM hookpost.publish_event($1, $2::json, \'{}\', now(), $3)'

/** Publish the operational events of the worker and the leader's reaper on pool; onPublished counts them (metrics). */
export function publishOperationalEvents (worker: Worker, reaper: Reaper, pool: Pool, log: Logger,
  onPublished: (type: OperationalEvent, n: number) => void): void {
  let dead: DeadLetter[] = []
  const failed = (type: OperationalEvent) => (err: Error) =>
    log.error({ err, type }, 'publishing an operational event failed')
  worker.on('dead', (d) => { dead.push(d) })
  // a batch's dead letters are told before its 'flushed': one statement for them all
  worker.on('flushed', () => {
    if (dead.length === 0) return
    const batch = dead
    dead = []
    const type = OPERATIONAL_EVENTS.messageDeadLettered
    pool.query<{ n: number }>(DEAD_LETTERED_SQL, [batch.map(d => d.messageId), batch.map(d => d.dlqMessageId), type])
      .then(({ rows }) => onPublished(type, rows[0]?.n ?? 0), failed(type))
  })
  const publish = (type: OperationalEvent, payload: object, key: string): void => {
    pool.query<{ created: boolean }>(PUBLISH_SQL, [type, JSON.stringify(payload), `${type}:${key}`])
      .then(({ rows }) => onPublished(type, rows[0]?.created === true ? 1 : 0), failed(type))
  }
  const disabled = (q: DisabledQueue): void => {
    const payload = { queueId: q.id, name: q.name, reason: q.reason, disabledAt: q.disabledAt }
    publish(OPERATIONAL_EVENTS.queueDisabled, payload, `${q.id}:${q.disabledAt.getTime()}`)
  }
  worker.on('disabled', disabled)
  reaper.on('disabled', disabled)
  worker.on('circuit', (c: CircuitTurn) => {
    const type = c.state === 'open' ? OPERATIONAL_EVENTS.circuitOpened : OPERATIONAL_EVENTS.circuitClosed
    publish(type, { queueId: c.id, name: c.name, consecutiveFailures: c.consecutiveFailures }, `${c.id}:${Date.now()}`)
  })
}
