// What a client is told when something fails, for REST and GraphQL alike: a catalogue error (lib/errors.ts)
// as it is; Fastify's own 4xx (FST_* codes: unreadable JSON, a body too large, a content type it cannot
// parse) as the catalogue error that says the same; anything else as HOOKPOST_ERR_INTERNAL, never
// described. Database errors were translated where the statement ran (lib/db/query.ts).
import { errors, isApiError } from '../errors.js'

export interface PublicError { statusCode: number, code: string, message: string }

/** What the request said that Fastify's errors leave out. */
export interface RequestFacts { contentType?: string | undefined, bodyLimit?: number | undefined }

function fastifyError (err: { statusCode: number, message: string }, req: RequestFacts): Error {
  switch (err.statusCode) {
    case 413: return new errors.HOOKPOST_ERR_PAYLOAD_TOO_LARGE(req.bodyLimit ?? 'the allowed')
    case 415: return new errors.HOOKPOST_ERR_UNSUPPORTED_MEDIA_TYPE(JSON.stringify(req.contentType ?? ''))
    case 405: return new errors.HOOKPOST_ERR_METHOD_NOT_ALLOWED(err.message)
    // unreadable JSON, an empty JSON body, a bad Content-Length or URL: the message names it
    default: return new errors.HOOKPOST_ERR_BAD_REQUEST(err.message)
  }
}

/** The error to show, and whether it is a failure of ours (to be logged), not of the request. */
export function publicError (err: unknown, req: RequestFacts = {}): { error: PublicError, internal: boolean } {
  let e: unknown = err
  const status = (err as { statusCode?: unknown } | null)?.statusCode
  if (!isApiError(err) && typeof status === 'number' && status >= 400 && status < 500) {
    e = fastifyError(err as { statusCode: number, message: string }, req)
  }
  if (isApiError(e) && e.statusCode < 500 && e.statusCode >= 400) return { error: pick(e), internal: false }
  // the database is away or slow: the catalogue says what happened to the write
  if (isApiError(e) && e.statusCode === 503) return { error: pick(e), internal: true }
  return { error: pick(new errors.HOOKPOST_ERR_INTERNAL()), internal: true }
}

function pick (e: Error & { code?: unknown, statusCode?: unknown }): PublicError {
  return { statusCode: Number(e.statusCode), code: String(e.code), message: e.message }
}
