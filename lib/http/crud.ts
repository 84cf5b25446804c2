// The REST shape every resource shares: list, get, create, update, delete, each with its schemas.
// Params, querystrings and bodies are typed from their JSON schemas (json-schema-to-ts).
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts'
import type { Pool } from 'pg'
import { deleted, saved, updateMatching, writeContext, type Resource } from '../api/crud.js'
import { errors } from '../errors.js'
import { fieldsProjection, fieldsQuery } from './fields.js'
import { fromQuerystring, listQuerySchema, whereQuerySchema } from '../api/list-query.js'
import { MAX_BULK_INPUTS, type Filter } from '../store/list.js'

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
  properties: { force: { type: 'boolean', description: 'also delete the undelivered messages' }, fields: fieldsQuery },
  additionalProperties: false
} as const
const fieldsOnly = { type: 'object', properties: { fields: fieldsQuery }, additionalProperties: false } as const
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

const capitalize = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1)

/**
 * Platformatic DB's operationIds, which pg-hooks' generated clients call by name: getQueues,
 * createQueue, getQueueById, updateQueue, deleteQueues (sic: Platformatic's name for DELETE /{id}).
 */
export function operationIds (r: Pick<Resource<unknown>, 'entity' | 'tag'>) {
  const one = capitalize(r.entity.name)
  const many = capitalize(r.tag)
  return {
    list: `get${many}`,
    create: `create${one}`,
    get: `get${one}ById`,
    update: `update${one}`,
    updateMany: `update${many}`,
    remove: `delete${many}`,
    /** a relation route: getQueueForMessage, getMessagesForQueue */
    relation: (target: string) => `get${capitalize(target)}For${one}`
  }
}

/** the fields of a write body that were not written (read-only or unknown), when there were any */
export const IGNORED_FIELDS = 'x-hookpost-ignored-fields'

/**
 * Platformatic DB drops what a write body holds beyond the writable fields (read-only ones such as id,
 * createdAt or sentAt, and unknown ones), so a row read with GET can be sent back with PUT. So does
 * hookpost, before validation, and names what it dropped in a header. Values of writable fields are
 * validated as ever.
 */
function dropUnwritable (writable: Record<string, unknown>) {
  const names = new Set(Object.keys((writable as { properties?: object }).properties ?? {}))
  return async (req: { body: unknown }, reply: FastifyReply): Promise<void> => {
    const body = req.body
    if (body === null || typeof body !== 'object' || Array.isArray(body)) return
    const dropped = Object.keys(body).filter(k => !names.has(k))
    for (const k of dropped) delete (body as Record<string, unknown>)[k]
    if (dropped.length > 0) reply.header(IGNORED_FIELDS, dropped.map(encodeURIComponent).join(','))
  }
}

