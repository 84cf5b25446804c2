// Queues: the delivery targets. Domain functions shared by REST and GraphQL.
import type { Pool } from 'pg'
import type { Queryable } from '../db/pool.js'
import { read, transaction, write } from '../db/query.js'
import { errors } from '../errors.js'
import { checkHeaders } from '../domain/headers.js'
import { jsonbProblem, unsayable } from '../domain/body.js'
import { assertAllowedTarget } from '../domain/ssrf-guard.js'
import { type TargetPolicy } from '../domain/ssrf.js'
import type { PayloadFormat } from '../domain/events.js'
import { countStatement, listStatement, pagesOfParents, type Entity, type Filter, type ListQuery } from './list.js'
import { insertRow, updateRow, type Writable } from './rows.js'
import { CHANNELS, notify, notifyWith } from '../db/channels.js'

export interface Queue {
  id: number
  name: string
  callbackUrl: string
  method: string
  headers: Record<string, string>
  maxRetries: number
  timeoutMs: number
  backoffBaseMs: number
  backoffMaxMs: number
  backoffJitter: 'full' | 'equal' | 'none'
  deadLetterQueueId: number | null
  /** event type patterns the queue is subscribed to (lib/domain/events.ts); empty: direct messages only */
  eventTypes: string[]
  /** events whose payload does not contain this (jsonb @>) are not sent here; null: no filter */
  filter: Record<string, unknown> | null
  payloadFormat: PayloadFormat
  /** paused by an operator: its messages are parked (not attempted, not failed) until it is resumed */
  paused: boolean
  /**
   * disabled by hookpost (its endpoint answered 410 Gone, or failed for disableAfterHours) or an
   * operator: its messages are parked too
   */
  disabled: boolean
  disabledReason: string | null
  disabledAt: Date | null
  /** a 429 or 503 with Retry-After asked the whole queue to wait until then (or an open circuit holds it) */
  heldUntil: Date | null
  /** failed attempts in a row that open the circuit; 0: no circuit breaker */
  circuitFailureThreshold: number
  /** how long an open circuit holds the queue before a probe; doubles on each failed probe, at most 1 h */
  circuitCooldownMs: number
  /** failing continuously this long disables the queue; 0: never */
  disableAfterHours: number
  circuitState: 'closed' | 'open' | 'half-open'
  circuitOpenedAt: Date | null
  consecutiveFailures: number
  failingSince: Date | null
  /** calls started per second at most, across processes; null: unlimited */
  rateLimitPerSecond: number | null
  /** calls in flight at most, across processes; null: unlimited */
  maxConcurrency: number | null
  /** the whole queue is one ordering key */
  fifo: boolean
  /** the rate in force: rateLimitPerSecond, or lower while the endpoint asks for less (adaptive throttling) */
  effectiveRatePerSecond: number | null
  /** deliveries carry Standard Webhooks signatures; the secret itself is never listed */
  signed: boolean
  createdAt: Date
  updatedAt: Date
}

export type QueueInput =
  Partial<Omit<Queue, 'id' | 'signed' | 'disabledReason' | 'disabledAt' | 'heldUntil' | 'createdAt' | 'updatedAt' |
  'circuitState' | 'circuitOpenedAt' | 'consecutiveFailures' | 'failingSince' | 'effectiveRatePerSecond'>>

export const queueEntity: Entity = {
  name: 'queue',
  table: 'hookpost.queues',
  select: `id, name, callback_url AS "callbackUrl", method, headers, max_retries AS "maxRetries",
    timeout_ms AS "timeoutMs", backoff_base_ms AS "backoffBaseMs", backoff_max_ms AS "backoffMaxMs",
    backoff_jitter AS "backoffJitter", dead_letter_queue_id AS "deadLetterQueueId",
    event_types AS "eventTypes", filter, payload_format AS "payloadFormat", paused, disabled,
    disabled_reason AS "disabledReason", disabled_at AS "disabledAt", held_until AS "heldUntil",
    circuit_failure_threshold AS "circuitFailureThreshold", circuit_cooldown_ms AS "circuitCooldownMs",
    disable_after_hours AS "disableAfterHours",
    CASE WHEN circuit_state = 'open' AND coalesce(held_until <= now(), true) THEN 'half-open' ELSE circuit_state END
      AS "circuitState",
    circuit_opened_at AS "circuitOpenedAt", consecutive_failures AS "consecutiveFailures",
    failing_since AS "failingSince",
    rate_limit_per_second AS "rateLimitPerSecond", max_concurrency AS "maxConcurrency", fifo,
    least(rate_limit_per_second, throttle_rate) AS "effectiveRatePerSecond",
    signing_secret IS NOT NULL AS signed,
    created_at AS "createdAt", updated_at AS "updatedAt"`,
  fields: {
    id: { column: 'id', type: 'integer', filter: true, sort: true },
    name: { column: 'name', type: 'string', filter: true, sort: true },
    callbackUrl: { column: 'callback_url', type: 'string', filter: true, sort: true },
    method: { column: 'method', type: 'string', filter: true, sort: true },
    maxRetries: { column: 'max_retries', type: 'integer', filter: true, sort: true },
    timeoutMs: { column: 'timeout_ms', type: 'integer', filter: true, sort: true },
    backoffBaseMs: { column: 'backoff_base_ms', type: 'integer' },
    backoffMaxMs: { column: 'backoff_max_ms', type: 'integer' },
    backoffJitter: { column: 'backoff_jitter', type: 'string' },
    deadLetterQueueId: { column: 'dead_letter_queue_id', type: 'integer', filter: true, sort: true },
    payloadFormat: { column: 'payload_format', type: 'string', filter: true, sort: true },
    paused: { column: 'paused', type: 'boolean', filter: true, sort: true },
    disabled: { column: 'disabled', type: 'boolean', filter: true, sort: true },
    fifo: { column: 'fifo', type: 'boolean', filter: true, sort: true },
    createdAt: { column: 'created_at', type: 'date-time', filter: true, sort: true },
    updatedAt: { column: 'updated_at', type: 'date-time', filter: true, sort: true }
  }
}

