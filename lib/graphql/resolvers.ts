// Resolvers are thin: they turn GraphQL arguments into the domain calls REST makes, with the same
// validation. Relation fields go through loaders, one query per field per request, never one per row.
import type { FastifyInstance } from 'fastify'
import { GraphQLScalarType, Kind, type ValueNode } from 'graphql'
import type { Pool } from 'pg'
import { withTransaction } from '../db/pool.js'
import { writeContext, type Resource } from '../http/crud.js'
import { errors } from '../errors.js'
import { parseFilterValue } from '../http/list-query.js'
import { cronResource, messageResource, queueResource } from '../resources.js'
import { cronsOfQueues, getCronsByIds, updateCron, type Cron } from '../store/crons.js'
import { FILTER_OPS, MAX_BULK_INPUTS, MAX_LIMIT, idsStatement, type Entity, type Filter, type ListQuery, type Order } from '../store/list.js'
import { createMessages, deleteMessage, messagesOfQueues, type Message } from '../store/messages.js'
import { getQueuesByIds, type Queue } from '../store/queues.js'
import { attemptsOf, redriveQueue, retryMessage } from '../store/redrive.js'
import { rotateSigningSecret } from '../store/signing-secrets.js'
import { validate } from '../validate.js'
import { countedSubscription, type SubscriberCount } from './subscribers.js'

type Args = Record<string, any>
interface Ctx { app: FastifyInstance }

export const TOPICS = { delivered: 'MESSAGE_DELIVERED', failed: 'MESSAGE_FAILED' } as const

// ids travel as GraphQL IDs (strings); the store wants numbers
function toId (value: unknown, field: string): number {
  const s = String(value)
  if (!/^\d{1,15}$/.test(s) || Number(s) < 1) throw new errors.InvalidField(field, `expected a positive integer id, got ${JSON.stringify(value)}`)
  return Number(s)
}

const ID_FIELDS = ['id', 'queueId', 'deadLetterQueueId', 'cronId', 'deadLetterOf']

function filtersOf (entity: Entity, where: Args | null | undefined): Filter[] {
  const out: Filter[] = []
  for (const [field, ops] of Object.entries(where ?? {})) {
    const def = entity.fields[field]!
    for (const [op, value] of Object.entries(ops as Args)) {
      if (value === undefined || !(FILTER_OPS as readonly string[]).includes(op)) continue
      const name = `where.${field}.${op}`
      const one = (v: unknown): unknown => {
        if (ID_FIELDS.includes(field)) return toId(v, name)
        return typeof v === 'string' ? parseFilterValue(name, def.type, v) : v
      }
      out.push({ field, op: op as Filter['op'], value: value === null ? null : Array.isArray(value) ? value.map(one) : one(value) })
    }
  }
  return out
}

function listQueryOf (entity: Entity, args: Args): ListQuery {
  const limit = args.limit ?? MAX_LIMIT
  if (!Number.isInteger(limit) || limit < 0 || limit > MAX_LIMIT) throw new errors.InvalidField('limit', `must be between 0 and ${MAX_LIMIT}`)
  const offset = args.offset ?? 0
  if (!Number.isInteger(offset) || offset < 0) throw new errors.InvalidField('offset', 'must be >= 0')
  const orderBy: Order[] = (args.orderBy ?? []).map((o: Args) => ({ field: o.field, direction: o.direction === 'DESC' ? 'desc' : 'asc' }))
  return { limit, offset, where: filtersOf(entity, args.where), orderBy }
}

/** GraphQL input -> the REST body shape: ids as numbers, absent fields dropped; then REST's schema. */
function inputOf (raw: Args, schema: object): Args {
  const out: Args = {}
  for (const [k, v] of Object.entries(raw)) {
    if (v === undefined) continue
    out[k] = v !== null && ID_FIELDS.includes(k) ? toId(v, `input/${k}`) : v
  }
  const { id, ...rest } = out
  validate(schema, rest, 'input')
  return out
}

async function idsMatching (pool: Pool, entity: Entity, where: Args | null | undefined): Promise<number[]> {
  const filters = filtersOf(entity, where)
  if (filters.length === 0) throw new errors.InvalidField('where', 'is required: a delete names what it deletes')
  // one row past the cap tells "too many" without reading them all
  const { rows } = await pool.query(idsStatement(entity, filters, MAX_BULK_INPUTS + 1))
  if (rows.length > MAX_BULK_INPUTS) throw new errors.InvalidField('where', `matches more than ${MAX_BULK_INPUTS} rows; delete in smaller steps`)
  return rows.map(r => r.id as number)
}

/** Bulk inputs, capped so that one call stays one bounded statement. */
function bulk (inputs: Args[]): Args[] {
  if (inputs.length > MAX_BULK_INPUTS) throw new errors.InvalidField('inputs', `at most ${MAX_BULK_INPUTS} per call, got ${inputs.length}`)
  return inputs
}

