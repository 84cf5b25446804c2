// Events: published once, fanned out to every subscribed queue by hookpost.publish_event
// (migrations/010.do.sql), one statement for the event and its messages. Domain functions shared by
// REST and GraphQL.
import type { Pool } from 'pg'
import type { Queryable } from '../db/pool.js'
import { read, write } from '../db/query.js'
import { errors } from '../errors.js'
import { checkHeaders } from '../domain/headers.js'
import { countStatement, listStatement, type Entity, type Filter, type ListQuery } from './list.js'

export interface Event {
  id: number
  type: string
  payload: unknown
  headers: Record<string, string>
  when: Date
  idempotencyKey: string | null
  /** how many queues it went to when it was published */
  endpoints: number
  createdAt: Date
}

export interface EventInput {
  type: string
  payload: unknown
  headers?: Record<string, string>
  when?: string | Date
  idempotencyKey?: string
}

/** Where one of an event's messages stands */
export interface Delivery {
  messageId: number
  queueId: number
  state: 'pending' | 'sent' | 'failed'
  attempts: number
  lastStatus: number | null
  lastError: string | null
  sentAt: Date | null
  /** made by a replay, not by the publish */
  replay: boolean
}

export const eventEntity: Entity = {
  name: 'event',
  table: 'hookpost.events',
  select: `id, type, payload, headers, "when", idempotency_key AS "idempotencyKey", endpoints,
    created_at AS "createdAt"`,
  fields: {
    id: { column: 'id', type: 'integer', filter: true, sort: true },
    type: { column: 'type', type: 'string', filter: true, sort: true },
    when: { column: '"when"', type: 'date-time', filter: true, sort: true },
    idempotencyKey: { column: 'idempotency_key', type: 'string', filter: true },
    endpoints: { column: 'endpoints', type: 'integer', filter: true, sort: true },
    createdAt: { column: 'created_at', type: 'date-time', filter: true, sort: true }
  }
}

// the API field each parameter of hookpost.publish_event carries, for a 400 that names it
const PUBLISH_PARAMS = ['type', 'payload', 'headers', 'when', 'idempotencyKey'] as const

/**
 * Publish: the event and one message per subscribed queue, in one statement and one commit. A repeat of
 * an idempotency key returns the first event with created=false and writes nothing.
 */
export async function publishEvent (pool: Queryable, input: EventInput):
Promise<{ event: Event, created: boolean }> {
  checkHeaders(input.headers)
  const { rows } = await write<{ eventId: number, endpoints: number, created: boolean, createdAt: Date, when: Date }>(
    pool, {
      name: 'hookpost_publish',
      params: PUBLISH_PARAMS,
      text: `SELECT event_id AS "eventId", endpoints, created, created_at AS "createdAt", event_when AS "when"
        FROM hookpost.publish_event($1, $2::json, $3::jsonb, $4::timestamptz, $5)`,
      values: [input.type, JSON.stringify(input.payload), JSON.stringify(input.headers ?? {}),
        input.when ?? null, input.idempotencyKey ?? null]
    })
  const r = rows[0]!
  if (!r.created) return { event: await getEvent(pool, r.eventId), created: false }
  return {
    event: {
      id: r.eventId,
      type: input.type,
      payload: input.payload,
      headers: input.headers ?? {},
      when: r.when,
      idempotencyKey: input.idempotencyKey ?? null,
      endpoints: r.endpoints,
      createdAt: r.createdAt
    },
    created: true
  }
}

export async function listEvents (pool: Pool, q: ListQuery): Promise<Event[]> {
  return (await read<Event>(pool, listStatement(eventEntity, q))).rows
}

export async function countEvents (pool: Pool, where: Filter[]): Promise<number> {
  return (await read(pool, countStatement(eventEntity, where))).rows[0].n
}

export async function getEvent (pool: Queryable, id: number): Promise<Event> {
  const { rows } = await read<Event>(pool, `SELECT ${eventEntity.select} FROM hookpost.events WHERE id = $1`, [id])
  if (rows[0] === undefined) throw new errors.HOOKPOST_ERR_NOT_FOUND('event', id)
  return rows[0]
}

export async function getEventsByIds (pool: Queryable, ids: readonly number[]): Promise<Event[]> {
  const { rows } = await read<Event>(pool,
    `SELECT ${eventEntity.select} FROM hookpost.events WHERE id = ANY($1::bigint[])`, [[...new Set(ids)]])
  return rows
}

/** The most deliveries GET /events/{id} lists; the rest are paged through GET /events/{id}/messages */
export const MAX_DELIVERIES_LISTED = 100

/** An event's messages, one per queue it went to (and per replay), first made first. */
export async function deliveriesOf (pool: Queryable, eventId: number): Promise<Delivery[]> {
  const { rows } = await read<Delivery>(pool,
    `SELECT id AS "messageId", queue_id AS "queueId",
       CASE WHEN sent_at IS NOT NULL THEN 'sent' WHEN failed THEN 'failed' ELSE 'pending' END AS state,
       attempts, last_status AS "lastStatus", last_error AS "lastError", sent_at AS "sentAt", replay
     FROM hookpost.messages WHERE event_id = $1 ORDER BY id LIMIT $2`, [eventId, MAX_DELIVERIES_LISTED])
  return rows
}
