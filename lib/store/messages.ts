// Messages: what to send, and where they stand. Domain functions shared by REST and GraphQL.
import type { Pool } from 'pg'
import { CHANNELS, notify } from '../db/channels.js'
import type { Queryable } from '../db/pool.js'
import { read, write } from '../db/query.js'
import { arrayLiteral } from '../db/arrays.js'
import { fromStored, toStored } from '../domain/body.js'
import { errors } from '../errors.js'
import { checkHeaders } from '../domain/headers.js'
import { countStatement, listStatement, pagesOfParents, type Entity, type Filter, type ListQuery } from './list.js'

export interface Message {
  id: number
  queueId: number
  body: unknown
  headers: Record<string, string>
  when: Date
  nextAttemptAt: Date | null
  sentAt: Date | null
  failed: boolean
  retries: number
  attempts: number
  lastStatus: number | null
  lastError: string | null
  cronId: number | null
  deadLetterOf: number | null
  idempotencyKey: string | null
  /** the event this message delivers (a fan-out or a replay), or null */
  eventId: number | null
  eventType: string | null
  /** made by a replay (POST /queues/{id}/replay) */
  replay: boolean
  /** its queue is paused or disabled: not attempted until the queue is resumed or enabled */
  parked: boolean
  /** messages of one queue with the same key are delivered one at a time, in enqueue order */
  orderingKey: string | null
  /** an earlier message of its ordering key is still pending: it goes once that one is sent or dead */
  waitingForKey: boolean
  createdAt: Date
  updatedAt: Date
}

export interface MessageInput {
  queueId?: number
  body?: unknown
  headers?: Record<string, string>
  when?: string | Date
  idempotencyKey?: string
  orderingKey?: string
}

export const messageEntity: Entity = {
  name: 'message',
  table: 'hookpost.messages',
  select: `id, queue_id AS "queueId", body, body_json AS "bodyJson", headers, "when",
    CASE WHEN sent_at IS NULL AND NOT failed AND run_at <> 'infinity' THEN run_at END AS "nextAttemptAt",
    run_at = 'infinity' AND NOT key_wait AND sent_at IS NULL AND NOT failed AS parked,
    ordering_key AS "orderingKey", key_wait AND sent_at IS NULL AND NOT failed AS "waitingForKey",
    sent_at AS "sentAt", failed, retries, attempts, last_status AS "lastStatus", last_error AS "lastError",
    cron_id AS "cronId", dead_letter_of AS "deadLetterOf", idempotency_key AS "idempotencyKey",
    event_id AS "eventId", event_type AS "eventType", replay,
    created_at AS "createdAt", updated_at AS "updatedAt"`,
  fields: {
    id: { column: 'id', type: 'integer', filter: true, sort: true },
    queueId: { column: 'queue_id', type: 'integer', filter: true, sort: true },
    when: { column: '"when"', type: 'date-time', filter: true, sort: true },
    sentAt: { column: 'sent_at', type: 'date-time', filter: true, sort: true },
    failed: { column: 'failed', type: 'boolean', filter: true, sort: true },
    retries: { column: 'retries', type: 'integer', filter: true, sort: true },
    attempts: { column: 'attempts', type: 'integer', filter: true, sort: true },
    cronId: { column: 'cron_id', type: 'integer', filter: true, sort: true },
    deadLetterOf: { column: 'dead_letter_of', type: 'integer', filter: true, sort: true },
    idempotencyKey: { column: 'idempotency_key', type: 'string', filter: true },
    orderingKey: { column: 'ordering_key', type: 'string', filter: true },
    eventId: { column: 'event_id', type: 'integer', filter: true, sort: true },
    eventType: { column: 'event_type', type: 'string', filter: true },
    replay: { column: 'replay', type: 'boolean', filter: true },
    createdAt: { column: 'created_at', type: 'date-time', filter: true, sort: true },
    updatedAt: { column: 'updated_at', type: 'date-time', filter: true, sort: true }
  }
}

type Row = Omit<Message, 'body'> & { body: string | null, bodyJson: boolean }

export function toMessage (row: Row): Message {
  const { bodyJson, ...rest } = row
  return { ...rest, body: fromStored(row.body, bodyJson) }
}

/** A page of messages of each queue, cron or event, in one query (GraphQL's Queue/Cron/Event.messages). */
export async function messagesOfParents (pool: Queryable, parent: 'queue_id' | 'cron_id' | 'event_id',
  ids: readonly number[], q: ListQuery): Promise<Array<Message & { parentId: number }>> {
  const { rows } = await read<Row & { parentId: number }>(pool, pagesOfParents(messageEntity, parent, ids, q))
  return rows.map(r => ({ ...toMessage(r), parentId: r.parentId }))
}

