// Every error the API can return, in one catalogue. Grep a code to find every place that throws it.
import createError from '@fastify/error'

export const errors = {
  BadRequest: createError('HOOKPOST_ERR_BAD_REQUEST', '%s', 400),
  InvalidField: createError('HOOKPOST_ERR_INVALID_FIELD', 'invalid value for "%s": %s', 400),
  InvalidCron: createError('HOOKPOST_ERR_INVALID_CRON', 'invalid value for "%s": %s', 400),
  // a target the SSRF policy refuses (lib/domain/ssrf.ts); also the error of a delivery refused at connect time
  BlockedTarget: createError('HOOKPOST_ERR_BLOCKED_TARGET', 'invalid value for "%s": %s', 400),
  UnknownReference: createError('HOOKPOST_ERR_UNKNOWN_REFERENCE', '%s', 400),
  MissingSecret: createError('HOOKPOST_ERR_MISSING_ADMIN_SECRET', 'missing header X-PLATFORMATIC-ADMIN-SECRET', 401),
  WrongSecret: createError('HOOKPOST_ERR_WRONG_ADMIN_SECRET', 'wrong value for header X-PLATFORMATIC-ADMIN-SECRET', 403),
  NotFound: createError('HOOKPOST_ERR_NOT_FOUND', '%s %s not found', 404),
  RouteNotFound: createError('HOOKPOST_ERR_ROUTE_NOT_FOUND', 'route %s %s not found', 404),
  MethodNotAllowed: createError('HOOKPOST_ERR_METHOD_NOT_ALLOWED', '%s', 405),
  Conflict: createError('HOOKPOST_ERR_CONFLICT', '%s', 409),
  QueueHasPending: createError('HOOKPOST_ERR_QUEUE_HAS_PENDING', 'queue %s has %s undelivered messages; deliver or delete them first, or pass ?force=true', 409),
  QueueIsDeadLetterTarget: createError('HOOKPOST_ERR_QUEUE_IS_DEAD_LETTER_TARGET', 'queue %s is the dead-letter queue of another queue; unset deadLetterQueueId there first', 409),
  NotFailed: createError('HOOKPOST_ERR_MESSAGE_NOT_FAILED', 'message %s has not failed; only failed messages can be retried', 409),
  PayloadTooLarge: createError('HOOKPOST_ERR_PAYLOAD_TOO_LARGE', 'request body is larger than %s bytes', 413),
  Unavailable: createError('HOOKPOST_ERR_DATABASE_UNAVAILABLE', 'the database is unavailable: %s', 503),
  // PostgreSQL canceled the statement (statement_timeout) and rolled it back
  DbTimeout: createError('HOOKPOST_ERR_DB_TIMEOUT', 'the database did not finish in time and canceled the statement: nothing was written; try again', 503),
  // the connection broke, or the client stopped waiting, during a write: the server may still commit it
  OutcomeUnknown: createError('HOOKPOST_ERR_OUTCOME_UNKNOWN', 'the database did not answer (%s): the write may or may not have been committed; retrying with the same idempotencyKey is safe', 503),
  Internal: createError('HOOKPOST_ERR_INTERNAL', 'internal error', 500)
} as const

// SQLSTATE classes we translate, by name (https://www.postgresql.org/docs/current/errcodes-appendix.html)
export const SQLSTATE = {
  UNIQUE_VIOLATION: '23505',
  FOREIGN_KEY_VIOLATION: '23503',
  // ON DELETE RESTRICT: PostgreSQL 18 reports it as restrict_violation where 15 said 23503
  RESTRICT_VIOLATION: '23001',
  CHECK_VIOLATION: '23514',
  NOT_NULL_VIOLATION: '23502',
  INVALID_TEXT_REPRESENTATION: '22P02',
  NUMERIC_OUT_OF_RANGE: '22003',
  DATETIME_OUT_OF_RANGE: '22008',
  INVALID_TIME_ZONE_DISPLACEMENT: '22009',
  INVALID_DATETIME_FORMAT: '22007',
  STRING_TOO_LONG: '22001',
  UNTRANSLATABLE_CHARACTER: '22P05',
  NUL_IN_TEXT: '22021',
  INVALID_JSON: '22032'
} as const

const UNAVAILABLE_CLASSES = ['08', '57', '53'] // connection exception, operator intervention, insufficient resources

