// Every error the API can return, in one catalogue (as Fastify's lib/errors.js): the key is the code,
// so grepping a code finds every place that throws it. README.md's error table lists them all
// (test/errors.test.ts checks both ways). PostgreSQL errors become these in lib/db/translate.ts.
import createError from '@fastify/error'

export const errors = {
  // the request does not match the JSON schema (REST body, params, querystring; GraphQL input or
  // arguments), or is not readable at all (bad JSON, a bad URL)
  HOOKPOST_ERR_BAD_REQUEST: createError('HOOKPOST_ERR_BAD_REQUEST', '%s', 400),
  // a value the schema allows but a rule beyond it (or the database) refuses
  HOOKPOST_ERR_INVALID_FIELD: createError('HOOKPOST_ERR_INVALID_FIELD', 'invalid value for "%s": %s', 400),
  HOOKPOST_ERR_INVALID_CRON: createError('HOOKPOST_ERR_INVALID_CRON', 'invalid value for "%s": %s', 400),
  // a target the SSRF policy refuses (lib/domain/ssrf.ts); also a delivery refused at connect time
  HOOKPOST_ERR_BLOCKED_TARGET: createError('HOOKPOST_ERR_BLOCKED_TARGET', 'invalid value for "%s": %s', 400),
  HOOKPOST_ERR_UNKNOWN_REFERENCE: createError('HOOKPOST_ERR_UNKNOWN_REFERENCE', '%s', 400),
  HOOKPOST_ERR_MISSING_ADMIN_SECRET: createError('HOOKPOST_ERR_MISSING_ADMIN_SECRET', 'missing header %s', 401),
  HOOKPOST_ERR_WRONG_ADMIN_SECRET: createError('HOOKPOST_ERR_WRONG_ADMIN_SECRET', 'wrong value for header %s', 403),
  HOOKPOST_ERR_NOT_FOUND: createError('HOOKPOST_ERR_NOT_FOUND', '%s %s not found', 404),
  HOOKPOST_ERR_ROUTE_NOT_FOUND: createError('HOOKPOST_ERR_ROUTE_NOT_FOUND', 'route %s %s not found', 404),
  HOOKPOST_ERR_METHOD_NOT_ALLOWED: createError('HOOKPOST_ERR_METHOD_NOT_ALLOWED', '%s', 405),
  HOOKPOST_ERR_CONFLICT: createError('HOOKPOST_ERR_CONFLICT', '%s', 409),
  HOOKPOST_ERR_QUEUE_HAS_PENDING: createError('HOOKPOST_ERR_QUEUE_HAS_PENDING',
    'queue %s has %s undelivered messages; deliver or delete them first, or pass ?force=true', 409),
  HOOKPOST_ERR_QUEUE_IS_DEAD_LETTER_TARGET: createError('HOOKPOST_ERR_QUEUE_IS_DEAD_LETTER_TARGET',
    'queue %s is the dead-letter queue of another queue; unset deadLetterQueueId there first', 409),
  HOOKPOST_ERR_MESSAGE_NOT_FAILED: createError('HOOKPOST_ERR_MESSAGE_NOT_FAILED',
    'message %s has not failed; only failed messages can be retried', 409),
  HOOKPOST_ERR_PAYLOAD_TOO_LARGE: createError('HOOKPOST_ERR_PAYLOAD_TOO_LARGE',
    'request body is larger than %s bytes', 413),
  HOOKPOST_ERR_UNSUPPORTED_MEDIA_TYPE: createError('HOOKPOST_ERR_UNSUPPORTED_MEDIA_TYPE',
    'unsupported content type %s: send application/json', 415),
  // the dashboard's live streams (lib/http/overview-feed.ts) are capped per process
  HOOKPOST_ERR_TOO_MANY_STREAMS: createError('HOOKPOST_ERR_TOO_MANY_STREAMS',
    '%s live streams are open: close one, or read GET /dashboard/api/overview instead', 429),
  HOOKPOST_ERR_DATABASE_UNAVAILABLE: createError('HOOKPOST_ERR_DATABASE_UNAVAILABLE',
    'the database is unavailable: %s', 503),
  // PostgreSQL canceled the statement (statement_timeout) and rolled it back
  HOOKPOST_ERR_DB_TIMEOUT: createError('HOOKPOST_ERR_DB_TIMEOUT',
    'the database did not finish in time and canceled the statement: nothing was written; try again', 503),
  // the connection broke, or the client stopped waiting, during a write: the server may still commit it
  HOOKPOST_ERR_OUTCOME_UNKNOWN: createError('HOOKPOST_ERR_OUTCOME_UNKNOWN',
    'the database did not answer (%s): the write may or may not have been committed; ' +
    'retrying with the same idempotencyKey is safe', 503),
  HOOKPOST_ERR_INTERNAL: createError('HOOKPOST_ERR_INTERNAL', 'internal error', 500)
} as const

export type ErrorCode = keyof typeof errors

/** An error of this catalogue: it has a code and a status, and may be shown to a client. */
export function isApiError (err: unknown): err is Error & { code: ErrorCode, statusCode: number } {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && Object.hasOwn(errors, code) &&
    typeof (err as { statusCode?: unknown }).statusCode === 'number'
}
