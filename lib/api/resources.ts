// The three resources, as REST and GraphQL both see them: JSON schemas for what may be written and
// what is returned, bound to the domain functions in lib/store. Routes and resolvers stay thin.
import type { Pool } from 'pg'
import type { Queryable } from '../db/pool.js'
import { MAX_QUEUE_TIMEOUT_MS } from '../delivery/lease.js'
import { bodySchema } from '../domain/body.js'
import { headersSchema } from '../domain/headers.js'
import { eventTypesSchema, filterSchema, payloadFormatSchema } from '../domain/events.js'
import {
  countCrons, createCron, cronEntity, deleteCron, getCron, listCrons, updateCron, type Cron
} from '../store/crons.js'
import {
  countMessages, deleteMessage, getMessage, listMessages, messageEntity, updateMessage, type Message
} from '../store/messages.js'
import {
  countQueues, createQueue, deleteQueue, getQueue, listQueues, queueEntity, updateQueue, type Queue
} from '../store/queues.js'
import type { Resource, WriteContext } from './crud.js'
import { NO_NUL } from './validate.js'

const nullableDate = { type: ['string', 'null'], format: 'date-time' }

const nullableId = { type: ['integer', 'null'], minimum: 1, maximum: Number.MAX_SAFE_INTEGER }

// a body string is stored as text, which cannot hold a NUL; any other JSON value is stored as its JSON text
const storableBody = { ...bodySchema, if: { type: 'string' }, then: { pattern: NO_NUL } }

const queueWritable = {
  name: { type: 'string', minLength: 1, maxLength: 255, pattern: NO_NUL },
  callbackUrl: {
    type: 'string',
    minLength: 8,
    maxLength: 2048,
    pattern: '^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\\s\\u0000]+[^\\u0000]*$',
    description: 'http(s) URL the messages are sent to'
  },
  method: {
    type: 'string',
    enum: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'],
    description: 'Default POST'
  },
  headers: { ...headersSchema, description: 'sent with every message; message headers override them' },
  maxRetries: {
    type: 'integer',
    minimum: 0,
    maximum: 100,
    description: 'retries after the first attempt; 0 = one attempt only. Default 10'
  },
  timeoutMs: {
    type: 'integer',
    minimum: 100,
    maximum: MAX_QUEUE_TIMEOUT_MS,
    description: 'connect + headers + body timeout. Default 30000'
  },
  backoffBaseMs: {
    type: 'integer',
    minimum: 0,
    maximum: 86400000,
    description: 'first retry delay before jitter. Default 30000'
  },
  backoffMaxMs: {
    type: 'integer',
    minimum: 0,
    maximum: 604800000,
    description: 'cap on a retry delay. Default 21600000 (6 h)'
  },
  backoffJitter: { type: 'string', enum: ['full', 'equal', 'none'], description: 'Default full' },
  deadLetterQueueId: {
    ...nullableId,
    description: 'queue that receives a copy of every message whose retries are exhausted'
  },
  eventTypes: eventTypesSchema,
  filter: filterSchema,
  payloadFormat: payloadFormatSchema,
  paused: {
    type: 'boolean',
    description: 'paused: its messages are parked (not attempted, not failed); false delivers them, in order'
  },
  disabled: {
    type: 'boolean',
    description: 'set by hookpost when the endpoint answers 410 Gone or has failed for disableAfterHours; parks ' +
      'messages as paused does. false enables it'
  },
  circuitFailureThreshold: {
    type: 'integer',
    minimum: 0,
    maximum: 100000,
    description: 'failed attempts in a row that open the circuit (no calls for circuitCooldownMs, then one probe); ' +
      '0: no circuit breaker. Default 20'
  },
  circuitCooldownMs: {
    type: 'integer',
    minimum: 1000,
    maximum: 86400000,
    description: 'how long an open circuit holds the queue; doubled by each failed probe, at most 1 h. Default 60000'
  },
  disableAfterHours: {
    type: 'integer',
    minimum: 0,
    maximum: 87600,
    description: 'a queue failing continuously this long is disabled; 0: never. Default 72'
  },
  rateLimitPerSecond: {
    type: ['number', 'null'],
    // one call in 1,000 s at the slowest (attack round: 5e-324 overflowed the limiter's arithmetic)
    minimum: 0.001,
    maximum: 100000,
    description: 'calls started per second at most, across every delivering process; bursts up to one second\'s ' +
      'worth. null: unlimited'
  },
  maxConcurrency: {
    type: ['integer', 'null'],
    minimum: 1,
    maximum: 10000,
    description: 'calls in flight to the endpoint at most, across every delivering process. null: unlimited'
  },
  fifo: {
    type: 'boolean',
    description: 'the whole queue is one ordering key: one call at a time, in enqueue order. Default false'
  }
}

