// PostgreSQL errors as the API says them, decided here at the data layer and nowhere else: by SQLSTATE
// (a 4xx naming the field), and by what a failed statement left written (a 503 that says so). The
// original error is kept as `cause`. lib/db/query.ts runs every store statement through this.
import { errors } from '../errors.js'

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
  INVALID_JSON: '22032',
  // a LIKE pattern that ends with its escape character
  INVALID_ESCAPE_SEQUENCE: '22025',
  // raised by hookpost's SQL functions (hookpost.publish, hookpost.enqueue) for an argument they refuse
  INVALID_PARAMETER_VALUE: '22023'
} as const

const UNAVAILABLE_CLASSES = ['08', '57', '53'] // connection exception, operator intervention, insufficient resources

// Rules between two fields, said in the client's terms: the client may have sent only one of them
// (attack round: a PUT of backoffBaseMs alone was told "backoffMaxMs: rejected by the database constraint")
const CONSTRAINT_RULES: Record<string, string> = {
  queues_backoff_order_check: 'backoffMaxMs must be at least backoffBaseMs (the values sent or stored)'
}

// Constraint names map to the API field they guard, so a 400 names the field the client sent.
const CONSTRAINT_FIELDS: Record<string, string> = {
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
  crons_missed_ticks_check: 'missedTicks',
  queues_event_types_check: 'eventTypes',
  queues_filter_check: 'filter',
  queues_payload_format_check: 'payloadFormat',
  event_types_name_check: 'name',
  event_types_name_key: 'name',
  event_types_description_check: 'description',
  event_types_schema_check: 'schema',
  events_type_check: 'type',
  events_headers_check: 'headers',
  events_idempotency_key_check: 'idempotencyKey',
  events_when_check: 'when',
  // raised by the insert trigger (migrations/010.do.sql)
  messages_when_check: 'when'
}

/** A row still referenced, by the constraint that refuses its delete: the error that says why. */
function stillReferenced (e: PgError, field: string): Error {
  // "Key (id)=(5) is still referenced from table ..."
  const key = /\(id\)=\((\d+)\)/.exec(e.detail ?? '')?.[1]
  if (e.constraint === 'queues_dead_letter_queue_id_fkey' && key !== undefined) {
    return new errors.HOOKPOST_ERR_QUEUE_IS_DEAD_LETTER_TARGET(Number(key))
  }
  return new errors.HOOKPOST_ERR_CONFLICT(`still referenced: ${field}`)
}

interface PgError extends Error {
  code?: string, constraint?: string, column?: string, detail?: string, where?: string
}

/**
 * The API field behind the parameter PostgreSQL could not take ("unnamed portal parameter $2"), when the
 * statement names its parameters (Statement.params): a NUL in text, a number or date it cannot read.
 */
function parameterField (e: PgError, params: readonly string[] | undefined): string | undefined {
  const n = /\bparameter \$(\d+)/.exec(e.where ?? '')?.[1]
  return n === undefined ? undefined : params?.[Number(n) - 1]
}

/**
 * Translate a PostgreSQL error into an API error by SQLSTATE. Errors we do not know stay as they are
 * (and become a 500 with no detail leaked). The original is kept as `cause`.
 */
function translatePgError (err: unknown, params?: readonly string[]): unknown {
  const e = err as PgError
  if (!e || (e as any).statusCode) return err
  // a refused or dropped connection has no SQLSTATE, others have one of UNAVAILABLE_CLASSES (below):
  // the database is away, not the request wrong
  if (typeof e.code !== 'string') {
    if (!isConnectionError(e)) return err
    return Object.assign(new errors.HOOKPOST_ERR_DATABASE_UNAVAILABLE('connection lost'), { cause: err })
  }
  const field = (e.constraint && CONSTRAINT_FIELDS[e.constraint]) ?? e.column ?? parameterField(e, params) ?? 'input'
  let out: Error | undefined
  switch (e.code) {
    case SQLSTATE.UNIQUE_VIOLATION:
      out = new errors.HOOKPOST_ERR_CONFLICT(`a row with this ${field} already exists`)
      break
    case SQLSTATE.RESTRICT_VIOLATION:
      out = stillReferenced(e, field)
      break
    case SQLSTATE.FOREIGN_KEY_VIOLATION:
      // on insert/update: the referenced row is missing; on delete: the row is still referenced
      out = /is still referenced/.test(e.detail ?? '')
        ? stillReferenced(e, field)
        : new errors.HOOKPOST_ERR_UNKNOWN_REFERENCE(`${field} refers to a row that does not exist`)
      break
    case SQLSTATE.CHECK_VIOLATION:
    case SQLSTATE.NOT_NULL_VIOLATION:
      out = new errors.HOOKPOST_ERR_INVALID_FIELD(field,
        (e.constraint !== undefined ? CONSTRAINT_RULES[e.constraint] : undefined) ??
          'rejected by the database constraint ' + (e.constraint ?? e.code))
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
    case SQLSTATE.INVALID_ESCAPE_SEQUENCE:
    case SQLSTATE.INVALID_PARAMETER_VALUE:
      out = new errors.HOOKPOST_ERR_INVALID_FIELD(field, e.message)
      break
    default:
      if (isConnectionError(e)) out = new errors.HOOKPOST_ERR_DATABASE_UNAVAILABLE(e.code)
  }
  if (!out) return err
  ;(out as any).cause = err
  return out
}