/** A relation field's `limit`, with REST's bounds. */
function relationLimit (qs: Query<{ limit?: number }>): number {
  const limit = Math.max(...qs.map(q => q.params.limit ?? MAX_LIMIT))
  if (!Number.isInteger(limit) || limit < 0 || limit > MAX_LIMIT) throw new errors.InvalidField('limit', `must be between 0 and ${MAX_LIMIT}`)
  return limit
}

/** save = create, or update when input.id is given (Platformatic's rule) */
async function save<T> (app: FastifyInstance, r: Resource<T>, raw: Args): Promise<T> {
  if (raw.id !== undefined && raw.id !== null) {
    const { id, ...input } = inputOf(raw, r.update)
    return await r.modify(app.pool, id, input, writeContext(app))
  }
  return (await r.insert(app.pool, inputOf(raw, r.create), writeContext(app))).item
}

function list<T> (r: Resource<T>) {
  return {
    list: async (_: unknown, args: Args, { app }: Ctx) => await r.list(app.pool, listQueryOf(r.entity, args)),
    get: async (_: unknown, args: Args, { app }: Ctx) => {
      try {
        return await r.get(app.pool, toId(args.id, 'id'))
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 404) return null // a missing row is null in GraphQL
        throw err
      }
    },
    count: async (_: unknown, args: Args, { app }: Ctx) => ({ total: await r.count(app.pool, filtersOf(r.entity, args.where)) })
  }
}

const JSONScalar = new GraphQLScalarType({
  name: 'JSON',
  serialize: (v) => v,
  parseValue: (v) => v,
  parseLiteral: function literal (ast: ValueNode): unknown {
    switch (ast.kind) {
      case Kind.STRING: case Kind.BOOLEAN: return ast.value
      case Kind.INT: case Kind.FLOAT: return Number(ast.value)
      case Kind.OBJECT: return Object.fromEntries(ast.fields.map(f => [f.name.value, literal(f.value)]))
      case Kind.LIST: return ast.values.map(literal)
      case Kind.NULL: return null
      default: throw new errors.BadRequest('variables are not supported inside a JSON literal')
    }
  }
})

const DateTime = new GraphQLScalarType({
  name: 'DateTime',
  serialize: (v) => (v instanceof Date ? v.toISOString() : String(v))
})

const Q = list(queueResource)
const M = list(messageResource)
const C = list(cronResource)

export const resolvers = {
  JSON: JSONScalar,
  DateTime,
  Query: {
    queues: Q.list,
    getQueueById: Q.get,
    countQueues: Q.count,
    messages: M.list,
    getMessageById: M.get,
    countMessages: M.count,
    crons: C.list,
    getCronById: C.get,
    countCrons: C.count
  },
  Message: {
    attemptCount: (m: Message) => (m as unknown as { attempts: number }).attempts
  },
  Mutation: {
    saveQueue: async (_: unknown, { input }: Args, { app }: Ctx) => await save<Queue>(app, queueResource, input),
    saveMessage: async (_: unknown, { input }: Args, { app }: Ctx) => await save<Message>(app, messageResource, input),
    saveCron: async (_: unknown, { input }: Args, { app }: Ctx) => await save<Cron>(app, cronResource, input),
    // all or nothing, like a multi-row INSERT
    insertQueues: async (_: unknown, { inputs }: Args, { app }: Ctx) =>
      await withTransaction(app.pool, async (c) => {
        const out = []
        for (const i of bulk(inputs)) out.push((await queueResource.insert(c as unknown as Pool, inputOf(i, queueResource.create), writeContext(app))).item)
        return out
      }),
    // one INSERT for the lot; each message keeps its own when
    insertMessages: async (_: unknown, { inputs }: Args, { app }: Ctx) =>
      await createMessages(app.pool, bulk(inputs).map((i: Args) => inputOf(i, messageResource.create)), app.metrics.enqueuedByApi),
    insertCrons: async (_: unknown, { inputs }: Args, { app }: Ctx) =>
      await withTransaction(app.pool, async (c) => {
        const out = []
        for (const i of bulk(inputs)) out.push((await cronResource.insert(c as unknown as Pool, inputOf(i, cronResource.create), writeContext(app))).item)
        return out
      }),
    deleteQueues: async (_: unknown, { where, force }: Args, { app }: Ctx) => {
      const out = []
      for (const id of await idsMatching(app.pool, queueResource.entity, where)) out.push(await queueResource.remove(app.pool, id, { force: force === true }))
      return out
    },
    deleteMessages: async (_: unknown, { where }: Args, { app }: Ctx) => {
      const out = []
      for (const id of await idsMatching(app.pool, messageResource.entity, where)) out.push(await deleteMessage(app.pool, id))
      return out
    },
    deleteCrons: async (_: unknown, { where }: Args, { app }: Ctx) => {
      const out = []
      for (const id of await idsMatching(app.pool, cronResource.entity, where)) out.push(await cronResource.remove(app.pool, id, {}))
      return out
    },
    retryMessage: async (_: unknown, { id }: Args, { app }: Ctx) => await retryMessage(app.pool, toId(id, 'id')),
    redriveQueue: async (_: unknown, { id }: Args, { app }: Ctx) => await redriveQueue(app.pool, toId(id, 'id')),
    rotateSigningSecret: async (_: unknown, { queueId, secret, graceSeconds }: Args, { app }: Ctx) => {
      if (graceSeconds !== undefined && graceSeconds !== null && (graceSeconds < 0 || graceSeconds > 2_592_000)) throw new errors.InvalidField('graceSeconds', 'must be between 0 and 2592000')
      return await rotateSigningSecret(app.pool, toId(queueId, 'queueId'), { secret: secret ?? undefined, graceSeconds: graceSeconds ?? undefined })
    },
    pauseCron: async (_: unknown, { id }: Args, { app }: Ctx) => await updateCron(app.pool, toId(id, 'id'), { paused: true }),
    resumeCron: async (_: unknown, { id }: Args, { app }: Ctx) => await updateCron(app.pool, toId(id, 'id'), { paused: false })
  },
  Subscription: {
    messageDelivered: { subscribe: subscription(TOPICS.delivered, 'messageDelivered') },
    messageFailed: { subscribe: subscription(TOPICS.failed, 'messageFailed') }
  }
}

