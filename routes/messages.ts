import type { FastifyInstance } from 'fastify'
import { attemptItem, cronResource, messageItem, messageResource, queueResource } from '../lib/api/resources.js'
import { crudRoutes, errorReplies, idParams, toOneRoute, typed } from '../lib/http/crud.js'
import { fieldsProjection } from '../lib/http/fields.js'
import { listAttempts, retryMessage } from '../lib/store/redrive.js'

export default async function messageRoutes (instance: FastifyInstance): Promise<void> {
  await instance.register(crudRoutes(messageResource))
  const app = typed(instance)
  // the relation routes below take ?fields= as the CRUD routes do
  fieldsProjection(instance)

  app.get('/:id/attempts', {
    schema: {
      tags: ['messages'],
      operationId: 'getAttemptsForMessage',
      summary: 'the attempt log of a message',
      params: idParams,
      response: { ...errorReplies, 200: { type: 'array', items: attemptItem } }
    }
  }, async (req) => await listAttempts(app.pool, req.params.id))

  app.post('/:id/retry', {
    schema: {
      tags: ['messages'],
      operationId: 'retryMessage',
      summary: 're-queue a failed message with a fresh retry budget',
      params: idParams,
      response: { ...errorReplies, 200: messageItem }
    }
  }, async (req) => await retryMessage(app.pool, req.params.id))

  // Platformatic DB's relation routes, as pg-hooks has them
  toOneRoute(instance, messageResource, 'queue', queueResource, m => m.queueId)
  toOneRoute(instance, messageResource, 'cron', cronResource, m => m.cronId)
}
