// The dashboard's data (issue: operator dashboard): every queue at a glance. Under the admin secret
// like the rest of the API.
import type { FastifyInstance } from 'fastify'
import { OVERVIEW_COUNT_CAP, queueOverview } from '../lib/store/overview.js'

const count = { type: 'integer', description: `counted up to ${OVERVIEW_COUNT_CAP}` }
const nullableNumber = { type: ['number', 'null'] }

const overview = {
  type: 'array',
  items: {
    type: 'object',
    properties: {
      id: { type: 'integer' },
      name: { type: 'string' },
      state: { type: 'string', enum: ['active', 'paused', 'disabled', 'circuit open', 'half-open', 'held'] },
      pending: count,
      due: count,
      claimed: count,
      lastHour: {
        type: 'object',
        properties: {
          delivered: { type: 'integer' },
          failed: { type: 'integer', description: 'failed attempts' },
          successRate: nullableNumber,
          p50Ms: { ...nullableNumber, description: 'delivery latency (from when to the answer), its bucket\'s bound' },
          p99Ms: nullableNumber
        }
      },
      lastError: {
        type: ['object', 'null'],
        properties: {
          at: { type: 'string' }, status: { type: ['integer', 'null'] }, error: { type: ['string', 'null'] }
        }
      },
      perMinute: {
        type: 'array',
        items: {
          type: 'object',
          properties: { minute: { type: 'string' }, delivered: { type: 'integer' }, failed: { type: 'integer' } }
        }
      }
    }
  }
}

export default async function dashboardRoutes (app: FastifyInstance): Promise<void> {
  app.get('/api/overview', {
    schema: {
      tags: ['dashboard'],
      summary: 'every queue: state, backlog, and the last hour\'s deliveries per minute',
      operationId: 'getDashboardOverview',
      response: { 200: overview }
    }
  }, async () => await queueOverview(app.pool))
}
