// Header rules shared by the API (what may be stored) and the sender (what is sent).
import { errors } from '../errors.js'

// RFC 9110 token: what a header name may contain
export const HEADER_NAME_PATTERN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$"
// no CR, LF or NUL: a stored value must not be able to inject another header
// and nothing undici refuses to send (it takes latin-1 only): such a message could never be delivered
export const HEADER_VALUE_PATTERN = '^[\\t\\u0020-\\u007e\\u0080-\\u00ff]*$'

// Framing and hop-by-hop headers belong to the HTTP client, and our own delivery headers are ours:
// a stored value would corrupt the request or forge the message id
export const RESERVED_HEADERS = new Set([
  'host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer',
  'proxy-connection', 'expect',
  'x-hookpost-message-id', 'x-hookpost-attempt', 'x-hookpost-queue-id', 'x-hookpost-event-type', 'x-hookpost-event-id'
])

export const headersSchema = {
  type: 'object',
  propertyNames: { pattern: HEADER_NAME_PATTERN },
  additionalProperties: { type: 'string', maxLength: 8192, pattern: HEADER_VALUE_PATTERN },
  maxProperties: 64
} as const

const NAME = new RegExp(HEADER_NAME_PATTERN)
const VALUE = new RegExp(HEADER_VALUE_PATTERN)

/**
 * What headersSchema and checkHeaders would refuse in a stored object, said in words; undefined when
 * nothing: for rows that never passed the API (a pg-hooks import).
 */
export function headersProblem (h: Record<string, unknown>): string | undefined {
  const names = Object.keys(h)
  if (names.length > headersSchema.maxProperties) return `more than ${headersSchema.maxProperties} headers`
  for (const k of names) {
    const v = h[k]
    if (!NAME.test(k)) return `${JSON.stringify(k)} is not a header name`
    if (RESERVED_HEADERS.has(k.toLowerCase())) return `${k} is set by hookpost and cannot be stored`
    if (typeof v !== 'string') return `${k} must be a string, not ${v === null ? 'null' : typeof v}`
    if (v.length > headersSchema.additionalProperties.maxLength || !VALUE.test(v)) {
      return `${k} has a value that cannot be sent`
    }
  }
  return undefined
}

/** Refuses headers hookpost or the HTTP client own, naming the first one. */
export function checkHeaders (h: Record<string, unknown> | null | undefined): void {
  if (!h) return
  const reserved = Object.keys(h).find(k => RESERVED_HEADERS.has(k.toLowerCase()))
  if (reserved !== undefined) {
    throw new errors.HOOKPOST_ERR_INVALID_FIELD('headers', `${reserved} is set by hookpost and cannot be stored`)
  }
}

/**
 * Queue headers, then message headers over them, matched case-insensitively so a name is never sent
 * twice; content-type defaults to application/json.
 */
export function mergeHeaders (queue: Record<string, string>, message: Record<string, string>): Record<string, string> {
  // for...in over two plain objects: this runs once per delivery, and Object.entries allocates
  const out: Record<string, string> = {}
  for (const k in queue) out[k.toLowerCase()] = queue[k]!
  for (const k in message) out[k.toLowerCase()] = message[k]!
  out['content-type'] ??= 'application/json'
  return out
}
