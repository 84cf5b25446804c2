// X-PLATFORMATIC-ADMIN-SECRET, compared in constant time.
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { errors } from '../errors.js'

export const ADMIN_SECRET_HEADER = 'x-platformatic-admin-secret'

function digest (s: string): Buffer {
  // hashing first gives equal lengths, so timingSafeEqual never leaks the secret's length
  return createHash('sha256').update(s).digest()
}

export function secretMatches (expected: string, given: string): boolean {
  return timingSafeEqual(digest(expected), digest(given))
}

/** Throws 401 without the header, 403 with a wrong one. */
export function checkAdminSecret (expected: string, given: string | string[] | undefined): void {
  if (given === undefined || given === '') throw new errors.MissingSecret()
  const value = Array.isArray(given) ? given[0] ?? '' : given
  if (!secretMatches(expected, value)) throw new errors.WrongSecret()
}

export function makeAuthHook (secret: string | null) {
  return async function adminSecretHook (req: FastifyRequest): Promise<void> {
    if (secret === null) return
    checkAdminSecret(secret, req.headers[ADMIN_SECRET_HEADER])
  }
}