export async function listMessages (pool: Pool, q: ListQuery): Promise<Message[]> {
  return (await read<Row>(pool, listStatement(messageEntity, q))).rows.map(toMessage)
}

export async function countMessages (pool: Pool, where: Filter[]): Promise<number> {
  return (await read(pool, countStatement(messageEntity, where))).rows[0].n
}

export async function getMessage (pool: Queryable, id: number): Promise<Message> {
  const { rows } = await read<Row>(pool, `SELECT ${messageEntity.select} FROM hookpost.messages WHERE id = $1`, [id])
  if (rows[0] === undefined) throw new errors.HOOKPOST_ERR_NOT_FOUND('message', id)
  return toMessage(rows[0])
}

export interface Enqueued { message: Message, created: boolean }

/** Told how many messages an insert created on a queue (repeats are not told): the metrics count enqueues with it. */
export type OnEnqueued = (queueId: number, count: number) => void

// the API field each parameter of a message INSERT carries ($1..$6), for a 400 that names it
const INSERT_PARAMS = ['queueId', 'body', 'body', 'headers', 'when', 'idempotencyKey', 'orderingKey'] as const

/**
 * Insert one message. With an idempotency key already used on the queue, the existing message comes
 * back with created=false; the unique index makes this hold under concurrent duplicates.
 */
export async function createMessage (
  pool: Queryable,
  input: MessageInput,
  onEnqueued?: OnEnqueued,
  retried = false
): Promise<Enqueued> {
  checkHeaders(input.headers)
  const { body, bodyJson } = toStored(input.body)
  const values = [
    input.queueId, body, bodyJson, JSON.stringify(input.headers ?? {}), input.when ?? null,
    input.idempotencyKey ?? null, input.orderingKey ?? null
  ]
  const inserted = (await write<Row>(pool, {
    name: 'hookpost_insert_message',
    params: INSERT_PARAMS,
    text: `INSERT INTO hookpost.messages (queue_id, body, body_json, headers, "when", idempotency_key, ordering_key)
      VALUES ($1, $2, $3, $4, COALESCE($5::timestamptz, now()), $6, $7)
      ON CONFLICT (queue_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
      RETURNING ${messageEntity.select}`,
    values
  })).rows[0]
  if (inserted !== undefined) {
    onEnqueued?.(inserted.queueId, 1)
    return { message: toMessage(inserted), created: true }
  }
  // the insert wrote nothing: this is a read
  const existing = (await read<Row>(pool,
    `SELECT ${messageEntity.select} FROM hookpost.messages WHERE queue_id = $1 AND idempotency_key = $2`,
    [input.queueId, input.idempotencyKey])).rows[0]
  // the original went (deleted, or retention) between the two statements: the key is free again
  if (existing === undefined) {
    if (retried) {
      throw new errors.HOOKPOST_ERR_CONFLICT(
        `idempotencyKey ${input.idempotencyKey ?? ''} is being used concurrently; try again`
      )
    }
    return await createMessage(pool, input, onEnqueued, true)
  }
  return { message: toMessage(existing), created: false }
}

/**
 * Insert many messages in one statement: one commit for the lot. Each keeps its own `when`. A message
 * whose idempotency key is already used on its queue is not inserted: the existing one takes its place
 * in the result, which follows the order of the inputs.
 */
export async function createMessages (
  pool: Queryable,
  inputs: MessageInput[],
  onEnqueued?: OnEnqueued
): Promise<Message[]> {
  return (await insertMessages(pool, inputs, onEnqueued)).map(e => e.message)
}

/**
 * createMessages, telling for each input whether it created its message or found it by its key. Some
 * messages may have been written even when this throws (see insertMessagesEach): then it throws
 * HOOKPOST_ERR_OUTCOME_UNKNOWN, never an error that says nothing was written.
 */
export async function insertMessages (
  pool: Queryable,
  inputs: MessageInput[],
  onEnqueued?: OnEnqueued
): Promise<Enqueued[]> {
  const each = await insertMessagesEach(pool, inputs, onEnqueued)
  const failed = each.find(o => !o.ok)
  if (failed === undefined) return each.map(o => (o as { value: Enqueued }).value)
  if (each.some(o => o.ok && o.value.created)) {
    const written = new errors.HOOKPOST_ERR_OUTCOME_UNKNOWN('some of the messages were written before it failed')
    throw Object.assign(written, { cause: failed.error })
  }
  throw failed.error
}

