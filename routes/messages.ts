import type { FastifyInstance } from 'fastify'
import { crudRoutes, errorReplies, idParams } from '../lib/http/crud.js'
import { attemptItem, messageItem, messageResource } from '../lib/resources.js'
import { listAttempts, retryMessage } from '../lib/store/redrive.js'

export default async function messageRoutes (app: FastifyInstance): Promise<void> {
  await app.register(crudRoutes(messageResource))

  app.get('/:id/attempts', {
    schema: { tags: ['messages'], summary: 'the attempt log of a message', params: idParams, response: { ...errorReplies, 200: { type: 'array', items: attemptItem } } }
  }, async (req) => await listAttempts(app.pool, (req.params as { id: number }).id))

  app.post('/:id/retry', {
    schema: { tags: ['messages'], summary: 're-queue a failed message with a fresh retry budget', params: idParams, response: { ...errorReplies, 200: messageItem } }
  }, async (req) => await retryMessage(app.pool, (req.params as { id: number }).id))
}
