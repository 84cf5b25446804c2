import type { FastifyInstance } from 'fastify'
import { crudRoutes, errorReplies, idParams, sendList } from '../lib/http/crud.js'
import { listQuerySchema } from '../lib/http/list-query.js'
import { cronResource, messageResource, queueResource } from '../lib/resources.js'
import { getQueue } from '../lib/store/queues.js'
import { redriveQueue } from '../lib/store/redrive.js'
import { removeSigningSecret, rotateSigningSecret } from '../lib/store/signing-secrets.js'

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

  app.post('/:id/signing-secret', {
    schema: {
      tags: ['queues'],
      summary: 'set or rotate the signing secret: deliveries then carry Standard Webhooks signatures',
      description: 'Without a body, a secret is generated. The previous secret keeps signing (both signatures are sent) for graceSeconds.',
      params: idParams,
      body: {
        type: ['object', 'null'],
        properties: {
          secret: { type: 'string', maxLength: 200, description: 'whsec_ + base64 of 24 to 64 bytes; generated when absent' },
          graceSeconds: { type: 'integer', minimum: 0, maximum: 2_592_000, description: 'default 86400' }
        },
        additionalProperties: false
      },
      response: {
        ...errorReplies,
        200: { type: 'object', properties: { queueId: { type: 'integer' }, signingSecret: { type: 'string' }, previousValidUntil: { type: ['string', 'null'], format: 'date-time' } } }
      }
    }
  }, async (req) => await rotateSigningSecret(app.pool, (req.params as { id: number }).id, (req.body ?? {}) as { secret?: string, graceSeconds?: number }))

  app.delete('/:id/signing-secret', {
    schema: {
      tags: ['queues'],
      summary: 'stop signing deliveries',
      params: idParams,
      response: { ...errorReplies, 200: { type: 'object', properties: { queueId: { type: 'integer' }, signed: { type: 'boolean' } } } }
    }
  }, async (req) => await removeSigningSecret(app.pool, (req.params as { id: number }).id))

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
