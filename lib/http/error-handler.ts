// One place where errors become replies: known codes keep their status, Postgres errors are translated
// by SQLSTATE, and anything else is a 500 that is logged but never described to the client.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { translateDbError } from '../db/pool.js'
import { errors } from '../errors.js'

const READ_ONLY = new Set(['id', 'sentAt', 'failed', 'retries', 'attempts', 'createdAt', 'updatedAt', 'nextAttemptAt',
  'lastStatus', 'lastError', 'cronId', 'deadLetterOf', 'nextTickAt', 'lastTickAt'])

const READS = new Set(['GET', 'HEAD', 'OPTIONS'])

interface AjvError { keyword: string, instancePath: string, message?: string, params: Record<string, any> }

/** Validation messages that always name the field, including the one that should not be there. */
export function formatSchemaErrors (errs: AjvError[], dataVar: string): Error {
  const e = errs[0]!
  const path = `${dataVar}${e.instancePath}`
  let message: string
  if (e.keyword === 'additionalProperties') {
    const prop = String(e.params.additionalProperty)
    message = READ_ONLY.has(prop) && dataVar === 'body'
      ? `${path}/${prop} is read-only and cannot be set`
      : `${path}/${prop} is not an allowed property`
  } else if (e.keyword === 'propertyNames') {
    message = `${path} has an invalid property name ${JSON.stringify(e.params.propertyName)}`
  } else if (e.keyword === 'pattern' && path.includes('/headers/')) {
    message = `${path} must be printable latin-1 text: no CR, LF, NUL or characters past U+00FF`
  } else {
    message = `${path} ${e.message ?? 'is invalid'}`
  }
  return new errors.BadRequest(message)
}

export function installErrorHandler (app: FastifyInstance): void {
  app.setErrorHandler(function handler (this: FastifyInstance, err: FastifyError, req: FastifyRequest, reply: FastifyReply) {
    // a database failure the store did not translate: a timeout or lost connection during a write may
    // still commit, which the answer must say; during a read it is only "unavailable"
    const translated = translateDbError(err, { write: !READS.has(req.method) }) as FastifyError
    const status = translated.statusCode ?? 500
    if (status >= 500) {
      req.log.error({ err }, 'request failed')
      const e = status === 503 ? translated : new errors.Internal()
      // the database is away: a client may simply try again shortly
      if (status === 503) reply.header('retry-after', '1')
      return reply.code(status).send({ statusCode: status, code: e.code, error: status === 503 ? 'Service Unavailable' : 'Internal Server Error', message: e.message })
    }
    // our catalogue's errors, and fastify's own 4xx (bad JSON, bad content type) whose message names the problem
    return reply.code(status).send({
      statusCode: status,
      code: translated.code ?? 'HOOKPOST_ERR_BAD_REQUEST',
      error: httpReason(status),
      message: translated.message
    })
  })

  app.setNotFoundHandler((req, reply) => {
    const e = new errors.RouteNotFound(req.method, req.url.split('?')[0])
    return reply.code(404).send({ statusCode: 404, code: e.code, error: 'Not Found', message: e.message })
  })
}

const REASONS: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 406: 'Not Acceptable',
  409: 'Conflict', 413: 'Payload Too Large', 415: 'Unsupported Media Type', 429: 'Too Many Requests'
}
function httpReason (status: number): string {
  return REASONS[status] ?? 'Error'
}