// each item schema's title names it in the OpenAPI document's components (lib/app.ts hoists them),
// as Platformatic DB names its entities: generated clients get the types Queue, Message, Cron
const queueItem = {
  title: 'Queue',
  type: 'object',
  properties: {
    id: { type: 'integer' },
    ...queueWritable,
    method: { type: 'string' },
    headers: { type: 'object', additionalProperties: { type: 'string' } },
    deadLetterQueueId: { type: ['integer', 'null'] },
    eventTypes: { type: 'array', items: { type: 'string' } },
    filter: { type: ['object', 'null'], additionalProperties: true },
    payloadFormat: { type: 'string' },
    disabledReason: { type: ['string', 'null'] },
    disabledAt: nullableDate,
    heldUntil: { ...nullableDate, description: 'a 429 or 503 with Retry-After asked the queue to wait until then' },
    circuitState: { type: 'string', enum: ['closed', 'open', 'half-open'] },
    circuitOpenedAt: nullableDate,
    consecutiveFailures: { type: 'integer', description: 'failed attempts since the last success' },
    failingSince: { ...nullableDate, description: 'the first failure after the last success' },
    effectiveRatePerSecond: {
      type: ['number', 'null'],
      description: 'the rate calls start at now: rateLimitPerSecond, or lower while the endpoint answers 429, 502, ' +
        '503 or 504 without Retry-After (adaptive throttling). null: unlimited'
    },
    signed: {
      type: 'boolean',
      description: 'deliveries carry Standard Webhooks signatures (see POST /queues/{id}/signing-secret)'
    },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' }
  }
}

export const queueResource: Resource<Queue> = {
  entity: queueEntity,
  tag: 'queues',
  item: queueItem,
  create: { type: 'object', properties: queueWritable, required: ['name', 'callbackUrl'], additionalProperties: false },
  update: { type: 'object', properties: queueWritable, minProperties: 1, additionalProperties: false },
  list: listQueues,
  count: countQueues,
  get: getQueue,
  insert: async (db: Queryable, input: any, ctx: WriteContext) =>
    ({ item: await createQueue(db, input, ctx.targets), created: true }),
  modify: async (db: Queryable, id: number, input: any, ctx: WriteContext) =>
    await updateQueue(db, id, input, ctx.targets),
  remove: async (pool: Pool, id: number, q: { force?: boolean }) =>
    await deleteQueue(pool, id, { force: q.force === true }),
  forceDelete: true
}

// printable ASCII, no space at either end (migrations/012.do.sql checks the same)
const ORDERING_KEY_SCHEMA = {
  type: 'string',
  minLength: 1,
  maxLength: 255,
  pattern: '^[!-~]([ -~]*[!-~])?$',
  description: 'messages of the queue with the same key are delivered one at a time, in enqueue order; a message ' +
    'that is retrying holds back the later ones of its key (only its key); one that dies lets them go'
}

const messageWritable = {
  queueId: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
  body: storableBody,
  headers: { ...headersSchema, description: 'merged over the queue headers' },
  when: { type: 'string', format: 'date-time', description: 'deliver at or after this time; default now' }
}

export const messageItem = {
  title: 'Message',
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
    eventId: { type: ['integer', 'null'], description: 'the event this message delivers (GET /events/{id})' },
    eventType: { type: ['string', 'null'] },
    replay: { type: 'boolean', description: 'made by POST /queues/{id}/replay' },
    parked: { type: 'boolean', description: 'its queue is paused or disabled: waiting, not attempted, not failed' },
    orderingKey: { type: ['string', 'null'] },
    waitingForKey: {
      type: 'boolean',
      description: 'an earlier message of its ordering key is pending: it goes once that one is sent or dead'
    },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' }
  }
}

