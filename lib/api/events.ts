// Events as REST and GraphQL both see them: what may be published, the event type catalogue with its
// payload schemas, and replay. The fan-out itself is SQL (lib/store/events.ts).
import type { ValidateFunction } from 'ajv'
import safeRegex from 'safe-regex2'
import type { Pool } from 'pg'
import type { Queryable } from '../db/pool.js'
import { bodySchema, jsonbProblem, unsayable } from '../domain/body.js'
import {
  EVENT_PATTERN_PATTERN, EVENT_TYPE_PATTERN, MAX_EVENT_PATTERNS, MAX_SCHEMA_BYTES, MAX_SCHEMA_DEPTH, RESERVED_PREFIX
} from '../domain/events.js'
import { headersSchema } from '../domain/headers.js'
import { errors } from '../errors.js'
import {
  findEventType, countEventTypes, createEventType, deleteEventType, eventTypeEntity, getEventType,
  listEventTypes, updateEventType, type EventType, type EventTypeInput
} from '../store/event-types.js'
import { publishEvent, type Event, type EventInput } from '../store/events.js'
import type { Resource } from './crud.js'
import { checkAgainst, compileUserSchema, NO_NUL } from './validate.js'

const idempotencyKey = {
  type: 'string',
  minLength: 1,
  maxLength: 255,
  pattern: '^[\\u0020-\\u007e]+$',
  description: 'printable ASCII; a repeat with the same key returns the first event (200) and creates nothing'
} as const

export const publishInput = {
  type: 'object',
  properties: {
    type: { type: 'string', pattern: EVENT_TYPE_PATTERN, maxLength: 255, description: 'e.g. order.created' },
    payload: { ...bodySchema, description: 'any JSON value; each subscribed queue receives it (or its envelope)' },
    headers: { ...headersSchema, description: 'sent with each delivery, over the queue headers' },
    when: { type: 'string', format: 'date-time', description: 'deliver at or after this time; default now' },
    idempotencyKey
  },
  required: ['type', 'payload'],
  additionalProperties: false
} as const

export const eventItem = {
  title: 'Event',
  type: 'object',
  properties: {
    id: { type: 'integer' },
    type: { type: 'string' },
    payload: {},
    headers: { type: 'object', additionalProperties: { type: 'string' } },
    when: { type: 'string', format: 'date-time' },
    idempotencyKey: { type: ['string', 'null'] },
    endpoints: { type: 'integer', description: 'how many queues it went to when it was published' },
    createdAt: { type: 'string', format: 'date-time' }
  }
}

export const deliveryItem = {
  title: 'Delivery',
  type: 'object',
  properties: {
    messageId: { type: 'integer' },
    queueId: { type: 'integer' },
    state: { type: 'string', enum: ['pending', 'sent', 'failed'] },
    attempts: { type: 'integer' },
    lastStatus: { type: ['integer', 'null'] },
    lastError: { type: ['string', 'null'] },
    sentAt: { type: ['string', 'null'], format: 'date-time' },
    replay: { type: 'boolean' }
  }
}

export const replayInput = {
  type: 'object',
  properties: {
    since: { type: 'string', format: 'date-time', description: 'events published at or after this time' },
    until: { type: 'string', format: 'date-time', description: 'and before this time; default now' },
    eventTypes: {
      type: 'array',
      minItems: 1,
      maxItems: MAX_EVENT_PATTERNS,
      items: { type: 'string', pattern: EVENT_PATTERN_PATTERN },
      description: 'patterns to replay instead of the queue\'s own eventTypes'
    }
  },
  required: ['since'],
  additionalProperties: false
} as const

export const replayResult = {
  type: 'object',
  properties: {
    queueId: { type: 'integer' },
    replayed: { type: 'integer', description: 'messages created' },
    more: { type: 'boolean', description: 'the per-call cap was reached: call again for the rest' }
  }
}

// Compiled payload schemas, by catalogue row and version: a publish compiles its type's schema once,
// and an edit (a new updated_at) is seen by every process at its next publish. Bounded.
const VALIDATORS_MAX = 1000
const validators = new Map<string, ValidateFunction>()

function payloadValidator (t: EventType): ValidateFunction {
  const key = `${t.id}:${t.updatedAt.getTime()}`
  let fn = validators.get(key)
  if (fn === undefined) {
    fn = compileUserSchema(t.schema, 'schema')
    if (validators.size >= VALIDATORS_MAX) validators.clear()
    validators.set(key, fn)
  }
  return fn
}

// values inside a schema that are data, not schema: a "pattern" key there is not a regular expression
const DATA_KEYWORDS = new Set(['const', 'enum', 'default', 'examples'])
// values a recursion without end fails on whatever they are: one of each JSON type
const PROBES: unknown[] = [null, true, 0, '', [], {}]

/** The first regular expression in a schema (pattern, patternProperties) that could backtrack exponentially. */
function unsafePattern (schema: unknown): string | undefined {
  const stack = [schema]
  while (stack.length > 0) {
    const node = stack.pop()
    if (node === null || typeof node !== 'object') continue
    if (Array.isArray(node)) {
      for (const child of node) stack.push(child)
      continue
    }
    for (const [k, v] of Object.entries(node)) {
      if (DATA_KEYWORDS.has(k)) continue
      if (k === 'pattern' && typeof v === 'string' && !safeRegex(v)) return v
      if (k === 'patternProperties' && v !== null && typeof v === 'object') {
        const bad = Object.keys(v).find(p => !safeRegex(p))
        if (bad !== undefined) return bad
      }
      stack.push(v)
    }
  }
  return undefined
}

