// Resolvers are thin: they turn GraphQL arguments into the domain calls REST makes, with the same
// validation. Relation fields go through loaders, one query per field per request, never one per row.
import type { FastifyInstance } from 'fastify'
import { GraphQLScalarType, Kind, type ValueNode } from 'graphql'
import { bulk, deleted, idsToDelete, insertAll, saved, writeContext, type Resource } from '../api/crud.js'
import { filtersOf, fromArgs, relationLimit } from '../api/list-query.js'
import { cronResource, messageResource, queueResource, signingSecretInput } from '../api/resources.js'
import { toId, validate } from '../api/validate.js'
import { errors } from '../errors.js'
import { cronsOfQueues, getCronsByIds, updateCron, type Cron } from '../store/crons.js'
import { MAX_LIMIT, type ListQuery } from '../store/list.js'
import { createMessages, messagesOfParents, type Message } from '../store/messages.js'
import { getQueuesByIds, queuesDeadLetteringTo, type Queue } from '../store/queues.js'
import { attemptsOf, redriveQueue, retryMessage } from '../store/redrive.js'
import { rotateSigningSecret } from '../store/signing-secrets.js'
import { eventTypeResource, publish, publishInput, replayInput } from '../api/events.js'
import { countEvents, eventEntity, getEvent, getEventsByIds, listEvents, type Event } from '../store/events.js'
import { type EventType } from '../store/event-types.js'
import { replayQueue, type ReplayInput } from '../store/replay.js'
import { countedSubscription, type SubscriberCount } from './subscribers.js'

type Args = Record<string, any>
interface Ctx { app: FastifyInstance }

export const TOPICS = { delivered: 'MESSAGE_DELIVERED', failed: 'MESSAGE_FAILED' } as const

/** The topic and field of an entity event: queueSaved, messageDeleted, … */
export function entityTopic (entity: string, kind: 'saved' | 'deleted'): { topic: string, field: string } {
  const field = `${entity}${kind === 'saved' ? 'Saved' : 'Deleted'}`
  return { topic: `ENTITY_${field}`, field }
}
const ENTITY_SUBSCRIPTIONS = Object.fromEntries(['queue', 'message', 'cron'].flatMap(entity =>
  (['saved', 'deleted'] as const).map(kind => {
    const { topic, field } = entityTopic(entity, kind)
    return [field, { subscribe: subscription(topic, field) }]
  })))

const ID_FIELDS = ['id', 'queueId', 'deadLetterQueueId', 'cronId', 'deadLetterOf', 'eventId']

/**
 * GraphQL input -> the REST body shape: ids as numbers, absent fields dropped, bodyJson (a JSON body)
 * as REST's body; then REST's schema.
 */
