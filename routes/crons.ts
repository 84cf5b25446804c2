import type { FastifyInstance } from 'fastify'
import { bodySchema } from '../lib/body.js'
import { headersSchema } from '../lib/headers.js'
import { crudRoutes } from '../lib/http/crud.js'
import { countCrons, createCron, cronEntity, deleteCron, getCron, listCrons, updateCron } from '../lib/store/crons.js'

const writable = {
  queueId: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
  schedule: { type: 'string', minLength: 1, maxLength: 255, description: 'cron syntax: 5 fields, or 6 with seconds first' },
  timezone: { type: 'string', minLength: 1, maxLength: 64, description: 'IANA time zone; default UTC' },
  body: bodySchema,
  headers: headersSchema,
  paused: { type: 'boolean' },
  missedTicks: { type: 'string', enum: ['once', 'skip'], description: 'ticks missed while no leader ran: one catch-up fire (once, default) or none (skip)' }
}

const nullableDate = { type: ['string', 'null'], format: 'date-time' }

const item = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    ...writable,
    body: {},
    headers: { type: 'object', additionalProperties: { type: 'string' } },
    nextTickAt: nullableDate,
    lastTickAt: nullableDate,
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' }
  }
}

export const cronResource = {
  entity: cronEntity,
  tag: 'crons',
  item,
  create: { type: 'object', properties: writable, required: ['queueId', 'schedule'], additionalProperties: false },
  update: { type: 'object', properties: writable, minProperties: 1, additionalProperties: false },
  list: listCrons,
  count: countCrons,
  get: getCron,
  insert: async (pool: any, input: any) => ({ item: await createCron(pool, input), created: true }),
  modify: updateCron,
  remove: async (pool: any, id: number) => await deleteCron(pool, id)
}

export default async function cronRoutes (app: FastifyInstance): Promise<void> {
  await app.register(crudRoutes(cronResource))
}

/** /cron: the pg-hooks README's spelling, kept out of the OpenAPI document. */
export async function cronAliasRoutes (app: FastifyInstance): Promise<void> {
  await app.register(crudRoutes(cronResource, { hide: true }))
}