/**
 * A payload schema as it may be stored: bounded in size and depth, with no regular expression that can
 * backtrack exponentially (attack round: "^(a+)+$" held the event loop for minutes on a 40-character
 * payload), one ajv compiles, and one that evaluates (attack round: {"$ref": "#"} overflowed the stack
 * at every publish).
 */
function checkPayloadSchema (schema: unknown): void {
  if (schema === undefined || schema === null) return
  const problem = unsayable(schema, MAX_SCHEMA_DEPTH) ?? jsonbProblem(schema)
  if (problem !== undefined) throw new errors.HOOKPOST_ERR_INVALID_FIELD('schema', problem)
  if (Buffer.byteLength(JSON.stringify(schema)) > MAX_SCHEMA_BYTES) {
    throw new errors.HOOKPOST_ERR_INVALID_FIELD('schema', `larger than ${MAX_SCHEMA_BYTES} bytes`)
  }
  const pattern = unsafePattern(schema)
  if (pattern !== undefined) {
    throw new errors.HOOKPOST_ERR_INVALID_FIELD('schema', `the pattern ${JSON.stringify(pattern).slice(0, 100)} ` +
      'could take exponential time to match (a repetition inside a repetition): write it without one, or use a format')
  }
  const fn = compileUserSchema(schema, 'schema')
  for (const value of PROBES) {
    try {
      fn(value)
    } catch (err) {
      if (!(err instanceof RangeError)) throw err
      throw new errors.HOOKPOST_ERR_INVALID_FIELD('schema', 'it refers to itself without end ($ref to itself)')
    }
  }
}

/** A description text can hold as given (attack round: half a surrogate pair was stored as U+FFFD). */
function checkDescription (description: string | null | undefined): void {
  const problem = typeof description === 'string' ? jsonbProblem(description) : undefined
  if (problem !== undefined) throw new errors.HOOKPOST_ERR_INVALID_FIELD('description', problem)
}

export interface PublishOptions {
  /** config.hooks.acceptUnknownEventTypes */
  acceptUnknownTypes: boolean
}

/**
 * Publish through the API: the type is looked up in the catalogue, refused when unknown and the setting
 * says so, and the payload checked against the type's schema, before the one statement that stores the
 * event and its messages.
 */
export async function publish (db: Queryable, input: EventInput, opts: PublishOptions):
Promise<{ event: Event, created: boolean }> {
  if (input.type.startsWith(RESERVED_PREFIX)) {
    throw new errors.HOOKPOST_ERR_INVALID_FIELD('type', `the ${RESERVED_PREFIX}* types are hookpost's own`)
  }
  if (input.idempotencyKey?.startsWith(RESERVED_PREFIX) === true) {
    throw new errors.HOOKPOST_ERR_INVALID_FIELD('idempotencyKey',
      `keys beginning with ${RESERVED_PREFIX} are hookpost's own`)
  }
  const problem = unsayable(input.payload) ?? jsonbProblem(input.payload)
  if (problem !== undefined) throw new errors.HOOKPOST_ERR_INVALID_FIELD('payload', problem)
  const type = await findEventType(db, input.type)
  if (type === undefined && !opts.acceptUnknownTypes) {
    throw new errors.HOOKPOST_ERR_INVALID_FIELD('type',
      `${input.type} is not in the event type catalogue (/event-types), and unknown types are refused here`)
  }
  if (type !== undefined && type.schema !== null) checkAgainst(payloadValidator(type), input.payload, 'payload')
  return await publishEvent(db, input)
}

const eventTypeWritable = {
  name: { type: 'string', pattern: EVENT_TYPE_PATTERN },
  description: { type: ['string', 'null'], maxLength: 4096, pattern: NO_NUL },
  schema: {
    type: ['object', 'boolean', 'null'],
    description: 'a JSON Schema (draft-07) the payloads of this type must match; null: any payload'
  },
  deprecated: { type: 'boolean', description: 'still accepted; shown as deprecated in the catalogue' }
}

const eventTypeItem = {
  title: 'EventType',
  type: 'object',
  properties: {
    id: { type: 'integer' },
    ...eventTypeWritable,
    schema: {},
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' }
  }
}

export const eventTypeResource: Resource<EventType> = {
  entity: eventTypeEntity,
  tag: 'eventTypes',
  item: eventTypeItem,
  create: { type: 'object', properties: eventTypeWritable, required: ['name'], additionalProperties: false },
  update: { type: 'object', properties: eventTypeWritable, minProperties: 1, additionalProperties: false },
  list: listEventTypes,
  count: countEventTypes,
  get: getEventType,
  insert: async (db: Queryable, input: EventTypeInput) => {
    checkDescription(input.description)
    checkPayloadSchema(input.schema)
    return { item: await createEventType(db, input), created: true }
  },
  modify: async (db: Queryable, id: number, input: EventTypeInput) => {
    checkDescription(input.description)
    checkPayloadSchema(input.schema)
    return await updateEventType(db, id, input)
  },
  remove: async (pool: Pool, id: number) => await deleteEventType(pool, id)
}