// the fields a client may write (API field -> column)
const WRITABLE = {
  columns: {
    name: 'name',
    callbackUrl: 'callback_url',
    method: 'method',
    headers: 'headers',
    maxRetries: 'max_retries',
    timeoutMs: 'timeout_ms',
    backoffBaseMs: 'backoff_base_ms',
    backoffMaxMs: 'backoff_max_ms',
    backoffJitter: 'backoff_jitter',
    deadLetterQueueId: 'dead_letter_queue_id',
    eventTypes: 'event_types',
    filter: 'filter',
    payloadFormat: 'payload_format',
    paused: 'paused',
    disabled: 'disabled',
    circuitFailureThreshold: 'circuit_failure_threshold',
    circuitCooldownMs: 'circuit_cooldown_ms',
    disableAfterHours: 'disable_after_hours',
    rateLimitPerSecond: 'rate_limit_per_second',
    maxConcurrency: 'max_concurrency',
    fifo: 'fifo'
  } satisfies Record<keyof QueueInput, string>,
  json: new Set(['headers', 'filter'])
} satisfies Writable

// what updateQueue writes besides: why a queue is disabled and since when; its run of failures, reset
// when it is enabled; the circuit's current hold, reset when its cooldown changes
const STORED: Writable = {
  columns: {
    ...WRITABLE.columns,
    disabledReason: 'disabled_reason',
    disabledAt: 'disabled_at',
    failingSince: 'failing_since',
    consecutiveFailures: 'consecutive_failures',
    circuitOpenMs: 'circuit_open_ms'
  },
  json: WRITABLE.json
}

// Resuming or enabling a queue delivers what was parked (migrations/011.do.sql), in the order it was
// due, in the same statement as the change: never a queue active with messages parked forever
const UNPARK = `, unparked AS (
    UPDATE hookpost.messages m SET run_at = m."when", updated_at = now()
    FROM row WHERE NOT row.paused AND NOT row.disabled
      AND m.queue_id = row.id AND m.run_at = 'infinity' AND NOT m.key_wait AND m.sent_at IS NULL AND NOT m.failed
  )`

// Turning fifo on or off re-keys the queue's pending messages (migrations/012.do.sql), in the same
// statement: on, all are one key; off, each has its own ordering key again, and those that waited are
// due, for the next claim to weigh against their own key
const REKEY = `, rekeyed AS (
    UPDATE hookpost.messages m
    SET order_key = CASE WHEN row.fifo THEN '' ELSE m.ordering_key END,
      key_wait = false, run_at = CASE WHEN m.key_wait THEN least(m."when", now()) ELSE m.run_at END
    FROM row WHERE m.queue_id = row.id AND m.sent_at IS NULL AND NOT m.failed
  )`

export async function listQueues (pool: Pool, q: ListQuery): Promise<Queue[]> {
  return (await read<Queue>(pool, listStatement(queueEntity, q))).rows
}

export async function countQueues (pool: Pool, where: Filter[]): Promise<number> {
  return (await read(pool, countStatement(queueEntity, where))).rows[0].n
}

export async function getQueue (pool: Queryable, id: number): Promise<Queue> {
  const { rows } = await read<Queue>(pool, `SELECT ${queueEntity.select} FROM hookpost.queues WHERE id = $1`, [id])
  if (rows[0] === undefined) throw new errors.HOOKPOST_ERR_NOT_FOUND('queue', id)
  return rows[0]
}

/** A page of the queues whose dead-letter queue each of these is, in one query (GraphQL's Queue.queues). */
export async function queuesDeadLetteringTo (pool: Queryable, ids: readonly number[], q: ListQuery):
Promise<Array<Queue & { parentId: number }>> {
  const statement = pagesOfParents(queueEntity, 'dead_letter_queue_id', ids, q)
  return (await read<Queue & { parentId: number }>(pool, statement)).rows
}

