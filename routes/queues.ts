import type { FastifyInstance } from 'fastify'
import { cronResource, messageResource, queueResource, signingSecretInput } from '../lib/api/resources.js'
import { crudRoutes, errorReplies, idParams, toManyRoute, toOneRoute, typed } from '../lib/http/crud.js'
import { fieldsProjection } from '../lib/http/fields.js'
import { redriveQueue } from '../lib/store/redrive.js'
import { replayQueue } from '../lib/store/replay.js'
import { replayInput, replayResult } from '../lib/api/events.js'
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
  // the relation routes below take ?fields= as the CRUD routes do
  fieldsProjection(instance)

  app.post('/:id/redrive', {
    schema: {
      tags: ['queues'],
      operationId: 'redriveQueue',
      summary: 're-queue every failed message of the queue (its dead letters)',
      params: idParams,
      response: {
        ...errorReplies,
        200: { type: 'object', properties: { queueId: { type: 'integer' }, requeued: { type: 'integer' } } }
      }
    }
  }, async (req) => await redriveQueue(app.pool, req.params.id))

  app.post('/:id/replay', {
    schema: {
      tags: ['queues'],
      operationId: 'replayQueue',
      summary: 're-send, as new messages, the stored events this queue would have matched in a window',
      description: 'Events the queue already received, or that are still on their way to it, are skipped, and ' +
        'each event is replayed to a queue at most once: a second replay of the same window creates nothing.',
      params: idParams,
      body: replayInput,
      response: { ...errorReplies, 200: replayResult }
    }
  }, async (req) => await replayQueue(app.pool, req.params.id, req.body))

  app.post('/:id/signing-secret', {
    schema: {
      tags: ['queues'],
      operationId: 'rotateQueueSigningSecret',
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
      operationId: 'removeQueueSigningSecret',
      summary: 'stop signing deliveries',
      params: idParams,
      response: {
        ...errorReplies,
        200: { type: 'object', properties: { queueId: { type: 'integer' }, signed: { type: 'boolean' } } }
      }
    }
  }, async (req) => await removeSigningSecret(app.pool, req.params.id))

  // Platformatic DB's relation routes, as pg-hooks has them: its messages and crons, the queues whose
  // dead-letter queue it is, and its own dead-letter queue (Platformatic names that one after the column)
  toManyRoute(instance, queueResource, 'messages', messageResource, 'queueId')
  toManyRoute(instance, queueResource, 'crons', cronResource, 'queueId')
  toManyRoute(instance, queueResource, 'queues', queueResource, 'deadLetterQueueId')
  toOneRoute(instance, queueResource, 'dead_letter_queue', queueResource, q => q.deadLetterQueueId)
}
