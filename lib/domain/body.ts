// A message body is given either as a string (pg-hooks' way: sent byte for byte) or as a JSON value
// (sent as its JSON text). We store the text to send plus a flag, so reads give back what was written.

import { errors } from '../errors.js'

export interface StoredBody { body: string | null, bodyJson: boolean }

/**
 * How deep a JSON body may nest. JSON.stringify recurses: a body thousands of levels deep (a few KB of
 * "[[[[...") overflows the stack when it is stored or served, so it is refused with a 400 instead.
 */
export const MAX_BODY_DEPTH = 256

/** Whether value nests arrays and objects more than max levels deep; iterative, so it cannot overflow itself. */
function deeperThan (value: unknown, max: number): boolean {
  const stack: Array<[object, number]> = [[value as object, 1]]
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!
    if (depth > max) return true
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1])
    }
  }
  return false
}

export function toStored (body: unknown): StoredBody {
  if (body === undefined || body === null) return { body: null, bodyJson: false }
  if (typeof body === 'string') return { body, bodyJson: false }
  if (typeof body === 'object' && deeperThan(body, MAX_BODY_DEPTH)) {
    throw new errors.HOOKPOST_ERR_INVALID_FIELD('body', `JSON nested more than ${MAX_BODY_DEPTH} levels deep`)
  }
  return { body: JSON.stringify(body), bodyJson: true }
}

export function fromStored (body: string | null, bodyJson: boolean): unknown {
  if (body === null) return null
  return bodyJson ? JSON.parse(body) : body
}

/** JSON schema for a body: anything JSON can say. */
export const bodySchema = {
  description: 'sent as-is when a string; sent as its JSON text when any other JSON value'
} as const