/** Errors that mean "try later", not "bug": a dropped connection (no SQLSTATE), or UNAVAILABLE_CLASSES. */
export function isConnectionError (err: unknown): boolean {
  const e = err as PgError
  if (!e) return false
  if (typeof e.code === 'string' && UNAVAILABLE_CLASSES.includes(e.code.slice(0, 2))) return true
  return ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT'].includes(String(e.code)) ||
    /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable/i.test(e.message ?? '')
}

/**
 * What a failed statement tells about what it wrote:
 *  - 'canceled': PostgreSQL canceled it (its statement_timeout, or an operator) and rolled it back;
 *  - 'refused': any other error PostgreSQL answered while the session lived: rolled back too;
 *  - 'not-sent': no connection was made, so nothing reached the server;
 *  - 'unknown': the connection broke, or the client stopped waiting, while it ran: it may still commit;
 *  - null: not a database failure at all (a bug, or our own validation).
 */
export type DbFailure = 'canceled' | 'refused' | 'not-sent' | 'unknown' | null

// sent only while a session is being set up: too many connections, starting up, auth, no such database
const REFUSED_AT_CONNECT = new Set(['08001', '08004', '28000', '28P01', '3D000', '53300', '57P03'])
const QUERY_CANCELED = '57014'

export function dbFailure (err: unknown): DbFailure {
  const e = err as { code?: unknown, message?: unknown, severity?: unknown } | null
  if (e === null || typeof e !== 'object') return null
  const code = String(e.code ?? '')
  // an ErrorResponse from the server: it alone carries a severity (localized, so only a hint here)
  if (typeof e.severity === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
    if (code === QUERY_CANCELED) return 'canceled'
    if (REFUSED_AT_CONNECT.has(code)) return 'not-sent'
    // the session ended (shutdown, crash, lost link) or failed inside: that may have come after the commit
    if (['08', '57', 'XX'].includes(code.slice(0, 2)) || e.severity === 'FATAL' || e.severity === 'PANIC') {
      return 'unknown'
    }
    return 'refused'
  }
  const message = String(e.message ?? '')
  if (['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN'].includes(code) ||
    /timeout exceeded when trying to connect|terminated due to connection timeout|is not queryable|after calling end on the pool/i.test(message)) return 'not-sent'
  if (['ECONNRESET', 'EPIPE', 'ETIMEDOUT'].includes(code) || /^Query read timeout$|Connection terminated/i.test(message)) return 'unknown'
  return null
}

/**
 * A database error as the API says it: SQLSTATE to a 4xx (translatePgError), plus what a failed
 * statement left behind. Canceled: 503 HOOKPOST_ERR_DB_TIMEOUT, nothing written. Broken mid-statement:
 * for a write, 503 HOOKPOST_ERR_OUTCOME_UNKNOWN (it may have committed); for a read, 503 unavailable.
 * Not sent: 503 unavailable. A catalogue error passes through unchanged.
 */
export function translateDbError (err: unknown, opts: { write: boolean, params?: readonly string[] }): unknown {
  if ((err as { statusCode?: unknown } | null)?.statusCode !== undefined) return err
  const reason = String((err as { code?: unknown, message?: unknown } | null)?.message ?? '')
  let out: Error
  switch (dbFailure(err)) {
    case 'canceled':
      out = new errors.HOOKPOST_ERR_DB_TIMEOUT()
      break
    case 'unknown':
      out = opts.write
        ? new errors.HOOKPOST_ERR_OUTCOME_UNKNOWN(
          reason)
        : new errors.HOOKPOST_ERR_DATABASE_UNAVAILABLE(reason
        )
      break
    case 'not-sent':
      out = new errors.HOOKPOST_ERR_DATABASE_UNAVAILABLE(reason)
      break
    default:
      return translatePgError(err, opts.params)
  }
  return Object.assign(out, { cause: err })
}