interface SubscriptionCtx { pubsub: { subscribe: (t: string) => Promise<AsyncIterable<Args>> }, subscribers: SubscriberCount }

function subscription (topic: string, field: string) {
  return async (_: unknown, args: Args, { pubsub, subscribers }: SubscriptionCtx) => {
    const source = (await pubsub.subscribe(topic))[Symbol.asyncIterator]()
    const wanted = args.queueId === undefined || args.queueId === null ? null : String(args.queueId)
    return countedSubscription(source, (payload) => wanted === null || String(payload[field].queueId) === wanted, subscribers)
  }
}

type Query<P = Args> = Array<{ obj: any, params: P }>

// one SQL statement per relation field per request, whatever the number of parents
export const loaders = {
  Queue: {
    deadLetterQueue: async (qs: Query, { app }: Ctx) => {
      const byId = new Map((await getQueuesByIds(app.pool, qs.map(q => q.obj.deadLetterQueueId).filter(x => x !== null))).map(q => [q.id, q]))
      return qs.map(q => byId.get(q.obj.deadLetterQueueId) ?? null)
    },
    messages: async (qs: Query<{ limit?: number }>, { app }: Ctx) => {
      const rows = await messagesOfQueues(app.pool, qs.map(q => q.obj.id), relationLimit(qs))
      return qs.map(q => rows.filter(m => m.queueId === q.obj.id).slice(0, q.params.limit ?? MAX_LIMIT))
    },
    crons: async (qs: Query<{ limit?: number }>, { app }: Ctx) => {
      const rows = await cronsOfQueues(app.pool, qs.map(q => q.obj.id), relationLimit(qs))
      return qs.map(q => rows.filter(c => c.queueId === q.obj.id).slice(0, q.params.limit ?? MAX_LIMIT))
    }
  },
  Message: {
    queue: async (qs: Query, { app }: Ctx) => {
      const byId = new Map((await getQueuesByIds(app.pool, qs.map(q => q.obj.queueId))).map(q => [q.id, q]))
      return qs.map(q => byId.get(q.obj.queueId) ?? null)
    },
    cron: async (qs: Query, { app }: Ctx) => {
      const byId = new Map((await getCronsByIds(app.pool, qs.map(q => q.obj.cronId).filter(x => x !== null))).map(c => [c.id, c]))
      return qs.map(q => byId.get(q.obj.cronId) ?? null)
    },
    attempts: async (qs: Query<{ limit?: number }>, { app }: Ctx) => {
      const byMessage = await attemptsOf(app.pool, qs.map(q => q.obj.id), relationLimit(qs))
      return qs.map(q => (byMessage.get(q.obj.id) ?? []).slice(0, q.params.limit ?? MAX_LIMIT))
    }
  },
  Cron: {
    queue: async (qs: Query, { app }: Ctx) => {
      const byId = new Map((await getQueuesByIds(app.pool, qs.map(q => q.obj.queueId))).map(q => [q.id, q]))
      return qs.map(q => byId.get(q.obj.queueId) ?? null)
    }
  }
}
