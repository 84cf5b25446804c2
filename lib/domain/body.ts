// A message body is given either as a string (pg-hooks' way: sent byte for byte) or as a JSON value
// (sent as its JSON text). We store the text to send plus a flag, so reads give back what was written.

import { errors } from '../errors.js'

export interface StoredBody { body: string | null, bodyJson: boolean }

/**
 * How deep a JSON body may nest. JSON.stringify recurses: a body thousands of levels deep (a few KB of
 * "[[[[...") overflows the stack when it is stored or served, so it is refused with a 400 instead.
 */
export const MAX_BODY_DEPTH = 256

/**
 * What JSON text cannot say back, or undefined: nesting past max levels, or a number past a double's range
 * (1e400 parses as Infinity, which JSON.stringify would store as null). Iterative: it cannot overflow.
 * For any JSON value the API stores (a body, an event's payload, a payload schema).
 */
export function unsayable (value: unknown, max = MAX_BODY_DEPTH): string | undefined {
  if (value === null || (typeof value !== 'object' && typeof value !== 'number')) return undefined
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : 'a number too large for JSON'
  const stack: Array<[object, number]> = [[value as object, 1]]
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!
    if (depth > max) return `JSON nested more than ${max} levels deep`
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1])
      else if (typeof child === 'number' && !Number.isFinite(child)) return 'a number too large for JSON'
    }
  }
  return undefined
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

/**
 * What jsonb cannot hold in a JSON value's strings (keys too), or undefined: a NUL (jsonb refuses
 * \u0000) or half a surrogate pair (no character). For values PostgreSQL reads as jsonb: an event's payload.
 */
export function jsonbProblem (value: unknown): string | undefined {
  const stack: unknown[] = [value]
  while (stack.length > 0) {
    const node = stack.pop()
    const texts = typeof node === 'string'
      ? [node]
      : node !== null && typeof node === 'object' && !Array.isArray(node) ? Object.keys(node) : []
    for (const s of texts) {
      if (s.includes('\u0000')) return 'a NUL (\\u0000) character cannot be stored'
      if (LONE_SURROGATE.test(s)) return 'a lone UTF-16 surrogate is not text'
    }
    if (node === null || typeof node !== 'object') continue
    for (const child of Array.isArray(node) ? node : Object.values(node)) stack.push(child)
  }
  return undefined
}

export function toStored (body: unknown): StoredBody {
  if (body === undefined || body === null) return { body: null, bodyJson: false }
  if (typeof body === 'string') {
    // sent byte for byte as UTF-8, which has no bytes for half a surrogate pair (stored, it became U+FFFD)
    if (LONE_SURROGATE.test(body)) {
      throw new errors.HOOKPOST_ERR_INVALID_FIELD('body', 'a lone UTF-16 surrogate is not text')
    }
    return { body, bodyJson: false }
  }
  const problem = unsayable(body)
  if (problem !== undefined) throw new errors.HOOKPOST_ERR_INVALID_FIELD('body', problem)
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
