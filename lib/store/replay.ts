// Replay: a queue receives again, as new messages, the stored events it would have matched in a window.
// For an endpoint back after an outage, a dead endpoint enabled again, a new subscriber that wants history.
import type { Pool } from 'pg'
import { write } from '../db/query.js'
import { errors } from '../errors.js'
import { getQueue } from './queues.js'

export interface ReplayInput {
  since: string | Date
  /** default now */
  until?: string | Date
  /** patterns to replay instead of the queue's own eventTypes */
  eventTypes?: string[]
}

export interface ReplayResult {
  queueId: number
  /** messages created */
  replayed: number
  /** the cap was reached: call again with the same window for the rest */
  more: boolean
}

/** messages one replay call creates at most: one bounded statement */
export const MAX_REPLAY = 10_000

/**
 * One message per event published in [since, until) that matches the patterns (the queue's, or those
 * given) and the queue's filter, due at the event's own `when`, unless the queue already has, for that
 * event, a message delivered or still pending, or a replayed one (in any state): so the endpoint gets
 * what it missed, once, and a second replay of the same window creates nothing. An event's messages
 * stay as long as the event does (retention takes them together), so this holds for as long as there
 * is an event to replay. Oldest event first; at most MAX_REPLAY a call.
 */
export async function replayQueue (pool: Pool, queueId: number, input: ReplayInput): Promise<ReplayResult> {
  const since = new Date(input.since)
  const until = input.until === undefined ? null : new Date(input.until)
  if (until !== null && since.getTime() > until.getTime()) {
    throw new errors.HOOKPOST_ERR_INVALID_FIELD('since', 'must not be after until')
  }
  await getQueue(pool, queueId) // 404 when missing
  // the INSERT wakes the workers itself (messages_notify, a statement trigger)
  const { rowCount } = await write(pool, {
    params: ['id', 'since', 'until', 'eventTypes', 'limit'],
    text: `INSERT INTO hookpost.messages (queue_id, body, body_json, headers, "when", event_id, event_type, replay)
        SELECT q.id, hookpost.event_body(q.payload_format, e.type, e.payload, e.created_at), true, e.headers,
          e."when", e.id, e.type, true
        FROM hookpost.queues q
          JOIN hookpost.events e ON e.created_at >= $2::timestamptz AND e.created_at < coalesce($3::timestamptz, now())
        WHERE q.id = $1
          AND hookpost.event_type_patterns(e.type) && coalesce($4::text[], q.event_types)
          AND (q.filter IS NULL OR e.payload::jsonb @> q.filter)
          AND NOT EXISTS (
            SELECT 1 FROM hookpost.messages m
            WHERE m.event_id = e.id AND m.queue_id = q.id AND (m.replay OR m.sent_at IS NOT NULL OR NOT m.failed)
          )
        ORDER BY e.id
        LIMIT $5
        -- retention passes over events being replayed (lib/services/retention.ts deleteEvents), and a
        -- queue being deleted is waited for: then there is nothing to replay to
        FOR KEY SHARE OF q FOR SHARE OF e
        ON CONFLICT (event_id, queue_id, replay) WHERE event_id IS NOT NULL DO NOTHING`,
    values: [queueId, since.toISOString(), until?.toISOString() ?? null, input.eventTypes ?? null, MAX_REPLAY]
  })
  const replayed = rowCount ?? 0
  return { queueId, replayed, more: replayed === MAX_REPLAY }
}
