// The GraphQL schema: pg-hooks' (Platformatic DB's) names for types, queries and mutations, plus
// hookpost's attempt log, redrive, pause/resume and delivery subscriptions.
import { filterableFields, sortableFields, type Entity, type FieldType } from '../store/list.js'
import { cronEntity } from '../store/crons.js'
import { messageEntity } from '../store/messages.js'
import { queueEntity } from '../store/queues.js'
import { eventEntity } from '../store/events.js'
import { eventTypeEntity } from '../store/event-types.js'

const WHERE_TYPES: Record<FieldType, string> = {
  integer: 'WhereInt',
  string: 'WhereString',
  boolean: 'WhereBoolean',
  'date-time': 'WhereDateTime'
}

function whereAndOrder (type: string, e: Entity): string {
  const where = filterableFields(e).map(([f, d]) =>
    `  ${f}: ${f === 'id' || f.endsWith('Id') || f === 'deadLetterOf' ? 'WhereID' : WHERE_TYPES[d.type]}`).join('\n')
  const or = `  "any of these (each one's conditions all hold)"\n  or: [${type}WhereArguments]`
  return `input ${type}WhereArguments {\n${where}\n${or}\n}
enum ${type}OrderByField { ${sortableFields(e).join(' ')} }
input ${type}OrderByArguments { field: ${type}OrderByField!, direction: OrderByDirection! }`
}

function where (scalar: string, list = true): string {
  const ops = ['eq', 'neq', 'gt', 'gte', 'lt', 'lte'].map(op => `${op}: ${scalar}`)
  if (list) ops.push(`in: [${scalar}!]`, `nin: [${scalar}!]`)
  return ops.join(', ')
}

const listArgs = (type: string): string =>
  `limit: LimitInt, offset: Int, where: ${type}WhereArguments, orderBy: [${type}OrderByArguments!]`