function inputOf (raw: Args | null, schema: object, name = 'input'): Args {
  if (raw === null) throw new errors.HOOKPOST_ERR_INVALID_FIELD(name, 'must be an input, not null')
  const out: Args = {}
  for (const [k, v] of Object.entries(raw)) {
    if (v === undefined) continue
    out[k] = v !== null && ID_FIELDS.includes(k) ? toId(v, `${name}/${k}`) : v
  }
  // pg-hooks' JSON scalar takes headers as a JSON string literal too ("{\"x-a\": \"1\"}"), as its tests pass them
  if (typeof out.headers === 'string' && /^\s*\{/.test(out.headers)) {
    try {
      out.headers = JSON.parse(out.headers)
    } catch {
      throw new errors.HOOKPOST_ERR_INVALID_FIELD(`${name}/headers`, 'a string of headers must be a JSON object')
    }
  }
  if ('bodyJson' in out) {
    if (out.body !== undefined && out.body !== null) {
      throw new errors.HOOKPOST_ERR_INVALID_FIELD(`${name}/bodyJson`,
        'give body (text) or bodyJson (a JSON value), not both')
    }
    out.body = out.bodyJson
    delete out.bodyJson
  }
  // read-only fields pg-hooks' inputs carry (failed, sentAt, createdAt, …) are dropped, as REST drops them
  const writable = (schema as { properties?: object }).properties ?? {}
  for (const k of Object.keys(out)) if (k !== 'id' && !(k in writable)) delete out[k]
  const { id, ...rest } = out
  validate(schema, rest, 'input')
  return out
}

/** A relation field's `limit`: the largest asked for by any parent, within a list's bound. */
function limitOf (qs: Query<{ limit?: number }>): number {
  return Math.max(...qs.map(q => relationLimit(q.params.limit)))
}

/** save = create, or update when input.id is given (Platformatic's rule) */
async function save<T> (app: FastifyInstance, r: Resource<T>, raw: Args): Promise<T> {
  const ctx = writeContext(app)
  if (raw.id !== undefined && raw.id !== null) {
    const { id, ...input } = inputOf(raw, r.update)
    return saved(ctx, r, [await r.modify(app.pool, id, input, ctx)])[0]!
  }
  const { item, created } = await r.insert(app.pool, inputOf(raw, r.create), ctx)
  return created ? saved(ctx, r, [item])[0]! : item
}

async function removeWhere<T> (app: FastifyInstance, r: Resource<T>, where: Args, query: { force?: boolean }):
Promise<T[]> {
  const out: T[] = []
  const ids = await idsToDelete(app.pool, r.entity, filtersOf(r.entity, where))
  for (const id of ids) out.push(await r.remove(app.pool, id, query))
  return deleted(writeContext(app), r, out)
}

function list<T> (r: Pick<Resource<T>, 'entity' | 'list' | 'get' | 'count'>) {
  return {
    list: async (_: unknown, args: Args, { app }: Ctx) => await r.list(app.pool, fromArgs(r.entity, args)),
    get: async (_: unknown, args: Args, { app }: Ctx) => {
      try {
        return await r.get(app.pool, toId(args.id, 'id'))
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 404) return null // a missing row is null in GraphQL
        throw err
      }
    },
    count: async (_: unknown, args: Args, { app }: Ctx) =>
      ({ total: await r.count(app.pool, filtersOf(r.entity, args.where)) })
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
      default: throw new errors.HOOKPOST_ERR_BAD_REQUEST('variables are not supported inside a JSON literal')
    }
  }
})

// Platformatic's page size: an integer; its bounds are a list's (0 to MAX_LIMIT), checked with the
// other list parameters so that the error names `limit`
const LimitInt = new GraphQLScalarType({
  name: 'LimitInt',
  serialize: (v) => v,
  parseValue: (v) => {
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      throw new TypeError('LimitInt: an integer from 0 to ' + MAX_LIMIT)
    }
    return v
  },
  parseLiteral: (ast: ValueNode) => {
    if (ast.kind !== Kind.INT) throw new TypeError('LimitInt: an integer from 0 to ' + MAX_LIMIT)
    return Number(ast.value)
  }
})

// pg-hooks' body is a String: a JSON body reads as its JSON text there, and as itself in bodyJson
const bodyFields = {
  body: (r: { body: unknown }) => r.body === null || typeof r.body === 'string' ? r.body : JSON.stringify(r.body),
  bodyJson: (r: { body: unknown }) => typeof r.body === 'string' ? null : r.body
}

const DateTime = new GraphQLScalarType({
  name: 'DateTime',
  serialize: (v) => (v instanceof Date ? v.toISOString() : String(v))
})

const Q = list(queueResource)
const M = list(messageResource)
const C = list(cronResource)
const E = list<Event>({ entity: eventEntity, list: listEvents, get: getEvent, count: countEvents })
const ET = list(eventTypeResource)

