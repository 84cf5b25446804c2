// Platformatic DB's `fields` parameter: `?fields=id,name` returns only those fields of each row, on
// lists, single rows, relations and writes alike (never an error body). The names are checked before the handler runs
// (a 400 naming `fields`, nothing written), against the route's own 200 schema.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { errors } from '../errors.js'

export const fieldsQuery = {
  type: 'string',
  maxLength: 2000,
  description: 'comma-separated names of the fields to return (all when absent)'
} as const

// the names a request asked for, between its check and its serialization
const chosen = new WeakMap<FastifyRequest, string[]>()

function responseFields (schema: unknown): Set<string> {
  const s = schema as { properties?: object, items?: { properties?: object } } | undefined
  return new Set(Object.keys(s?.properties ?? s?.items?.properties ?? {}))
}

function pick (row: unknown, names: string[]): unknown {
  if (row === null || typeof row !== 'object') return row
  const out: Record<string, unknown> = {}
  for (const n of names) if (n in row) out[n] = (row as Record<string, unknown>)[n]
  return out
}

/** Honour `fields` on the routes this scope declares after this call. */
export function fieldsProjection (app: FastifyInstance): void {
  app.addHook('preHandler', async (req) => {
    const raw = (req.query as { fields?: unknown } | undefined)?.fields
    if (typeof raw !== 'string') return
    const names = raw.split(',').map(s => s.trim()).filter(s => s !== '')
    const response = (req.routeOptions.schema?.response as Record<string, unknown> | undefined)?.[200]
    const known = responseFields(response)
    const unknown = names.filter(n => !known.has(n))
    if (names.length === 0 || unknown.length > 0) {
      throw new errors.HOOKPOST_ERR_INVALID_FIELD('fields', names.length === 0
        ? 'name at least one field'
        : `no field ${unknown.map(n => JSON.stringify(n)).join(', ')}; fields are ${[...known].join(', ')}`)
    }
    chosen.set(req, names)
  })
  app.addHook('preSerialization', async (req, reply, payload: unknown) => {
    const names = chosen.get(req)
    // an error keeps its whole body: statusCode, code and message are the contract (attack round)
    if (names === undefined || reply.statusCode >= 300) return payload
    return Array.isArray(payload) ? payload.map(row => pick(row, names)) : pick(payload, names)
  })
}
