import type { FastifyInstance } from 'fastify'
import { attemptItem, messageItem, messageResource } from '../lib/api/resources.js'
import { crudRoutes, errorReplies, idParams, typed } from '../lib/http/crud.js'
import { listAttempts, retryMessage } from '../lib/store/redrive.js'

export default async function messageRoutes (instance: FastifyInstance): Promise<void> {
  await instance.register(crudRoutes(messageResource))
  const app = typed(instance)

  app.get('/:id/attempts', {
    schema: {
      tags: ['messages'],
      summary: 'the attempt log of a message',
      params: idParams,
      response: { ...errorReplies, 200: { type: 'array', items: attemptItem } }
    }
  }, async (req) => await listAttempts(app.pool, req.params.id))

  app.post('/:id/retry', {
    schema: {
      tags: ['messages'],
      summary: 're-queue a failed message with a fresh retry budget',
      params: idParams,
      response: { ...errorReplies, 200: messageItem }
    }
  }, async (req) => await retryMessage(app.pool, req.params.id))
}
