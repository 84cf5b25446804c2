// The admin secret, compared in constant time. REST checks it in a request hook (lib/http/auth.ts),
// GraphQL in its own hook and at a WebSocket's connection_init.
import { createHash, timingSafeEqual } from 'node:crypto'
import { errors } from '../errors.js'

/** The header that carries the admin secret (pg-hooks' name), lower-case as Node gives header names. */
export const ADMIN_SECRET_HEADER = 'x-platformatic-admin-secret'

function digest (s: string): Buffer {
  // hashing first gives equal lengths, so timingSafeEqual never leaks the secret's length
  return createHash('sha256').update(s).digest()
}

export function secretMatches (expected: string, given: string): boolean {
  return timingSafeEqual(digest(expected), digest(given))
}

/** Throws 401 without the header, 403 with a wrong one. */
export function checkAdminSecret (expected: string, given: unknown): void {
  if (given === undefined || given === null || given === '') {
    throw new errors.HOOKPOST_ERR_MISSING_ADMIN_SECRET(ADMIN_SECRET_HEADER.toUpperCase())
  }
  const value = Array.isArray(given) ? String(given[0] ?? '') : String(given)
  if (!secretMatches(expected, value)) {
    throw new errors.HOOKPOST_ERR_WRONG_ADMIN_SECRET(ADMIN_SECRET_HEADER.toUpperCase())
  }
}