export const schema = `
"Any JSON value"
scalar JSON
"An ISO 8601 date-time"
scalar DateTime
"A page size: an integer from 0 to 100 (Platformatic's LimitInt)"
scalar LimitInt

enum OrderByDirection { ASC DESC }

input WhereID { ${where('ID')} }
input WhereInt { ${where('Int')} }
input WhereString { ${where('String')}, "SQL LIKE pattern: % any text, _ one character" like: String, ilike: String }
input WhereBoolean { eq: Boolean, neq: Boolean }
input WhereDateTime { ${where('String')} }

${whereAndOrder('Queue', queueEntity)}
${whereAndOrder('Message', messageEntity)}
${whereAndOrder('Cron', cronEntity)}
${whereAndOrder('Event', eventEntity)}
${whereAndOrder('EventType', eventTypeEntity)}

type Queue {
  id: ID!
  name: String!
  callbackUrl: String!
  method: String!
  headers: JSON!
  "retries after the first attempt; 0 = one attempt only"
  maxRetries: Int!
  timeoutMs: Int!
  backoffBaseMs: Int!
  backoffMaxMs: Int!
  backoffJitter: String!
  deadLetterQueueId: ID
  "event types it receives: order.created (exactly), order.* (one or more segments after order.), * (all)"
  eventTypes: [String!]!
  "it receives only events whose payload contains this object (PostgreSQL @>)"
  filter: JSON
  "raw (the payload as published) or standard-webhooks ({type, timestamp, data})"
  payloadFormat: String!
  "its messages are parked (not attempted, not failed) until it is resumed"
  paused: Boolean!
  "disabled by hookpost (410 Gone, or failing for disableAfterHours) or an operator: its messages are parked"
  disabled: Boolean!
  disabledReason: String
  disabledAt: DateTime
  "a 429 or 503 with Retry-After asked the whole queue to wait until then (or an open circuit holds it)"
  heldUntil: DateTime
  "failed attempts in a row that open the circuit; 0: none"
  circuitFailureThreshold: Int!
  circuitCooldownMs: Int!
  "failing continuously this long disables the queue; 0: never"
  disableAfterHours: Int!
  "closed, open or half-open"
  circuitState: String!
  circuitOpenedAt: DateTime
  consecutiveFailures: Int!
  failingSince: DateTime
  "calls started per second at most, across every delivering process; null: unlimited"
  rateLimitPerSecond: Float
  "calls in flight at most, across every delivering process; null: unlimited"
  maxConcurrency: Int
  "the whole queue is one ordering key"
  fifo: Boolean!
  "the rate in force: rateLimitPerSecond, or lower while the endpoint answers 429, 502, 503 or 504 (throttling)"
  effectiveRatePerSecond: Float
  "deliveries carry Standard Webhooks signatures"
  signed: Boolean!
  createdAt: DateTime!
  updatedAt: DateTime!
  deadLetterQueue: Queue
  "the queue's messages (oldest first unless orderBy says otherwise)"
  messages(${listArgs('Message')}): [Message!]!
  "the queue's crons"
  crons(${listArgs('Cron')}): [Cron!]!
  "the queues whose dead-letter queue this is"
  queues(${listArgs('Queue')}): [Queue!]!
}

type Message {
  id: ID!
  queueId: ID!
  "the body as sent: a JSON body as its JSON text (pg-hooks' type)"
  body: String
  "the body as a JSON value, when it was given as one"
  bodyJson: JSON
  headers: JSON!
  when: DateTime!
  nextAttemptAt: DateTime
  sentAt: DateTime
  failed: Boolean!
  "failed attempts so far"
  retries: Int!
  "attempts made so far (REST calls this field attempts)"
  attemptCount: Int!
  lastStatus: Int
  lastError: String
  cronId: ID
  deadLetterOf: ID
  idempotencyKey: String
  "the event this message delivers, when it came from a publish or a replay"
  eventId: ID
  eventType: String
  "made by a replay"
  replay: Boolean!
  "its queue is paused or disabled: waiting, not attempted, not failed"
  parked: Boolean!
  "messages of the queue with the same key are delivered one at a time, in enqueue order"
  orderingKey: String
  "an earlier message of its ordering key is pending"
  waitingForKey: Boolean!
  createdAt: DateTime!
  updatedAt: DateTime!
  queue: Queue
  cron: Cron
  event: Event
  "the attempt log, first attempt first"
  attempts(limit: LimitInt = 100): [Attempt!]!
}

type Cron {
  id: ID!
  queueId: ID!
  schedule: String!
  timezone: String!
  "the body of each tick's message: a JSON body as its JSON text (pg-hooks' type)"
  body: String
  "the body as a JSON value, when it was given as one"
  bodyJson: JSON
  headers: JSON!
  paused: Boolean!
  missedTicks: String!
  nextTickAt: DateTime
  lastTickAt: DateTime
  createdAt: DateTime!
  updatedAt: DateTime!
  queue: Queue
  "the messages of the cron's ticks"
  messages(${listArgs('Message')}): [Message!]!
}

type Event {
  id: ID!
  type: String!
  payload: JSON
  headers: JSON!
  when: DateTime!
  idempotencyKey: String
  "how many queues it went to when it was published"
  endpoints: Int!
  createdAt: DateTime!
  "its messages: one per queue it went to, and per replay"
  messages(${listArgs('Message')}): [Message!]!
}

type EventType {
  id: ID!
  name: String!
  description: String
  "the JSON Schema payloads of this type must match"
  schema: JSON
  deprecated: Boolean!
  createdAt: DateTime!
  updatedAt: DateTime!
}

type ReplayResult {
  queueId: ID!
  "messages created"
  replayed: Int!
  "the per-call cap was reached: call again for the rest"
  more: Boolean!
}

type Attempt {
  id: ID!
  messageId: ID!
  attempt: Int!
  startedAt: DateTime!
  durationMs: Int!
  statusCode: Int
  "null on success; http, timeout, connect or network"
  errorKind: String
  error: String
  "the first 4 KB of the response"
  responseBody: String
}

type queuesCount { total: Int! }
type messagesCount { total: Int! }
type cronsCount { total: Int! }
type eventsCount { total: Int! }
type eventTypesCount { total: Int! }

type RedriveResult { queueId: ID!, requeued: Int! }

type SigningSecret { queueId: ID!, signingSecret: String!, previousValidUntil: DateTime }

type MessageEvent {
  messageId: ID!
  queueId: ID!
  attempt: Int!
  statusCode: Int
  "on a failed attempt: whether another attempt is scheduled"
  willRetry: Boolean!
}

input QueueInput {
  id: ID
  name: String
  callbackUrl: String
  method: String
  headers: JSON
  maxRetries: Int
  timeoutMs: Int
  backoffBaseMs: Int
  backoffMaxMs: Int
  backoffJitter: String
  deadLetterQueueId: ID
  eventTypes: [String!]
  filter: JSON
  payloadFormat: String
  paused: Boolean
  "false enables a disabled queue"
  disabled: Boolean
  circuitFailureThreshold: Int
  circuitCooldownMs: Int
  disableAfterHours: Int
  rateLimitPerSecond: Float
  maxConcurrency: Int
  fifo: Boolean
  "read-only: accepted (pg-hooks' input has it) and ignored"
  createdAt: DateTime
  "read-only: accepted and ignored"
  updatedAt: DateTime
}

input MessageInput {
  id: ID
  queueId: ID
  "sent byte for byte (pg-hooks' type)"
  body: String
  "a JSON value, sent as its JSON text (instead of body)"
  bodyJson: JSON
  headers: JSON
  when: DateTime
  idempotencyKey: String
  orderingKey: String
  "read-only, as the ones below: accepted (pg-hooks' input has them) and ignored"
  failed: Boolean
  sentAt: DateTime
  retries: Int
  cronId: ID
  createdAt: DateTime
  updatedAt: DateTime
}

input PublishEventInput {
  type: String!
  "any JSON value"
  payload: JSON
  headers: JSON
  when: DateTime
  "a repeat with the same key returns the first event and creates nothing"
  idempotencyKey: String
}

input EventTypeInput {
  id: ID
  name: String
  description: String
  schema: JSON
  deprecated: Boolean
  "read-only: accepted and ignored"
  createdAt: DateTime
  "read-only: accepted and ignored"
  updatedAt: DateTime
}

input CronInput {
  id: ID
  queueId: ID
  schedule: String
  timezone: String
  "sent byte for byte (pg-hooks' type)"
  body: String
  "a JSON value, sent as its JSON text (instead of body)"
  bodyJson: JSON
  headers: JSON
  paused: Boolean
  missedTicks: String
  "read-only: accepted (pg-hooks' input has it) and ignored"
  createdAt: DateTime
  "read-only: accepted and ignored"
  updatedAt: DateTime
}

type Query {
  queues(${listArgs('Queue')}): [Queue!]!
  getQueueById(id: ID!): Queue
  countQueues(where: QueueWhereArguments): queuesCount!
  messages(${listArgs('Message')}): [Message!]!
  getMessageById(id: ID!): Message
  countMessages(where: MessageWhereArguments): messagesCount!
  crons(${listArgs('Cron')}): [Cron!]!
  getCronById(id: ID!): Cron
  countCrons(where: CronWhereArguments): cronsCount!
  events(${listArgs('Event')}): [Event!]!
  getEventById(id: ID!): Event
  countEvents(where: EventWhereArguments): eventsCount!
  eventTypes(${listArgs('EventType')}): [EventType!]!
  getEventTypeById(id: ID!): EventType
  countEventTypes(where: EventTypeWhereArguments): eventTypesCount!
}

"insert* take at most 1,000 inputs; delete* refuse a where that matches more than 1,000 rows"
type Mutation {
  "create, or update when input.id is given"
  saveQueue(input: QueueInput!): Queue!
  insertQueues(inputs: [QueueInput]!): [Queue!]!
  "force: also delete undelivered messages"
  deleteQueues(where: QueueWhereArguments, force: Boolean = false): [Queue!]!
  saveMessage(input: MessageInput!): Message!
  "each message keeps its own when"
  insertMessages(inputs: [MessageInput]!): [Message!]!
  deleteMessages(where: MessageWhereArguments): [Message!]!
  saveCron(input: CronInput!): Cron!
  insertCrons(inputs: [CronInput]!): [Cron!]!
  deleteCrons(where: CronWhereArguments): [Cron!]!
  "re-queue a failed message with a fresh retry budget"
  retryMessage(id: ID!): Message!
  "re-queue every failed message of a queue"
  redriveQueue(id: ID!): RedriveResult!
  "set or rotate a queue's signing secret (generated when not given); the previous one signs too for graceSeconds"
  rotateSigningSecret(queueId: ID!, secret: String, graceSeconds: Int): SigningSecret!
  "publish an event: every queue subscribed to its type, and whose filter it matches, gets a message"
  publishEvent(input: PublishEventInput!): Event!
  "re-send to a queue the stored events it would have matched in [since, until)"
  replayQueue(id: ID!, since: DateTime!, until: DateTime, eventTypes: [String!]): ReplayResult!
  saveEventType(input: EventTypeInput!): EventType!
  deleteEventTypes(where: EventTypeWhereArguments): [EventType!]!
  pauseCron(id: ID!): Cron!
  resumeCron(id: ID!): Cron!
}

type QueueDeleted { id: ID }
type MessageDeleted { id: ID }
type CronDeleted { id: ID }

type Subscription {
  messageDelivered(queueId: ID): MessageEvent!
  messageFailed(queueId: ID): MessageEvent!
  "Platformatic's entity events: a row saved or deleted through this process's API"
  queueSaved: Queue
  queueDeleted: QueueDeleted
  messageSaved: Message
  messageDeleted: MessageDeleted
  cronSaved: Cron
  cronDeleted: CronDeleted
}
`
