import type { FastifyInstance } from 'fastify'
import { bodySchema } from '../lib/body.js'
import { headersSchema } from '../lib/headers.js'
import { crudRoutes, errorReplies, idParams } from '../lib/http/crud.js'
import { listAttempts, retryMessage } from '../lib/store/redrive.js'
import { countMessages, createMessage, deleteMessage, getMessage, listMessages, messageEntity, updateMessage } from '../lib/store/messages.js'

const writable = {
  queueId: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
  body: bodySchema,
  headers: { ...headersSchema, description: 'merged over the queue headers' },
  when: { type: 'string', format: 'date-time', description: 'deliver at or after this time; default now' }
}

const nullableDate = { type: ['string', 'null'], format: 'date-time' }

const item = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    queueId: { type: 'integer' },
    body: {},
    headers: { type: 'object', additionalProperties: { type: 'string' } },
    when: { type: 'string', format: 'date-time' },
    nextAttemptAt: { ...nullableDate, description: 'when the next attempt may start; null once delivered or failed' },
    sentAt: nullableDate,
    failed: { type: 'boolean' },
    retries: { type: 'integer', description: 'failed attempts so far' },
    attempts: { type: 'integer' },
    lastStatus: { type: ['integer', 'null'] },
    lastError: { type: ['string', 'null'] },
    cronId: { type: ['integer', 'null'] },
    deadLetterOf: { type: ['integer', 'null'], description: 'on a dead-letter-queue copy: the message that died' },
    idempotencyKey: { type: ['string', 'null'] },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' }
  }
}

export const messageResource = {
  entity: messageEntity,
  tag: 'messages',
  item,
  create: {
    type: 'object',
    properties: {
      ...writable,
      idempotencyKey: { type: 'string', minLength: 1, maxLength: 255, description: 'a repeat with the same key on the same queue returns the first message (200)' }
    },
    required: ['queueId'],
    additionalProperties: false
  },
  update: { type: 'object', properties: writable, minProperties: 1, additionalProperties: false },
  list: listMessages,
  count: countMessages,
  get: getMessage,
  insert: async (pool: any, input: any) => {
    const { message, created } = await createMessage(pool, input)
    return { item: message, created }
  },
  modify: updateMessage,
  remove: async (pool: any, id: number) => await deleteMessage(pool, id)
}

const attemptItem = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    messageId: { type: 'integer' },
    attempt: { type: 'integer', description: '1 for the first attempt' },
    startedAt: { type: 'string', format: 'date-time' },
    durationMs: { type: 'integer' },
    statusCode: { type: ['integer', 'null'] },
    errorKind: { type: ['string', 'null'], description: 'null on success; http, timeout, connect or network' },
    error: { type: ['string', 'null'] },
    responseBody: { type: ['string', 'null'], description: 'the first 4 KB of the response' }
  }
}

export default async function messageRoutes (app: FastifyInstance): Promise<void> {
  await app.register(crudRoutes(messageResource))

  app.get('/:id/attempts', {
    schema: { tags: ['messages'], summary: 'the attempt log of a message', params: idParams, response: { ...errorReplies, 200: { type: 'array', items: attemptItem } } }
  }, async (req) => await listAttempts(app.pool, (req.params as { id: number }).id))

  app.post('/:id/retry', {
    schema: { tags: ['messages'], summary: 're-queue a failed message with a fresh retry budget', params: idParams, response: { ...errorReplies, 200: item } }
  }, async (req) => await retryMessage(app.pool, (req.params as { id: number }).id))
}
