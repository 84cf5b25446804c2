// The attempt log, and giving failed messages another go.
import type { Pool } from 'pg'
import { CHANNELS, notify } from '../db/channels.js'
import { read, transaction, write } from '../db/query.js'
import { errors } from '../errors.js'
import { MAX_BULK_INPUTS } from './list.js'
import { getQueue } from './queues.js'
import { getMessage, messageEntity, toMessage, type Message } from './messages.js'

export interface Attempt {
  id: number
  messageId: number
  attempt: number
  startedAt: Date
  durationMs: number
  statusCode: number | null
  errorKind: string | null
  error: string | null
  responseBody: string | null
}

export async function listAttempts (pool: Pool, messageId: number): Promise<Attempt[]> {
  await getMessage(pool, messageId) // 404 when missing
  return (await attemptsOf(pool, [messageId], MAX_BULK_INPUTS)).get(messageId) ?? []
}

/** The first `limit` attempts of each of many messages in one query (GraphQL batches relation fields through this). */
export async function attemptsOf (
  pool: Pool,
  messageIds: readonly number[],
  limit: number
): Promise<Map<number, Attempt[]>> {
  const { rows } = await read<Attempt>(pool,
    `SELECT id, message_id AS "messageId", attempt, started_at AS "startedAt", duration_ms AS "durationMs",
       status_code AS "statusCode", error_kind AS "errorKind", error, response_body AS "responseBody"
     FROM unnest($1::bigint[]) AS m(mid)
       CROSS JOIN LATERAL (SELECT * FROM hookpost.attempts WHERE message_id = m.mid ORDER BY attempt, id LIMIT $2) AS a
     ORDER BY message_id, attempt, id`, [[...new Set(messageIds)], limit])
  const out = new Map<number, Attempt[]>()
  for (const r of rows) {
    const list = out.get(r.messageId) ?? []
    list.push(r)
    out.set(r.messageId, list)
  }
  return out
}

// A redriven message starts a fresh retry budget; its attempt count and log are kept. One of an
// ordering key whose key has moved on waits for the key's pending messages, the one in flight included
// (attack round: it went out beside it); the outcome that ends them lets it go (sql.complete)
const KEY_BUSY = `order_key IS NOT NULL AND EXISTS (SELECT 1 FROM hookpost.messages p
    WHERE p.queue_id = messages.queue_id AND p.order_key = messages.order_key AND p.id <> messages.id
      AND p.sent_at IS NULL AND NOT p.failed)`
const REQUEUE = `UPDATE hookpost.messages
  SET failed = false, retries = 0, run_at = CASE WHEN ${KEY_BUSY} THEN 'infinity'::timestamptz ELSE now() END,
    key_wait = ${KEY_BUSY}, locked_by = NULL, locked_at = NULL, updated_at = now()
  WHERE %WHERE% AND failed
  RETURNING ${messageEntity.select}`

export async function retryMessage (pool: Pool, id: number): Promise<Message> {
  const row = await transaction(pool, async (c) => {
    const { rows } = await write(c, REQUEUE.replace('%WHERE%', 'id = $1'), [id])
    if (rows[0] === undefined) return undefined
    await write(c,
      'UPDATE hookpost.dead_letters SET redriven_at = now() WHERE message_id = $1 AND redriven_at IS NULL', [id])
    await write(c, notify(CHANNELS.messages))
    return rows[0]
  })
  if (row !== undefined) return toMessage(row)
  await getMessage(pool, id) // 404 when missing
  throw new errors.HOOKPOST_ERR_MESSAGE_NOT_FAILED(id)
}

/** Re-queue every failed message of a queue (its dead letters). */
export async function redriveQueue (pool: Pool, queueId: number): Promise<{ queueId: number, requeued: number }> {
  await getQueue(pool, queueId)
  return await transaction(pool, async (c) => {
    const { rows } = await write(c, REQUEUE.replace('%WHERE%', 'queue_id = $1'), [queueId])
    const ids = rows.map(r => r.id)
    await write(c, `UPDATE hookpost.dead_letters SET redriven_at = now()
      WHERE message_id = ANY($1::bigint[]) AND redriven_at IS NULL`, [ids])
    if (ids.length > 0) await write(c, notify(CHANNELS.messages))
    return { queueId, requeued: ids.length }
  })
}
