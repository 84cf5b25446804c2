import type { FastifyInstance } from 'fastify'
import { headersSchema } from '../lib/headers.js'
import { crudRoutes, errorReplies, idParams, sendList } from '../lib/http/crud.js'
import { listQuerySchema } from '../lib/http/list-query.js'
import { countQueues, createQueue, deleteQueue, getQueue, listQueues, queueEntity, updateQueue } from '../lib/store/queues.js'
import { redriveQueue } from '../lib/store/redrive.js'
import { cronResource } from './crons.js'
import { messageResource } from './messages.js'

const nullableId = { type: ['integer', 'null'], minimum: 1, maximum: Number.MAX_SAFE_INTEGER }

const writable = {
  name: { type: 'string', minLength: 1, maxLength: 255 },
  callbackUrl: { type: 'string', minLength: 8, maxLength: 2048, pattern: '^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\\s]+', description: 'http(s) URL the messages are sent to' },
  method: { type: 'string', enum: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'], description: 'Default POST' },
  headers: { ...headersSchema, description: 'sent with every message; message headers override them' },
  maxRetries: { type: 'integer', minimum: 0, maximum: 100, description: 'retries after the first attempt; 0 = one attempt only. Default 10' },
  timeoutMs: { type: 'integer', minimum: 100, maximum: 300000, description: 'connect + headers + body timeout. Default 30000' },
  backoffBaseMs: { type: 'integer', minimum: 0, maximum: 86400000, description: 'first retry delay before jitter. Default 30000' },
  backoffMaxMs: { type: 'integer', minimum: 0, maximum: 604800000, description: 'cap on a retry delay. Default 21600000 (6 h)' },
  backoffJitter: { type: 'string', enum: ['full', 'equal', 'none'], description: 'Default full' },
  deadLetterQueueId: { ...nullableId, description: 'queue that receives a copy of every message whose retries are exhausted' }
}

const item = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    ...writable,
    method: { type: 'string' },
    headers: { type: 'object', additionalProperties: { type: 'string' } },
    deadLetterQueueId: { type: ['integer', 'null'] },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' }
  }
}

export const queueResource = {
  entity: queueEntity,
  tag: 'queues',
  item,
  create: { type: 'object', properties: writable, required: ['name', 'callbackUrl'], additionalProperties: false },
  update: { type: 'object', properties: writable, minProperties: 1, additionalProperties: false },
  list: listQueues,
  count: countQueues,
  get: getQueue,
  insert: async (pool: any, input: any) => ({ item: await createQueue(pool, input), created: true }),
  modify: updateQueue,
  remove: async (pool: any, id: number, q: Record<string, unknown>) => await deleteQueue(pool, id, { force: q.force === true }),
  removeQuery: { force: { type: 'boolean', description: 'also delete the undelivered messages' } }
}

export default async function queueRoutes (app: FastifyInstance): Promise<void> {
  await app.register(crudRoutes(queueResource))

  app.post('/:id/redrive', {
    schema: {
      tags: ['queues'],
      summary: "re-queue every failed message of the queue (its dead letters)",
      params: idParams,
      response: { ...errorReplies, 200: { type: 'object', properties: { queueId: { type: 'integer' }, requeued: { type: 'integer' } } } }
    }
  }, async (req) => await redriveQueue(app.pool, (req.params as { id: number }).id))

  // relation routes: a queue's messages and crons, with the same list parameters
  for (const [path, r] of [['messages', messageResource], ['crons', cronResource]] as const) {
    app.get(`/:id/${path}`, {
      schema: {
        tags: ['queues'],
        summary: `list the ${path} of a queue`,
        params: idParams,
        querystring: listQuerySchema(r.entity),
        response: { ...errorReplies, 200: { type: 'array', items: r.item } }
      }
    }, async (req, reply) => {
      const { id } = req.params as { id: number }
      await getQueue(app.pool, id) // 404 for a missing queue, not an empty list
      return await sendList(reply, app.pool, r as any, req.query as Record<string, unknown>, [{ field: 'queueId', op: 'eq', value: id }])
    })
  }
}