export const messageResource: Resource<Message> = {
  entity: messageEntity,
  tag: 'messages',
  item: messageItem,
  create: {
    type: 'object',
    properties: {
      ...messageWritable,
      // sent as a header, so printable ASCII only
      idempotencyKey: {
        type: 'string',
        minLength: 1,
        maxLength: 255,
        pattern: '^[\\u0020-\\u007e]+$',
        description: 'printable ASCII; a repeat with the same key on the same queue returns the first message (200)'
      },
      orderingKey: ORDERING_KEY_SCHEMA
    },
    required: ['queueId'],
    additionalProperties: false
  },
  update: { type: 'object', properties: messageWritable, minProperties: 1, additionalProperties: false },
  list: listMessages,
  count: countMessages,
  get: getMessage,
  // through the app's group-commit enqueuer (its own connections, from the app's pool), never inside a
  // caller's transaction
  insert: async (_db: Queryable, input: any, ctx: WriteContext) => {
    const { message, created } = await ctx.enqueue(input)
    return { item: message, created }
  },
  modify: updateMessage,
  remove: async (pool: Pool, id: number) => await deleteMessage(pool, id)
}

export const attemptItem = {
  title: 'Attempt',
  type: 'object',
  properties: {
    id: { type: 'integer' },
    messageId: { type: 'integer' },
    attempt: { type: 'integer', description: '1 for the first attempt' },
    startedAt: { type: 'string', format: 'date-time' },
    durationMs: { type: 'integer' },
    statusCode: { type: ['integer', 'null'] },
    errorKind: {
      type: ['string', 'null'],
      description: 'null on success; http, timeout, connect, network or blocked (the SSRF policy refused the address)'
    },
    error: { type: ['string', 'null'] },
    responseBody: { type: ['string', 'null'], description: 'the first 4 KB of the response' }
  }
}

const cronWritable = {
  queueId: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
  schedule: {
    type: 'string',
    minLength: 1,
    maxLength: 255,
    pattern: NO_NUL,
    description: 'cron syntax: 5 fields, or 6 with seconds first'
  },
  timezone: {
    type: 'string', minLength: 1, maxLength: 64, pattern: NO_NUL, description: 'IANA time zone; default UTC'
  },
  body: storableBody,
  headers: headersSchema,
  paused: { type: 'boolean' },
  missedTicks: {
    type: 'string',
    enum: ['once', 'skip'],
    description: 'ticks missed while no leader ran: one catch-up fire (once, default) or none (skip)'
  }
}

const cronItem = {
  title: 'Cron',
  type: 'object',
  properties: {
    id: { type: 'integer' },
    ...cronWritable,
    body: {},
    headers: { type: 'object', additionalProperties: { type: 'string' } },
    nextTickAt: nullableDate,
    lastTickAt: nullableDate,
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' }
  }
}

export const cronResource: Resource<Cron> = {
  entity: cronEntity,
  tag: 'crons',
  item: cronItem,
  create: { type: 'object', properties: cronWritable, required: ['queueId', 'schedule'], additionalProperties: false },
  update: { type: 'object', properties: cronWritable, minProperties: 1, additionalProperties: false },
  list: listCrons,
  count: countCrons,
  get: getCron,
  insert: async (db: Queryable, input: any) => ({ item: await createCron(db, input), created: true }),
  modify: updateCron,
  remove: async (pool: Pool, id: number) => await deleteCron(pool, id)
}

/** POST /queues/{id}/signing-secret's body, and rotateSigningSecret's arguments */
export const signingSecretInput = {
  type: ['object', 'null'],
  properties: {
    secret: { type: 'string', maxLength: 200, description: 'whsec_ + base64 of 24 to 64 bytes; generated when absent' },
    graceSeconds: { type: 'integer', minimum: 0, maximum: 2_592_000, description: 'default 86400' }
  },
  additionalProperties: false
} as const
