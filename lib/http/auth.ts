// REST's admin-secret check: a request hook over every API route (lib/api/auth.ts compares).
import type { FastifyRequest } from 'fastify'
import { ADMIN_SECRET_HEADER, checkAdminSecret } from '../api/auth.js'

export function makeAuthHook (secret: string | null) {
  return async function adminSecretHook (req: FastifyRequest): Promise<void> {
    if (secret === null) return
    checkAdminSecret(secret, req.headers[ADMIN_SECRET_HEADER])
  }
}
