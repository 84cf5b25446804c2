// What a resource is to both transports: its schemas and its domain functions. REST's routes
// (lib/http/crud.ts) and GraphQL's resolvers call the same functions with the same inputs.
import type { Pool } from 'pg'
import type { Queryable } from '../db/pool.js'
import { transaction } from '../db/query.js'
import type { TargetPolicy } from '../domain/ssrf.js'
import { errors } from '../errors.js'
import { MAX_BULK_INPUTS, matchingIds, type Entity, type Filter, type ListQuery } from '../store/list.js'
import type { Enqueued, MessageInput, OnEnqueued } from '../store/messages.js'

/**
 * A row the API saved (created or updated) or deleted: GraphQL's entity subscriptions (queueSaved,
 * messageDeleted, …) publish them, as Platformatic DB does for the writes that go through its API.
 */
export interface EntityChange { entity: string, kind: 'saved' | 'deleted', row: { id: number } }

/** What a write needs from the app besides the pool, the same for REST and GraphQL. */
export interface WriteContext {
  /** told of every row a write saved or deleted, after it is committed */
  changed: (change: EntityChange) => void
  /** the SSRF policy a queue's callbackUrl must pass */
  targets: TargetPolicy
  /** counts the messages a write created (metrics) */
  onEnqueued: OnEnqueued
  /** one message in, coalesced with concurrent ones into one commit */
  enqueue: (input: MessageInput) => Promise<Enqueued>
}

/** The parts of the app a write uses (its decorations: config, metrics, enqueuer, entityChanges). */
export interface WriteDeps {
  entityChanges: { emit: (event: 'change', change: EntityChange) => boolean }
  config: { hooks: TargetPolicy }
  metrics: { enqueuedByApi: OnEnqueued }
  enqueuer: { enqueue: (input: MessageInput) => Promise<Enqueued> }
}

export function writeContext (app: WriteDeps): WriteContext {
  return {
    changed: (change) => { app.entityChanges.emit('change', change) },
    targets: app.config.hooks,
    onEnqueued: app.metrics.enqueuedByApi,
    enqueue: async (input) => await app.enqueuer.enqueue(input)
  }
}

export interface Resource<T> {
  entity: Entity
  tag: string
  item: Record<string, unknown>
  create: Record<string, unknown>
  update: Record<string, unknown>
  list: (pool: Pool, q: ListQuery) => Promise<T[]>
  count: (pool: Pool, where: Filter[]) => Promise<number>
  get: (pool: Pool, id: number) => Promise<T>
  /** created=false: an idempotent repeat (REST says so in the Idempotent-Replayed header) */
  insert: (db: Queryable, input: any, ctx: WriteContext) => Promise<{ item: T, created: boolean }>
  modify: (db: Queryable, id: number, input: any, ctx: WriteContext) => Promise<T>
  remove: (pool: Pool, id: number, query: { force?: boolean }) => Promise<T>
  /** DELETE takes ?force=true (a queue: also drop its undelivered messages) */
  forceDelete?: boolean
}

/** Bulk inputs, capped so that one call stays one bounded statement. */
export function bulk<I> (inputs: I[]): I[] {
  if (inputs.length > MAX_BULK_INPUTS) {
    throw new errors.HOOKPOST_ERR_INVALID_FIELD('inputs', `at most ${MAX_BULK_INPUTS} per call, got ${inputs.length}`)
  }
  return inputs
}

/** The ids a bulk delete names: a filter is required, and it may match at most MAX_BULK_INPUTS rows. */
export async function idsToDelete (pool: Pool, entity: Entity, filters: Filter[]): Promise<number[]> {
  return await idsMatching(pool, entity, filters, 'delete')
}

async function idsMatching (db: Queryable, entity: Entity, filters: Filter[], what: 'delete' | 'update'):
Promise<number[]> {
  if (filters.length === 0) {
    throw new errors.HOOKPOST_ERR_INVALID_FIELD('where', `is required: a bulk ${what} names the rows it changes`)
  }
  // one row past the cap tells "too many" without reading them all
  const ids = await matchingIds(db, entity, filters, MAX_BULK_INPUTS + 1)
  if (ids.length > MAX_BULK_INPUTS) {
    const message = `matches more than ${MAX_BULK_INPUTS} rows; ${what} in smaller steps`
    throw new errors.HOOKPOST_ERR_INVALID_FIELD('where', message)
  }
  return ids
}

/**
 * Platformatic's bulk update (PUT /{entity}?where...): the same change to every row the filters match,
 * at most MAX_BULK_INPUTS, in one transaction: all of them or none.
 */
export async function updateMatching<T> (pool: Pool, r: Resource<T>, filters: Filter[], input: unknown,
  ctx: WriteContext): Promise<T[]> {
  return await transaction(pool, async (c) => {
    const out: T[] = []
    for (const id of await idsMatching(c, r.entity, filters, 'update')) out.push(await r.modify(c, id, input, ctx))
    return out
  }).then(rows => saved(ctx, r, rows))
}

/** Tell ctx.changed of rows saved (after their commit); returns them. */
export function saved<T> (ctx: WriteContext, r: Pick<Resource<T>, 'entity'>, rows: T[]): T[] {
  for (const row of rows) ctx.changed({ entity: r.entity.name, kind: 'saved', row: row as { id: number } })
  return rows
}

/** Tell ctx.changed of rows deleted; returns them. */
export function deleted<T> (ctx: WriteContext, r: Pick<Resource<T>, 'entity'>, rows: T[]): T[] {
  for (const row of rows) ctx.changed({ entity: r.entity.name, kind: 'deleted', row: row as { id: number } })
  return rows
}

/** Insert each input in one transaction: all or nothing, like a multi-row INSERT. */
export async function insertAll<T> (pool: Pool, r: Resource<T>, inputs: unknown[], ctx: WriteContext): Promise<T[]> {
  return await transaction(pool, async (c) => {
    const out: T[] = []
    for (const i of inputs) out.push((await r.insert(c, i, ctx)).item)
    return out
  }).then(rows => saved(ctx, r, rows))
}
