import type { FastifyInstance } from 'fastify'
import { listQuerySchema } from '../lib/api/list-query.js'
import { cronResource, messageResource, queueResource, signingSecretInput } from '../lib/api/resources.js'
import { crudRoutes, errorReplies, idParams, sendList, typed } from '../lib/http/crud.js'
import { getQueue } from '../lib/store/queues.js'
import { redriveQueue } from '../lib/store/redrive.js'
import { removeSigningSecret, rotateSigningSecret } from '../lib/store/signing-secrets.js'

// not `as const`: replies are typed by the store (a Date here), which Fastify serializes by this schema
const signingSecretReply: Record<string, unknown> = {
  type: 'object',
  properties: {
    queueId: { type: 'integer' },
    signingSecret: { type: 'string' },
    previousValidUntil: { type: ['string', 'null'], format: 'date-time' }
  }
}

export default async function queueRoutes (instance: FastifyInstance): Promise<void> {
  await instance.register(crudRoutes(queueResource))
  const app = typed(instance)

  app.post('/:id/redrive', {
    schema: {
      tags: ['queues'],
      summary: 're-queue every failed message of the queue (its dead letters)',
      params: idParams,
      response: {
        ...errorReplies,
        200: { type: 'object', properties: { queueId: { type: 'integer' }, requeued: { type: 'integer' } } }
      }
    }
  }, async (req) => await redriveQueue(app.pool, req.params.id))

  app.post('/:id/signing-secret', {
    schema: {
      tags: ['queues'],
      summary: 'set or rotate the signing secret: deliveries then carry Standard Webhooks signatures',
      description: 'Without a body, a secret is generated. ' +
        'The previous secret keeps signing (both signatures are sent) for graceSeconds.',
      params: idParams,
      body: signingSecretInput,
      response: {
        ...errorReplies,
        200: signingSecretReply
      }
    }
  }, async (req) => await rotateSigningSecret(app.pool, req.params.id, req.body ?? {}))

  app.delete('/:id/signing-secret', {
    schema: {
      tags: ['queues'],
      summary: 'stop signing deliveries',
      params: idParams,
      response: {
        ...errorReplies,
        200: { type: 'object', properties: { queueId: { type: 'integer' }, signed: { type: 'boolean' } } }
      }
    }
  }, async (req) => await removeSigningSecret(app.pool, req.params.id))

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
      const { id } = req.params
      await getQueue(app.pool, id) // 404 for a missing queue, not an empty list
      return await sendList<unknown>(reply, app.pool, r, req.query, [{ field: 'queueId', op: 'eq', value: id }])
    })
  }
}