export const resolvers = {
  JSON: JSONScalar,
  DateTime,
  LimitInt,
  Query: {
    queues: Q.list,
    getQueueById: Q.get,
    countQueues: Q.count,
    messages: M.list,
    getMessageById: M.get,
    countMessages: M.count,
    crons: C.list,
    getCronById: C.get,
    countCrons: C.count,
    events: E.list,
    getEventById: E.get,
    countEvents: E.count,
    eventTypes: ET.list,
    getEventTypeById: ET.get,
    countEventTypes: ET.count
  },
  Message: {
    ...bodyFields,
    attemptCount: (m: Message) => (m as unknown as { attempts: number }).attempts
  },
  Cron: bodyFields,
  Mutation: {
    saveQueue: async (_: unknown, { input }: Args, { app }: Ctx) => await save<Queue>(app, queueResource, input),
    saveMessage: async (_: unknown, { input }: Args, { app }: Ctx) => await save<Message>(app, messageResource, input),
    saveCron: async (_: unknown, { input }: Args, { app }: Ctx) => await save<Cron>(app, cronResource, input),
    // all or nothing, like a multi-row INSERT
    insertQueues: async (_: unknown, { inputs }: Args, { app }: Ctx) =>
      await insertAll(app.pool, queueResource,
        bulk<Args>(inputs).map((i, n) => inputOf(i, queueResource.create, `inputs/${n}`)), writeContext(app)),
    // one INSERT for the lot; each message keeps its own when
    insertMessages: async (_: unknown, { inputs }: Args, { app }: Ctx) =>
      saved(writeContext(app), messageResource, await createMessages(app.pool,
        bulk<Args>(inputs).map((i, n) => inputOf(i, messageResource.create, `inputs/${n}`)),
        app.metrics.enqueuedByApi)),
    insertCrons: async (_: unknown, { inputs }: Args, { app }: Ctx) =>
      await insertAll(app.pool, cronResource,
        bulk<Args>(inputs).map((i, n) => inputOf(i, cronResource.create, `inputs/${n}`)), writeContext(app)),
    deleteQueues: async (_: unknown, { where, force }: Args, { app }: Ctx) =>
      await removeWhere(app, queueResource, where, { force: force === true }),
    deleteMessages: async (_: unknown, { where }: Args, { app }: Ctx) =>
      await removeWhere(app, messageResource, where, {}),
    deleteCrons: async (_: unknown, { where }: Args, { app }: Ctx) => await removeWhere(app, cronResource, where, {}),
    retryMessage: async (_: unknown, { id }: Args, { app }: Ctx) => await retryMessage(app.pool, toId(id, 'id')),
    redriveQueue: async (_: unknown, { id }: Args, { app }: Ctx) => await redriveQueue(app.pool, toId(id, 'id')),
    rotateSigningSecret: async (_: unknown, { queueId, secret, graceSeconds }: Args, { app }: Ctx) => {
      const opts = validate<{ secret?: string, graceSeconds?: number }>(signingSecretInput,
        { secret: secret ?? undefined, graceSeconds: graceSeconds ?? undefined }, 'args')
      return await rotateSigningSecret(app.pool, toId(queueId, 'queueId'), opts)
    },
    publishEvent: async (_: unknown, { input }: Args, { app }: Ctx) =>
      (await publish(app.pool, inputOf(input, publishInput) as any,
        { acceptUnknownTypes: app.config.hooks.acceptUnknownEventTypes })).event,
    replayQueue: async (_: unknown, { id, since, until, eventTypes }: Args, { app }: Ctx) => {
      const input = validate<ReplayInput>(replayInput,
        { since, until: until ?? undefined, eventTypes: eventTypes ?? undefined }, 'args')
      return await replayQueue(app.pool, toId(id, 'id'), input)
    },
    saveEventType: async (_: unknown, { input }: Args, { app }: Ctx) =>
      await save<EventType>(app, eventTypeResource, input),
    deleteEventTypes: async (_: unknown, { where }: Args, { app }: Ctx) =>
      await removeWhere(app, eventTypeResource, where, {}),
    pauseCron: async (_: unknown, { id }: Args, { app }: Ctx) =>
      await updateCron(app.pool, toId(id, 'id'), { paused: true }),
    resumeCron: async (_: unknown, { id }: Args, { app }: Ctx) =>
      await updateCron(app.pool, toId(id, 'id'), { paused: false })
  },
  Subscription: {
    messageDelivered: { subscribe: subscription(TOPICS.delivered, 'messageDelivered') },
    messageFailed: { subscribe: subscription(TOPICS.failed, 'messageFailed') },
    ...ENTITY_SUBSCRIPTIONS
  }
}

interface SubscriptionCtx {
  pubsub: { subscribe: (t: string) => Promise<AsyncIterable<Args>> }
  subscribers: SubscriberCount
}

