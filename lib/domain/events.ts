// Events: the names, patterns and payload formats that publishing and subscriptions share. The SQL side
// has the same rules (migrations/010.do.sql: event_type_valid, event_patterns_valid); test/events-sql.test.ts
// checks that the two agree.

/** An event type's name: 1 to 255 of A-Z a-z 0-9 _ . - */
export const EVENT_TYPE_PATTERN = '^[A-Za-z0-9_.-]{1,255}$'

/**
 * A queue's subscription pattern: a type name (matches exactly), `<prefix>.*` (one or more segments
 * after `<prefix>.`), or `*` (every type).
 */
export const EVENT_PATTERN_PATTERN = '^(\\*|[A-Za-z0-9_.-]{1,253}\\.\\*|[A-Za-z0-9_.-]{1,255})$'

/** hookpost's own event types and idempotency keys begin so (lib/services/operational-events.ts): nobody else's may */
export const RESERVED_PREFIX = 'hookpost.'

/** patterns per queue */
export const MAX_EVENT_PATTERNS = 100

/** what a queue receives for an event: the payload as published, or the Standard Webhooks envelope */
export const PAYLOAD_FORMATS = ['raw', 'standard-webhooks'] as const
export type PayloadFormat = typeof PAYLOAD_FORMATS[number]

/** A payload's JSON Schema, as text: bounded, as a message body is */
export const MAX_SCHEMA_BYTES = 64 * 1024
/** how deep a payload schema may nest: compiling recurses */
export const MAX_SCHEMA_DEPTH = 64

export const eventTypesSchema = {
  type: 'array',
  maxItems: MAX_EVENT_PATTERNS,
  items: { type: 'string', pattern: EVENT_PATTERN_PATTERN },
  description: 'event types this queue receives: order.created (exactly), order.* (order. and one or more ' +
    'segments), * (all). Empty: only messages sent to the queue itself'
} as const

export const filterSchema = {
  type: ['object', 'null'],
  description: 'receive only events whose payload contains this JSON object (PostgreSQL @>); null: no filter'
} as const

export const payloadFormatSchema = {
  type: 'string',
  enum: PAYLOAD_FORMATS,
  description: 'raw (default): the payload as published; standard-webhooks: {"type","timestamp","data"}'
} as const