// Constraint names map to the API field they guard, so a 400 names the field the client sent.
const CONSTRAINT_FIELDS: Record<string, string> = {
  queues_name_key: 'name',
  queues_name_check: 'name',
  queues_callback_url_check: 'callbackUrl',
  queues_method_check: 'method',
  queues_headers_check: 'headers',
  queues_max_retries_check: 'maxRetries',
  queues_timeout_ms_check: 'timeoutMs',
  queues_backoff_base_ms_check: 'backoffBaseMs',
  queues_backoff_max_ms_check: 'backoffMaxMs',
  queues_backoff_jitter_check: 'backoffJitter',
  queues_dead_letter_queue_id_fkey: 'deadLetterQueueId',
  queues_dead_letter_not_self: 'deadLetterQueueId',
  queues_backoff_order_check: 'backoffMaxMs',
  messages_queue_id_fkey: 'queueId',
  messages_cron_id_fkey: 'cronId',
  messages_headers_check: 'headers',
  messages_idempotency_key_uniq: 'idempotencyKey',
  // raised by a trigger, not a CHECK (migrations/006.do.sql)
  messages_idempotency_key_check: 'idempotencyKey',
  crons_queue_id_fkey: 'queueId',
  crons_headers_check: 'headers',
  crons_missed_ticks_check: 'missedTicks'
}

interface PgError extends Error { code?: string, constraint?: string, column?: string, detail?: string }

/**
 * Translate a PostgreSQL error into an API error by SQLSTATE. Errors we do not know stay as they are
 * (and become a 500 with no detail leaked). The original is kept as `cause`.
 */
export function translatePgError (err: unknown): unknown {
  const e = err as PgError
  if (!e || (e as any).statusCode) return err
  // a refused or dropped connection has no SQLSTATE: the database is away, not the request wrong
  if (typeof e.code !== 'string') return isConnectionError(e) ? Object.assign(new errors.Unavailable('connection lost'), { cause: err }) : err
  const field = (e.constraint && CONSTRAINT_FIELDS[e.constraint]) ?? e.column ?? 'input'
  let out: Error | undefined
  switch (e.code) {
    case SQLSTATE.UNIQUE_VIOLATION:
      out = new errors.Conflict(`a row with this ${field} already exists`)
      break
    case SQLSTATE.RESTRICT_VIOLATION:
      out = new errors.Conflict(`still referenced: ${field}`)
      break
    case SQLSTATE.FOREIGN_KEY_VIOLATION:
      // on insert/update: the referenced row is missing; on delete: the row is still referenced
      out = /is still referenced/.test(e.detail ?? '')
        ? new errors.Conflict(`still referenced: ${field}`)
        : new errors.UnknownReference(`${field} refers to a row that does not exist`)
      break
    case SQLSTATE.CHECK_VIOLATION:
    case SQLSTATE.NOT_NULL_VIOLATION:
      out = new errors.InvalidField(field, 'rejected by the database constraint ' + (e.constraint ?? e.code))
      break
    case SQLSTATE.INVALID_TEXT_REPRESENTATION:
    case SQLSTATE.NUMERIC_OUT_OF_RANGE:
    case SQLSTATE.DATETIME_OUT_OF_RANGE:
    case SQLSTATE.INVALID_TIME_ZONE_DISPLACEMENT:
    case SQLSTATE.INVALID_DATETIME_FORMAT:
    case SQLSTATE.STRING_TOO_LONG:
    case SQLSTATE.UNTRANSLATABLE_CHARACTER:
    case SQLSTATE.NUL_IN_TEXT:
    case SQLSTATE.INVALID_JSON:
      out = new errors.InvalidField(field, e.message)
      break
    default:
      if (isConnectionError(e)) out = new errors.Unavailable(e.code)
  }
  if (!out) return err
  ;(out as any).cause = err
  return out
}

/** Errors from a dropped connection (no SQLSTATE) that mean "try later", not "bug". */
export function isConnectionError (err: unknown): boolean {
  const e = err as PgError
  if (!e) return false
  if (typeof e.code === 'string' && UNAVAILABLE_CLASSES.includes(e.code.slice(0, 2))) return true
  return ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT'].includes(String(e.code)) ||
    /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable/i.test(e.message ?? '')
}