function subscription (topic: string, field: string) {
  return async (_: unknown, args: Args, { pubsub, subscribers }: SubscriptionCtx) => {
    const source = (await pubsub.subscribe(topic))[Symbol.asyncIterator]()
    const wanted = args.queueId === undefined || args.queueId === null ? null : String(args.queueId)
    return countedSubscription(source,
      (payload) => wanted === null || String(payload[field].queueId) === wanted, subscribers)
  }
}

type Query<P = Args> = Array<{ obj: any, params: P }>

/**
 * A relation list with a list's arguments (Platformatic's Queue.messages(where, orderBy, limit, offset)):
 * one statement for every parent asking with the same arguments, each parent paged on its own.
 */
function pages<T> (r: Resource<T>,
  rowsOf: (pool: FastifyInstance['pool'], ids: number[], q: ListQuery) => Promise<Array<T & { parentId: number }>>) {
  return async (qs: Query, { app }: Ctx): Promise<T[][]> => {
    const groups = new Map<string, Query>()
    for (const q of qs) {
      const key = JSON.stringify(q.params)
      groups.set(key, [...(groups.get(key) ?? []), q])
    }
    const byParent = new Map<Query[number], T[]>()
    for (const group of groups.values()) {
      const rows = await rowsOf(app.pool, group.map(q => q.obj.id), fromArgs(r.entity, group[0]!.params))
      for (const q of group) byParent.set(q, rows.filter(row => row.parentId === q.obj.id))
    }
    return qs.map(q => byParent.get(q) ?? [])
  }
}

// one SQL statement per relation field per request, whatever the number of parents
export const loaders = {
  Queue: {
    deadLetterQueue: async (qs: Query, { app }: Ctx) => {
      const queues = await getQueuesByIds(app.pool, qs.map(q => q.obj.deadLetterQueueId).filter(x => x !== null))
      const byId = new Map(queues.map(q => [q.id, q]))
      return qs.map(q => byId.get(q.obj.deadLetterQueueId) ?? null)
    },
    messages: pages(messageResource, async (pool, ids, q) => await messagesOfParents(pool, 'queue_id', ids, q)),
    crons: pages(cronResource, cronsOfQueues),
    queues: pages(queueResource, queuesDeadLetteringTo)
  },
  Message: {
    queue: async (qs: Query, { app }: Ctx) => {
      const byId = new Map((await getQueuesByIds(app.pool, qs.map(q => q.obj.queueId))).map(q => [q.id, q]))
      return qs.map(q => byId.get(q.obj.queueId) ?? null)
    },
    cron: async (qs: Query, { app }: Ctx) => {
      const crons = await getCronsByIds(app.pool, qs.map(q => q.obj.cronId).filter(x => x !== null))
      const byId = new Map(crons.map(c => [c.id, c]))
      return qs.map(q => byId.get(q.obj.cronId) ?? null)
    },
    event: async (qs: Query, { app }: Ctx) => {
      const events = await getEventsByIds(app.pool, qs.map(q => q.obj.eventId).filter(x => x !== null))
      const byId = new Map(events.map(e => [e.id, e]))
      return qs.map(q => byId.get(q.obj.eventId) ?? null)
    },
    attempts: async (qs: Query<{ limit?: number }>, { app }: Ctx) => {
      const byMessage = await attemptsOf(app.pool, qs.map(q => q.obj.id), limitOf(qs))
      return qs.map(q => (byMessage.get(q.obj.id) ?? []).slice(0, q.params.limit ?? MAX_LIMIT))
    }
  },
  Cron: {
    queue: async (qs: Query, { app }: Ctx) => {
      const byId = new Map((await getQueuesByIds(app.pool, qs.map(q => q.obj.queueId))).map(q => [q.id, q]))
      return qs.map(q => byId.get(q.obj.queueId) ?? null)
    },
    messages: pages(messageResource, async (pool, ids, q) => await messagesOfParents(pool, 'cron_id', ids, q))
  },
  Event: {
    messages: pages(messageResource, async (pool, ids, q) => await messagesOfParents(pool, 'event_id', ids, q))
  }
}
