// The REST shape every resource shares: list, get, create, update, delete, each with its schemas.
// Params, querystrings and bodies are typed from their JSON schemas (json-schema-to-ts).
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts'
import type { Pool } from 'pg'
import { writeContext, type Resource } from '../api/crud.js'
import { fromQuerystring, listQuerySchema } from '../api/list-query.js'
import type { Filter } from '../store/list.js'

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
  required: ['id'],
  additionalProperties: false
} as const

export const errorReplies = {
  400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema
} as const

const forceQuery = {
  type: 'object',
  properties: { force: { type: 'boolean', description: 'also delete the undelivered messages' } },
  additionalProperties: false
} as const
const noQuery = { type: 'object', properties: {}, additionalProperties: false } as const
/** set to `true` on a create that found its idempotency key already used: nothing new was created */
export const IDEMPOTENT_REPLAYED = 'idempotent-replayed'

/** Routes whose params, querystring and body are typed from their schemas. */
export function typed (app: FastifyInstance) {
  return app.withTypeProvider<JsonSchemaToTsProvider>()
}

export async function sendList<T> (reply: FastifyReply, pool: Pool, r: Pick<Resource<T>, 'entity' | 'list' | 'count'>,
  query: Readonly<Record<string, unknown>>, scope: Filter[] = []): Promise<T[]> {
  const q = fromQuerystring(r.entity, query)
  q.where.push(...scope)
  if (q.totalCount) reply.header('x-total-count', String(await r.count(pool, q.where)))
  return await r.list(pool, q)
}

export function crudRoutes<T> (r: Resource<T>, opts: { hide?: boolean } = {}) {
  return async function routes (instance: FastifyInstance): Promise<void> {
    const app = typed(instance)
    const pool = app.pool
    const ctx = writeContext(app)
    const tags = [r.tag]
    const hide = opts.hide === true
    const one = { ...errorReplies, 200: r.item }
    const summary = (what: string): { tags: string[], hide: boolean, summary: string } =>
      ({ tags, hide, summary: what })

    app.get('/', {
      schema: {
        ...summary(`list ${r.tag}`),
        querystring: listQuerySchema(r.entity),
        response: { ...errorReplies, 200: { type: 'array', items: r.item } }
      }
    }, async (req, reply) => await sendList(reply, pool, r, req.query))

    app.get('/:id', { schema: { ...summary(`get one ${r.entity.name}`), params: idParams, response: one } },
      async (req) => await r.get(pool, req.params.id))

    app.post('/', {
      schema: { ...summary(`create a ${r.entity.name}`), body: r.create, response: one }
    }, async (req, reply) => {
      const { item, created } = await r.insert(pool, req.body, ctx)
      // 200 either way, as Platformatic DB (and so pg-hooks) answers a create; a repeat of an idempotency
      // key is told apart by this header, as Stripe's API does
      if (!created) reply.header(IDEMPOTENT_REPLAYED, 'true')
      return item
    })

    app.put('/:id', {
      schema: { ...summary(`update a ${r.entity.name}`), params: idParams, body: r.update, response: one }
    }, async (req) => await r.modify(pool, req.params.id, req.body, ctx))

    if (r.forceDelete === true) {
      app.delete('/:id', {
        schema: { ...summary(`delete a ${r.entity.name}`), params: idParams, querystring: forceQuery, response: one }
      }, async (req) => await r.remove(pool, req.params.id, { force: req.query.force === true }))
    } else {
      app.delete('/:id', {
        schema: { ...summary(`delete a ${r.entity.name}`), params: idParams, querystring: noQuery, response: one }
      }, async (req) => await r.remove(pool, req.params.id, {}))
    }
  }
}