/** One input's answer from a grouped insert: its message, or the error that is its answer. */
export type Outcome = { ok: true, value: Enqueued } | { ok: false, error: unknown }

/**
 * Insert many messages in one statement and answer each input on its own. When the INSERT fails this
 * throws, and the error says what was written: nothing (a 4xx, HOOKPOST_ERR_DB_TIMEOUT) or maybe all
 * (HOOKPOST_ERR_OUTCOME_UNKNOWN). Once it has committed, the inputs whose key was already used are
 * looked up; if that fails, only they get the error: the others were created, and are told so.
 */
export async function insertMessagesEach (
  pool: Queryable,
  inputs: MessageInput[],
  onEnqueued?: OnEnqueued
): Promise<Outcome[]> {
  if (inputs.length === 0) return []
  for (const i of inputs) checkHeaders(i.headers)
  const stored = inputs.map(i => toStored(i.body))
  const rows = (await write<Row>(pool, {
    params: INSERT_PARAMS,
    text: `INSERT INTO hookpost.messages (queue_id, body, body_json, headers, "when", idempotency_key, ordering_key)
     SELECT q, b, j, h, COALESCE(w, now()), k, o
     FROM unnest($1::bigint[], $2::text[], $3::boolean[], $4::jsonb[], $5::timestamptz[], $6::text[], $7::text[])
       WITH ORDINALITY AS t(q, b, j, h, w, k, o, ord)
     ORDER BY ord
     ON CONFLICT (queue_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
     RETURNING ${messageEntity.select}`,
    values: [arrayLiteral(inputs.map(i => i.queueId)), arrayLiteral(stored.map(s => s.body)),
      arrayLiteral(stored.map(s => s.bodyJson)), arrayLiteral(inputs.map(i => JSON.stringify(i.headers ?? {}))),
      arrayLiteral(inputs.map(i => i.when instanceof Date ? i.when.toISOString() : i.when ?? null)),
      arrayLiteral(inputs.map(i => i.idempotencyKey ?? null)), arrayLiteral(inputs.map(i => i.orderingKey ?? null))]
  })).rows
  // RETURNING gives only the rows inserted: exactly the messages created
  if (onEnqueued !== undefined) countPerQueue(rows, onEnqueued)
  const keyOf = (queueId: unknown, key: unknown): string => `${String(queueId)}\u0000${String(key)}`
  const byKey = new Map(rows.filter(r => r.idempotencyKey !== null).map(r => [keyOf(r.queueId, r.idempotencyKey), r]))
  const keyless = rows.filter(r => r.idempotencyKey === null)
  const missing = inputs.filter(i => i.idempotencyKey != null && !byKey.has(keyOf(i.queueId, i.idempotencyKey)))
  let lookupError: unknown
  if (missing.length > 0) {
    // keys already used: their first messages stand in for the duplicates
    try {
      const existing = await read<Row>(pool,
        `SELECT ${messageEntity.select} FROM hookpost.messages
         WHERE (queue_id, idempotency_key) IN (SELECT * FROM unnest($1::bigint[], $2::text[]))`,
        [missing.map(i => i.queueId), missing.map(i => i.idempotencyKey)])
      for (const r of existing.rows) byKey.set(keyOf(r.queueId, r.idempotencyKey), r)
    } catch (err) {
      // a read (translated as one): the insert has committed, and wrote nothing for these inputs
      lookupError = err
    }
  }
  const created = new Set(rows.map(r => r.id))
  let next = 0
  return inputs.map((i): Outcome => {
    const row = i.idempotencyKey != null ? byKey.get(keyOf(i.queueId, i.idempotencyKey)) : keyless[next++]
    if (row === undefined) {
      // the lookup failed, or the original went (deleted, or retention) between the two statements
      const busy = `idempotencyKey ${i.idempotencyKey ?? ''} is being used concurrently; try again`
      return { ok: false, error: lookupError ?? new errors.HOOKPOST_ERR_CONFLICT(busy) }
    }
    // a key repeated inside the batch: only its first input created the message
    const first = created.delete(row.id)
    return { ok: true, value: { message: toMessage(row), created: first } }
  })
}

/** Tell onEnqueued of inserted rows, once per queue. */
export function countPerQueue (rows: ReadonlyArray<{ queueId: number }>, onEnqueued: OnEnqueued): void {
  const perQueue = new Map<number, number>()
  for (const r of rows) perQueue.set(r.queueId, (perQueue.get(r.queueId) ?? 0) + 1)
  for (const [queueId, n] of perQueue) onEnqueued(queueId, n)
}

