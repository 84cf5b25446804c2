// Crons: schedules that create a message on a queue at every tick.
import type { Pool } from 'pg'
import { CHANNELS, notify } from '../db/channels.js'
import type { Queryable } from '../db/pool.js'
import { read, write } from '../db/query.js'
import { fromStored, toStored } from '../domain/body.js'
import { errors } from '../errors.js'
import { checkHeaders } from '../domain/headers.js'
import { nextTick, ScheduleError, validateSchedule } from '../domain/schedule.js'
import { countStatement, listStatement, pagesOfParents, type Entity, type Filter, type ListQuery } from './list.js'

export interface Cron {
  id: number
  queueId: number
  schedule: string
  timezone: string
  body: unknown
  headers: Record<string, string>
  paused: boolean
  missedTicks: 'once' | 'skip'
  nextTickAt: Date | null
  lastTickAt: Date | null
  createdAt: Date
  updatedAt: Date
}

export interface CronInput {
  queueId?: number
  schedule?: string
  timezone?: string
  body?: unknown
  headers?: Record<string, string>
  paused?: boolean
  missedTicks?: 'once' | 'skip'
}

export const cronEntity: Entity = {
  name: 'cron',
  table: 'hookpost.crons',
  select: `id, queue_id AS "queueId", schedule, timezone, body, body_json AS "bodyJson", headers, paused,
    missed_ticks AS "missedTicks", next_tick_at AS "nextTickAt", last_tick_at AS "lastTickAt",
    created_at AS "createdAt", updated_at AS "updatedAt"`,
  fields: {
    id: { column: 'id', type: 'integer', filter: true, sort: true },
    queueId: { column: 'queue_id', type: 'integer', filter: true, sort: true },
    schedule: { column: 'schedule', type: 'string', filter: true, sort: true },
    timezone: { column: 'timezone', type: 'string', filter: true, sort: true },
    paused: { column: 'paused', type: 'boolean', filter: true, sort: true },
    nextTickAt: { column: 'next_tick_at', type: 'date-time', filter: true, sort: true },
    createdAt: { column: 'created_at', type: 'date-time', filter: true, sort: true },
    updatedAt: { column: 'updated_at', type: 'date-time', filter: true, sort: true }
  }
}

type Row = Omit<Cron, 'body'> & { body: string | null, bodyJson: boolean }

function toCron (row: Row): Cron {
  const { bodyJson, ...rest } = row
  return { ...rest, body: fromStored(row.body, bodyJson) }
}

function checkSchedule (schedule: string, timezone: string): void {
  try {
    validateSchedule(schedule, timezone)
  } catch (err) {
    if (err instanceof ScheduleError) throw new errors.HOOKPOST_ERR_INVALID_CRON(err.field, err.message)
    throw err
  }
}

// Tell the leader to look at the crons again; it sleeps until the next tick otherwise
const NOTIFY = notify(CHANNELS.crons)

/** A page of crons of each queue, in one query (GraphQL's Queue.crons). */
export async function cronsOfQueues (pool: Queryable, queueIds: readonly number[], q: ListQuery):
Promise<Array<Cron & { parentId: number }>> {
  const { rows } = await read<Row & { parentId: number }>(pool, pagesOfParents(cronEntity, 'queue_id', queueIds, q))
  return rows.map(r => ({ ...toCron(r), parentId: r.parentId }))
}

export async function getCronsByIds (pool: Pool, ids: readonly number[]): Promise<Cron[]> {
  const { rows } = await read<Row>(pool,
    `SELECT ${cronEntity.select} FROM hookpost.crons WHERE id = ANY($1::bigint[])`, [ids])
  return rows.map(toCron)
}

export async function listCrons (pool: Pool, q: ListQuery): Promise<Cron[]> {
  return (await read<Row>(pool, listStatement(cronEntity, q))).rows.map(toCron)
}

export async function countCrons (pool: Pool, where: Filter[]): Promise<number> {
  return (await read(pool, countStatement(cronEntity, where))).rows[0].n
}

export async function getCron (pool: Queryable, id: number): Promise<Cron> {
  const { rows } = await read<Row>(pool, `SELECT ${cronEntity.select} FROM hookpost.crons WHERE id = $1`, [id])
  if (rows[0] === undefined) throw new errors.HOOKPOST_ERR_NOT_FOUND('cron', id)
  return toCron(rows[0])
}

export async function createCron (pool: Queryable, input: CronInput): Promise<Cron> {
  checkHeaders(input.headers)
  const timezone = input.timezone ?? 'UTC'
  if (input.schedule === undefined) throw new errors.HOOKPOST_ERR_INVALID_FIELD('schedule', 'is required')
  checkSchedule(input.schedule, timezone)
  const { body, bodyJson } = toStored(input.body)
  const { rows } = await write<Row>(pool,
    `INSERT INTO hookpost.crons
       (queue_id, schedule, timezone, body, body_json, headers, paused, missed_ticks, next_tick_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ${cronEntity.select}`,
    [input.queueId, input.schedule, timezone, body, bodyJson, JSON.stringify(input.headers ?? {}),
      input.paused ?? false, input.missedTicks ?? 'once', nextTick(input.schedule, timezone, new Date())])
  await write(pool, NOTIFY)
  return toCron(rows[0]!)
}

/**
 * A new schedule, time zone or a resume replaces the future ticks: next_tick_at is computed from now,
 * so no second chain can start and no tick of the old schedule fires.
 */
export async function updateCron (pool: Queryable, id: number, input: CronInput): Promise<Cron> {
  checkHeaders(input.headers)
  const current = await getCron(pool, id)
  const schedule = input.schedule ?? current.schedule
  const timezone = input.timezone ?? current.timezone
  if (input.schedule !== undefined || input.timezone !== undefined) checkSchedule(schedule, timezone)
  const reschedule = input.schedule !== undefined || input.timezone !== undefined ||
    (input.paused === false && current.paused)
  const s = input.body !== undefined ? toStored(input.body) : undefined
  const { rows } = await write<Row>(pool,
    `UPDATE hookpost.crons SET
       queue_id = COALESCE($2, queue_id), schedule = $3, timezone = $4,
       body = CASE WHEN $5 THEN $6 ELSE body END, body_json = CASE WHEN $5 THEN $7 ELSE body_json END,
       headers = COALESCE($8::jsonb, headers), paused = COALESCE($9, paused),
       missed_ticks = COALESCE($10, missed_ticks),
       next_tick_at = CASE WHEN $11 THEN $12 ELSE next_tick_at END, updated_at = now()
     WHERE id = $1 RETURNING ${cronEntity.select}`,
    [id, input.queueId ?? null, schedule, timezone, s !== undefined, s?.body ?? null, s?.bodyJson ?? false,
      input.headers !== undefined ? JSON.stringify(input.headers) : null, input.paused ?? null,
      input.missedTicks ?? null, reschedule, nextTick(schedule, timezone, new Date())])
  if (rows[0] === undefined) throw new errors.HOOKPOST_ERR_NOT_FOUND('cron', id)
  await write(pool, NOTIFY)
  return toCron(rows[0])
}

/** Deleting a cron stops it; its past messages stay, with cronId cleared (ON DELETE SET NULL). */
export async function deleteCron (pool: Pool, id: number): Promise<Cron> {
  const { rows } = await write<Row>(pool,
    `DELETE FROM hookpost.crons WHERE id = $1 RETURNING ${cronEntity.select}`, [id])
  if (rows[0] === undefined) throw new errors.HOOKPOST_ERR_NOT_FOUND('cron', id)
  return toCron(rows[0])
}
