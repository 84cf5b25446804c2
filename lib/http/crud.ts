// The REST shape every resource shares: list, get, create, update, delete, each with its schemas.
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { Pool } from 'pg'
import type { Entity, Filter, ListQuery } from '../store/list.js'
import type { TargetPolicy } from '../domain/ssrf.js'
import type { Enqueued, MessageInput, OnEnqueued } from '../store/messages.js'
import { listQuerySchema, parseListQuery } from './list-query.js'

export const errorSchema = {
  type: 'object',
  properties: {
    statusCode: { type: 'integer' },
    code: { type: 'string' },
    error: { type: 'string' },
    message: { type: 'string' }
  }
} as const

export const idParams = {
  type: 'object',
  properties: { id: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER } },
  required: ['id']
} as const

export const errorReplies = {
  400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema
} as const

/** What a write needs from the app besides the pool, the same for REST and GraphQL. */
export interface WriteContext {
  /** the SSRF policy a queue's callbackUrl must pass */
  targets: TargetPolicy
  /** counts the messages a write created (metrics) */
  onEnqueued: OnEnqueued
  /** one message in, coalesced with concurrent ones into one commit */
  enqueue: (input: MessageInput) => Promise<Enqueued>
}

export function writeContext (app: FastifyInstance): WriteContext {
  return { targets: app.config.hooks, onEnqueued: app.metrics.enqueuedByApi, enqueue: async (input) => await app.enqueuer.enqueue(input) }
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
  /** created=false answers 200 instead of 201 (an idempotent repeat) */
  insert: (pool: Pool, input: any, ctx: WriteContext) => Promise<{ item: T, created: boolean }>
  modify: (pool: Pool, id: number, input: any, ctx: WriteContext) => Promise<T>
  remove: (pool: Pool, id: number, query: Record<string, unknown>) => Promise<T>
  /** extra querystring for DELETE */
  removeQuery?: Record<string, unknown>
}

export async function sendList<T> (reply: FastifyReply, pool: Pool, r: Pick<Resource<T>, 'entity' | 'list' | 'count'>,
  query: Record<string, unknown>, scope: Filter[] = []): Promise<T[]> {
  const q = parseListQuery(r.entity, query)
  q.where.push(...scope)
  if (q.totalCount) reply.header('x-total-count', String(await r.count(pool, q.where)))
  return await r.list(pool, q)
}

export function crudRoutes<T> (r: Resource<T>, opts: { hide?: boolean } = {}) {
  return async function routes (app: FastifyInstance): Promise<void> {
    const pool = app.pool
    const ctx = writeContext(app)
    const tags = [r.tag]
    const hide = opts.hide === true
    const one = { ...errorReplies, 200: r.item }

    app.get('/', {
      schema: { tags, hide, summary: `list ${r.tag}`, querystring: listQuerySchema(r.entity), response: { ...errorReplies, 200: { type: 'array', items: r.item } } }
    }, async (req, reply) => await sendList(reply, pool, r, req.query as Record<string, unknown>))

    app.get('/:id', { schema: { tags, hide, summary: `get one ${r.entity.name}`, params: idParams, response: one } },
      async (req) => await r.get(pool, (req.params as { id: number }).id))

    app.post('/', { schema: { tags, hide, summary: `create a ${r.entity.name}`, body: r.create, response: { ...one, 201: r.item } } },
      async (req, reply) => {
        const { item, created } = await r.insert(pool, req.body, ctx)
        reply.code(created ? 201 : 200)
        return item
      })

    app.put('/:id', { schema: { tags, hide, summary: `update a ${r.entity.name}`, params: idParams, body: r.update, response: one } },
      async (req) => await r.modify(pool, (req.params as { id: number }).id, req.body, ctx))

    app.delete('/:id', {
      schema: { tags, hide, summary: `delete a ${r.entity.name}`, params: idParams, querystring: { type: 'object', properties: r.removeQuery ?? {}, additionalProperties: false }, response: one }
    }, async (req) => await r.remove(pool, (req.params as { id: number }).id, req.query as Record<string, unknown>))
  }
}
