// REST's replies for errors: { statusCode, code, error, message }, formatted from publicError
// (lib/api/public-error.ts). No translation happens here: the store and the API layer threw catalogue
// errors already, and Fastify's own codes (FST_*) never reach a client.
import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { publicError } from '../api/public-error.js'
import { errors } from '../errors.js'

function send (reply: FastifyReply, e: { statusCode: number, code: string, message: string }): FastifyReply {
  // the database is away: a client may simply try again shortly
  if (e.statusCode === 503) reply.header('retry-after', '1')
  const body = { statusCode: e.statusCode, code: e.code, error: STATUS_CODES[e.statusCode], message: e.message }
  return reply.code(e.statusCode).send(body)
}

export function handleError (err: FastifyError, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  const facts = { contentType: req.headers['content-type'], bodyLimit: req.routeOptions.bodyLimit }
  const { error, internal } = publicError(err, facts)
  if (internal) req.log.error({ err }, 'request failed')
  return send(reply, error)
}

export function installErrorHandler (app: FastifyInstance): void {
  app.setErrorHandler(handleError)
  app.setNotFoundHandler((req, reply) => {
    const e = new errors.HOOKPOST_ERR_ROUTE_NOT_FOUND(req.method, req.url.split('?')[0])
    return send(reply, { statusCode: e.statusCode, code: e.code, message: e.message })
  })
}
