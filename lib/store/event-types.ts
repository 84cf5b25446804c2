// The event type catalogue: names, descriptions, payload schemas, deprecation. Domain functions shared
// by REST and GraphQL; the API checks a schema compiles before it is stored (lib/api/events.ts).
import type { Pool } from 'pg'
import type { Queryable } from '../db/pool.js'
import { read, write } from '../db/query.js'
import { errors } from '../errors.js'
import { countStatement, listStatement, type Entity, type Filter, type ListQuery } from './list.js'
import { insertRow, updateRow, type Writable } from './rows.js'

export interface EventType {
  id: number
  name: string
  description: string | null
  schema: unknown
  deprecated: boolean
  createdAt: Date
  updatedAt: Date
}

export type EventTypeInput = Partial<Pick<EventType, 'name' | 'description' | 'schema' | 'deprecated'>>

export const eventTypeEntity: Entity = {
  name: 'eventType',
  table: 'hookpost.event_types',
  select: 'id, name, description, schema, deprecated, created_at AS "createdAt", updated_at AS "updatedAt"',
  fields: {
    id: { column: 'id', type: 'integer', filter: true, sort: true },
    name: { column: 'name', type: 'string', filter: true, sort: true },
    deprecated: { column: 'deprecated', type: 'boolean', filter: true, sort: true },
    createdAt: { column: 'created_at', type: 'date-time', filter: true, sort: true },
    updatedAt: { column: 'updated_at', type: 'date-time', filter: true, sort: true }
  }
}

const WRITABLE: Writable = {
  columns: {
    name: 'name', description: 'description', schema: 'schema', deprecated: 'deprecated'
  } satisfies Record<keyof EventTypeInput, string>,
  json: new Set(['schema'])
}

export async function listEventTypes (pool: Pool, q: ListQuery): Promise<EventType[]> {
  return (await read<EventType>(pool, listStatement(eventTypeEntity, q))).rows
}

export async function countEventTypes (pool: Pool, where: Filter[]): Promise<number> {
  return (await read(pool, countStatement(eventTypeEntity, where))).rows[0].n
}

export async function getEventType (pool: Queryable, id: number): Promise<EventType> {
  const { rows } = await read<EventType>(pool,
    `SELECT ${eventTypeEntity.select} FROM hookpost.event_types WHERE id = $1`, [id])
  if (rows[0] === undefined) throw new errors.HOOKPOST_ERR_NOT_FOUND('eventType', id)
  return rows[0]
}

/** The catalogue entry of a type name, or undefined: what a publish checks. */
export async function findEventType (pool: Queryable, name: string): Promise<EventType | undefined> {
  const { rows } = await read<EventType>(pool, {
    name: 'hookpost_find_event_type',
    text: `SELECT ${eventTypeEntity.select} FROM hookpost.event_types WHERE name = $1`,
    values: [name]
  })
  return rows[0]
}

export async function allEventTypes (pool: Queryable, limit: number): Promise<EventType[]> {
  return (await read<EventType>(pool,
    `SELECT ${eventTypeEntity.select} FROM hookpost.event_types ORDER BY name LIMIT $1`, [limit])).rows
}

export async function createEventType (pool: Queryable, input: EventTypeInput): Promise<EventType> {
  return await insertRow<EventType>(pool, eventTypeEntity, WRITABLE, input)
}

export async function updateEventType (pool: Queryable, id: number, input: EventTypeInput): Promise<EventType> {
  const row = await updateRow<EventType>(pool, eventTypeEntity, WRITABLE, id, input)
  if (row === undefined) throw new errors.HOOKPOST_ERR_NOT_FOUND('eventType', id)
  return row
}

/** Events already published keep their type: the catalogue only describes and checks what comes next. */
export async function deleteEventType (pool: Pool, id: number): Promise<EventType> {
  const { rows } = await write<EventType>(pool,
    `DELETE FROM hookpost.event_types WHERE id = $1 RETURNING ${eventTypeEntity.select}`, [id])
  if (rows[0] === undefined) throw new errors.HOOKPOST_ERR_NOT_FOUND('eventType', id)
  return rows[0]
}