export function crudRoutes<T> (r: Resource<T>, opts: { hide?: boolean } = {}) {
  return async function routes (instance: FastifyInstance): Promise<void> {
    const app = typed(instance)
    const pool = app.pool
    const ctx = writeContext(app)
    const tags = [r.tag]
    const hide = opts.hide === true
    const one = { ...errorReplies, 200: r.item }
    const ids = operationIds(r)
    fieldsProjection(instance)
    const summary = (what: string, operationId: string) => ({ tags, hide, summary: what, operationId })

    app.get('/', {
      schema: {
        ...summary(`list ${r.tag}`, ids.list),
        querystring: listQuerySchema(r.entity),
        response: { ...errorReplies, 200: { type: 'array', items: r.item } }
      }
    }, async (req, reply) => await sendList(reply, pool, r, req.query))

    app.get('/:id', {
      schema: {
        ...summary(`get one ${r.entity.name}`, ids.get), params: idParams, querystring: fieldsOnly, response: one
      }
    }, async (req) => await r.get(pool, req.params.id))

    app.post('/', {
      preValidation: dropUnwritable(r.create),
      schema: {
        ...summary(`create a ${r.entity.name}`, ids.create), querystring: fieldsOnly, body: r.create, response: one
      }
    }, async (req, reply) => {
      const { item, created } = await r.insert(pool, req.body, ctx)
      // 200 either way, as Platformatic DB (and so pg-hooks) answers a create; a repeat of an idempotency
      // key is told apart by this header, as Stripe's API does
      if (!created) reply.header(IDEMPOTENT_REPLAYED, 'true')
      else saved(ctx, r, [item])
      return item
    })

    app.put('/:id', {
      preValidation: dropUnwritable(r.update),
      schema: {
        ...summary(`update a ${r.entity.name}`, ids.update),
        params: idParams,
        querystring: fieldsOnly,
        body: r.update,
        response: one
      }
    }, async (req) => saved(ctx, r, [await r.modify(pool, req.params.id, req.body, ctx)])[0])

    // Platformatic's bulk update: PUT /{entity}?where.<field>.<op>=… with the change as the body
    app.put('/', {
      preValidation: dropUnwritable(r.update),
      schema: {
        ...summary(`update every ${r.entity.name} the where parameters match (at most ${MAX_BULK_INPUTS}), ` +
          'all or none', ids.updateMany),
        querystring: whereQuerySchema(r.entity),
        body: r.update,
        response: { ...errorReplies, 200: { type: 'array', items: r.item } }
      }
    }, async (req) => {
      const { where } = fromQuerystring(r.entity, req.query)
      return await updateMatching(pool, r, where, req.body, ctx)
    })

    if (r.forceDelete === true) {
      app.delete('/:id', {
        schema: {
          ...summary(`delete a ${r.entity.name}`, ids.remove), params: idParams, querystring: forceQuery, response: one
        }
      }, async (req) => deleted(ctx, r, [await r.remove(pool, req.params.id, { force: req.query.force === true })])[0])
    } else {
      app.delete('/:id', {
        schema: {
          ...summary(`delete a ${r.entity.name}`, ids.remove), params: idParams, querystring: fieldsOnly, response: one
        }
      }, async (req) => deleted(ctx, r, [await r.remove(pool, req.params.id, {})])[0])
    }
  }
}

/**
 * GET /{id}/{path}: the one row a foreign key of this row points at, as Platformatic DB generates them
 * (/messages/{id}/queue). 404 when the row is missing, or its key is null (a message of no cron).
 */
export function toOneRoute<F, T> (app: FastifyInstance, from: Resource<F>, path: string, to: Resource<T>,
  key: (row: F) => number | null): void {
  typed(app).get(`/:id/${path}`, {
    schema: {
      tags: [from.tag],
      summary: `the ${to.entity.name} of a ${from.entity.name}`,
      operationId: operationIds(from).relation(to.entity.name),
      params: idParams,
      querystring: fieldsOnly,
      response: { ...errorReplies, 200: to.item }
    }
  }, async (req) => {
    const id = key(await from.get(app.pool, req.params.id))
    if (id === null) throw new errors.HOOKPOST_ERR_NOT_FOUND(to.entity.name, `of ${from.entity.name} ${req.params.id}`)
    return await to.get(app.pool, id)
  })
}

/**
 * GET /{id}/{path}: the rows whose `field` points at this row (/queues/{id}/messages), with the list
 * parameters of GET /{path}. 404 for a missing row rather than an empty list.
 */
export function toManyRoute<F, T> (app: FastifyInstance, from: Pick<Resource<F>, 'entity' | 'tag' | 'get'>,
  path: string, to: Resource<T>, field: string): void {
  typed(app).get(`/:id/${path}`, {
    schema: {
      tags: [from.tag],
      summary: `list the ${to.tag} of a ${from.entity.name}`,
      operationId: operationIds(from).relation(to.tag),
      params: idParams,
      querystring: listQuerySchema(to.entity),
      response: { ...errorReplies, 200: { type: 'array', items: to.item } }
    }
  }, async (req, reply) => {
    const { id } = req.params
    await from.get(app.pool, id)
    return await sendList<unknown>(reply, app.pool, to, req.query, [{ field, op: 'eq', value: id }])
  })
}
