// The dashboard's data: every queue at a glance, once or live, and the crons with their next ticks.
// Under the admin secret like the rest of the API; the pages themselves are lib/dashboard/pages.ts.
import type { FastifyInstance } from 'fastify'
import { nextTick } from '../lib/domain/schedule.js'
import { errors } from '../lib/errors.js'
import { errorReplies, errorSchema, typed } from '../lib/http/crud.js'
import { MAX_OVERVIEW_STREAMS, OverviewFeed } from '../lib/http/overview-feed.js'
import { countCrons, listCrons } from '../lib/store/crons.js'
import { MAX_LIMIT } from '../lib/store/list.js'
import { OVERVIEW_COUNT_CAP } from '../lib/store/overview.js'
import { createPool } from '../lib/db/pool.js'

/** the crons page shows this many ticks ahead */
export const NEXT_TICKS = 5

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
        type: 'object',
        description: 'the last 60 minutes, oldest first: delivered[i] and failed[i] are minute i after from',
        properties: {
          from: { type: 'string', format: 'date-time' },
          delivered: { type: 'array', items: { type: 'integer' } },
          failed: { type: 'array', items: { type: 'integer' } }
        }
      }
    }
  }
}

const cronsPage = {
  type: 'object',
  properties: {
    total: { type: 'integer' },
    crons: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          id: { type: 'integer' },
          queueId: { type: 'integer' },
          schedule: { type: 'string' },
          timezone: { type: 'string' },
          paused: { type: 'boolean' },
          missedTicks: { type: 'string' },
          lastTickAt: { type: ['string', 'null'], format: 'date-time' },
          nextTicks: { type: 'array', items: { type: 'string', format: 'date-time' } }
        }
      }
    }
  }
}

/** The scheduler's next tick, then the ones after it by the schedule. */
function nextTicks (c: { schedule: string, timezone: string, nextTickAt: Date | null }): Date[] {
  const ticks: Date[] = []
  let at = c.nextTickAt ?? nextTick(c.schedule, c.timezone, new Date())
  while (ticks.length < NEXT_TICKS) {
    ticks.push(at)
    at = nextTick(c.schedule, c.timezone, at)
  }
  return ticks
}

export default async function dashboardRoutes (instance: FastifyInstance): Promise<void> {
  const app = typed(instance)
  // the overview reads on a connection of its own: however many dashboards poll, the API's writes keep
  // every connection of theirs. JIT off: the statement's estimated cost is high (a count per queue),
  // and compiling it each second cost more than running it (an attack round: 272 ms against 117 ms)
  const { db } = app.config
  const reads = createPool(db.connectionString!, {
    max: 1, log: app.log, statementTimeoutMs: db.statementTimeoutMs, name: 'hookpost-dashboard', options: '-c jit=off'
  })
  const feed = new OverviewFeed(reads, app.log as any, { leaseMs: app.config.hooks.leaseMs })
  app.addHook('preClose', async () => { feed.close() })
  app.addHook('onClose', async () => { await reads.end() })

  app.get('/api/overview/stream', {
    schema: {
      tags: ['dashboard'],
      summary: 'the overview, live: Server-Sent Events, an `overview` event (data: the overview) every second',
      description: `At most ${MAX_OVERVIEW_STREAMS} streams are open at once per process (then 429). A \`same\` ` +
        'event says nothing changed since the last overview; a `problem` event says the overview could not be ' +
        'read this second, and the stream goes on. A client that reads nothing for 30 s is cut.',
      operationId: 'streamDashboardOverview',
      produces: ['text/event-stream'],
      response: { ...errorReplies, 429: errorSchema, 200: { description: 'text/event-stream', type: 'string' } }
    }
  }, async (req, reply) => {
    const stream = feed.subscribe(req.raw.socket)
    if (stream === null) throw new errors.HOOKPOST_ERR_TOO_MANY_STREAMS(MAX_OVERVIEW_STREAMS)
    req.raw.once('close', () => stream.destroy())
    return await reply
      .header('content-type', 'text/event-stream; charset=utf-8')
      .header('cache-control', 'no-store')
      // no proxy buffering: an update a second is the point
      .header('x-accel-buffering', 'no')
      .send(stream as any)
  })

  app.get('/api/crons', {
    schema: {
      tags: ['dashboard'],
      summary: `crons, ${MAX_LIMIT} a page, each with its next ${NEXT_TICKS} ticks`,
      operationId: 'getDashboardCrons',
      querystring: {
        type: 'object',
        properties: { offset: { type: 'integer', minimum: 0, maximum: 2_147_483_647, default: 0 } },
        additionalProperties: false
      },
      response: { ...errorReplies, 200: cronsPage }
    }
  }, async (req) => {
    const crons = await listCrons(app.pool,
      { limit: MAX_LIMIT, offset: req.query.offset, where: [], orderBy: [{ field: 'id', direction: 'asc' }] })
    return {
      total: await countCrons(app.pool, []),
      crons: crons.map(c => ({ ...c, nextTicks: nextTicks(c) }))
    }
  })

  app.get('/api/overview', {
    schema: {
      tags: ['dashboard'],
      summary: 'every queue: state, backlog, and the last hour\'s deliveries per minute',
      operationId: 'getDashboardOverview',
      response: { 200: overview }
    }
  }, async () => await feed.read())
}