/** Change a message that is still waiting. A new `when` reschedules it. */
export async function updateMessage (pool: Queryable, id: number, input: MessageInput): Promise<Message> {
  checkHeaders(input.headers)
  if (input.queueId !== undefined) await assertMayMove(pool, id, input.queueId)
  const sets: string[] = ['updated_at = now()']
  const values: unknown[] = [id]
  const set = (sql: string, v: unknown): void => { values.push(v); sets.push(sql.replace('$$', `$${values.length}`)) }
  if (input.queueId !== undefined) set('queue_id = $$', input.queueId)
  if (input.body !== undefined) {
    const s = toStored(input.body)
    set('body = $$', s.body)
    set('body_json = $$', s.bodyJson)
  }
  if (input.headers !== undefined) set('headers = $$', JSON.stringify(input.headers))
  if (input.when !== undefined) {
    set('"when" = $$', input.when)
    // a new when is the next attempt; the same when sent back (GET-then-PUT) leaves a retry's backoff
    // alone (attack round: it made the next attempt due at once). The right-hand "when" is the old value
    const when = `$${values.length}::timestamptz`
    sets.push(`run_at = CASE WHEN "when" IS DISTINCT FROM ${when} THEN ${when} ELSE run_at END`)
  }
  // a message claimed for delivery (its lease running) is not changed under the call
  const { rows } = await write<Row>(pool,
    `UPDATE hookpost.messages SET ${sets.join(', ')}
     WHERE id = $1 AND sent_at IS NULL AND NOT failed AND (locked_by IS NULL OR run_at <= now())
     RETURNING ${messageEntity.select}`, values)
  if (rows[0] !== undefined) {
    if (input.when !== undefined) await write(pool, notify(CHANNELS.messages))
    return toMessage(rows[0])
  }
  await getMessage(pool, id) // 404 when missing
  throw new errors.HOOKPOST_ERR_CONFLICT(
    `message ${id} is being delivered, was delivered or has failed; it can no longer be changed`
  )
}

/**
 * A message with an ordering key, or of or into a fifo queue, stays on its queue: its place in its key's
 * order is its id, and another queue's key would take it out of turn (attack round: moved into a fifo
 * queue, it went out beside the message in flight)
 */
async function assertMayMove (pool: Queryable, id: number, queueId: number): Promise<void> {
  const { rows: [r] } = await read<{ keyed: boolean }>(pool, `SELECT m.ordering_key IS NOT NULL OR q.fifo
      OR coalesce((SELECT fifo FROM hookpost.queues WHERE id = $2), false) AS keyed
    FROM hookpost.messages m JOIN hookpost.queues q ON q.id = m.queue_id WHERE m.id = $1`, [id, queueId])
  if (r?.keyed === true && (await getMessage(pool, id)).queueId !== queueId) {
    throw new errors.HOOKPOST_ERR_CONFLICT(
      `message ${id} is ordered (an orderingKey, or a fifo queue): it cannot move to another queue`)
  }
}

export async function deleteMessage (pool: Pool, id: number): Promise<Message> {
  // a pending message of an ordering key lets the key's next one go, as its outcome would (sql.complete)
  const { rows } = await write<Row>(pool,
    `WITH gone AS (
      DELETE FROM hookpost.messages WHERE id = $1
        -- one being delivered stays when its ordering key's next message waits for its call, or it holds
        -- its queue's concurrency slot: the slot would be freed as the call goes on (attack rounds)
        AND NOT (locked_by IS NOT NULL AND run_at > now() AND sent_at IS NULL AND NOT failed AND (order_key IS NOT NULL
          OR EXISTS (SELECT 1 FROM hookpost.queue_slots s WHERE s.message_id = $1 AND s.until > now())))
      RETURNING *
    ),
    next AS (
      UPDATE hookpost.messages m
      SET key_wait = false, run_at = CASE WHEN m.key_wait THEN least(m."when", now()) ELSE m.run_at END
      WHERE m.id = (
        SELECT p.id FROM gone g JOIN hookpost.messages p ON p.queue_id = g.queue_id AND p.order_key = g.order_key
        WHERE g.order_key IS NOT NULL AND g.sent_at IS NULL AND NOT g.failed
          AND p.id <> g.id AND p.sent_at IS NULL AND NOT p.failed ORDER BY p.id LIMIT 1
      )
    )
    SELECT ${messageEntity.select} FROM gone`, [id])
  if (rows[0] !== undefined) return toMessage(rows[0])
  await getMessage(pool, id) // 404 when missing
  throw new errors.HOOKPOST_ERR_CONFLICT(
    `message ${id} is being delivered, and its ordering key's next messages or its queue's concurrency limit ` +
    'wait for it; delete it once the call ends'
  )
}