export async function getQueuesByIds (pool: Pool, ids: readonly number[]): Promise<Queue[]> {
  const { rows } = await read<Queue>(pool,
    `SELECT ${queueEntity.select} FROM hookpost.queues WHERE id = ANY($1::bigint[])`, [ids])
  return rows
}

/**
 * targets: the SSRF policy a callbackUrl must pass (config.hooks). Required: no caller gets a lax
 * default by forgetting it
 */
/** A filter jsonb can hold as given (attack round: 1e400 was stored as null, 5,000 levels were a 500). */
function checkFilter (filter: QueueInput['filter']): void {
  if (filter === undefined || filter === null) return
  const problem = unsayable(filter) ?? jsonbProblem(filter)
  if (problem !== undefined) throw new errors.HOOKPOST_ERR_INVALID_FIELD('filter', problem)
}

export async function createQueue (pool: Queryable, input: QueueInput, targets: TargetPolicy): Promise<Queue> {
  checkHeaders(input.headers)
  checkFilter(input.filter)
  if (input.callbackUrl !== undefined) await assertAllowedTarget(input.callbackUrl, targets)
  return await insertRow<Queue>(pool, queueEntity, WRITABLE, input)
}

export async function updateQueue (
  pool: Queryable, id: number, input: QueueInput, targets: TargetPolicy
): Promise<Queue> {
  checkHeaders(input.headers)
  checkFilter(input.filter)
  if (input.callbackUrl !== undefined) await assertAllowedTarget(input.callbackUrl, targets)
  // a disabled queue sent back as it was read (GET-then-PUT) keeps its reason: only a change is noted
  if (input.disabled !== undefined && (await getQueue(pool, id)).disabled === input.disabled) {
    const { disabled, ...rest } = input
    input = rest
  }
  const resuming = input.paused === false || input.disabled === false
  const stored: Record<string, unknown> = { ...input }
  if (input.disabled !== undefined) {
    stored.disabledReason = input.disabled ? 'disabled by an operator' : null
    stored.disabledAt = input.disabled ? new Date() : null
    // enabled: a fresh run, or disableAfterHours would take it again at once (attack round)
    if (!input.disabled) Object.assign(stored, { failingSince: null, consecutiveFailures: 0 })
  }
  // a new cooldown applies from the circuit's next opening, not doubled from the old one
  if (input.circuitCooldownMs !== undefined) stored.circuitOpenMs = null
  // re-keyed only on a change: a queue sent back as it was read (GET-then-PUT) keeps its messages as they are
  const rekeying = input.fifo !== undefined && (await getQueue(pool, id)).fifo !== input.fifo
  const row = await updateRow<Queue>(pool, queueEntity, STORED, id, stored,
    (resuming ? UNPARK : '') + (rekeying ? REKEY : ''))
  if (row === undefined) throw new errors.HOOKPOST_ERR_NOT_FOUND('queue', id)
  if (resuming || rekeying) await write(pool, notify(CHANNELS.messages))
  // what the workers hold of it goes back, for the next claim to park, or to move to the limited lane
  // (attack round: hundreds of calls went out after a pause had answered, from the rows claimed before
  // it; and as many beyond a rate or concurrency limit just set, or an order just asked for)
  const limiting = (input.rateLimitPerSecond !== undefined && input.rateLimitPerSecond !== null) ||
    (input.maxConcurrency !== undefined && input.maxConcurrency !== null) || (rekeying && row.fifo)
  if (row.paused || row.disabled || limiting) {
    await write(pool, notifyWith(CHANNELS.queues, String(id)))
  }
  return row
}

/**
 * Delete a queue with its crons and its delivered or failed messages. Undelivered messages make it a
 * 409 unless force is set: an accepted message is never dropped silently.
 */
export async function deleteQueue (pool: Pool, id: number, opts: { force?: boolean } = {}): Promise<Queue> {
  return await transaction(pool, async (c) => {
    // FOR UPDATE conflicts with the KEY SHARE lock that inserting a message takes on its queue,
    // so no message can slip in between the count and the delete
    const locked = await write(c, 'SELECT id FROM hookpost.queues WHERE id = $1 FOR UPDATE', [id])
    if (locked.rowCount === 0) throw new errors.HOOKPOST_ERR_NOT_FOUND('queue', id)
    if (opts.force !== true) {
      const { rows } = await read(c, `SELECT count(*)::bigint AS n FROM hookpost.messages
        WHERE queue_id = $1 AND sent_at IS NULL AND NOT failed`, [id])
      if (rows[0].n > 0) throw new errors.HOOKPOST_ERR_QUEUE_HAS_PENDING(id, rows[0].n)
    }
    // another queue's deadLetterQueueId refuses the delete (ON DELETE RESTRICT): lib/db/translate.ts
    // makes that HOOKPOST_ERR_QUEUE_IS_DEAD_LETTER_TARGET
    const { rows } = await write<Queue>(c,
      `DELETE FROM hookpost.queues WHERE id = $1 RETURNING ${queueEntity.select}`, [id])
    return rows[0]!
  })
}
