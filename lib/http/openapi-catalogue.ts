// The event type catalogue in the OpenAPI document: each type as an entry of `x-webhooks` (the
// OpenAPI 3.0 extension that 3.1 made `webhooks`, as Redoc and Svix's documents use it), with its
// description, payload schema and deprecation. The document is open to all; the catalogue is the
// operator's data, so it is added only for a request that carries the admin secret (or when none is set).
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Pool } from 'pg'
import { ADMIN_SECRET_HEADER, secretMatches } from '../api/auth.js'
import { allEventTypes, type EventType } from '../store/event-types.js'

/** the most types the document lists */
export const CATALOGUE_MAX = 1000

const catalogues = new WeakMap<FastifyRequest, EventType[]>()

/** @fastify/swagger-ui's options: a preHandler that reads the catalogue, and the transform that adds it. */
export function catalogueInDocument (pool: Pool, adminSecret: string | null) {
  return {
    uiHooks: {
      preHandler: async (req: FastifyRequest): Promise<void> => {
        if (!/\/(json|yaml)$/.test(req.url.split('?')[0]!)) return
        const given = req.headers[ADMIN_SECRET_HEADER]
        if (adminSecret !== null && (typeof given !== 'string' || !secretMatches(adminSecret, given))) return
        catalogues.set(req, await allEventTypes(pool, CATALOGUE_MAX))
      }
    },
    transformSpecification: (doc: Readonly<Record<string, any>>, req: FastifyRequest, _reply: FastifyReply) => {
      const types = catalogues.get(req)
      if (types === undefined || types.length === 0) return doc
      const webhooks: Record<string, unknown> = {}
      for (const t of types) {
        webhooks[t.name] = {
          post: {
            summary: t.description ?? t.name,
            operationId: `event:${t.name}`,
            deprecated: t.deprecated,
            tags: ['eventTypes'],
            description: 'Published with POST /events; delivered to every queue subscribed to this type. ' +
              'The x-hookpost-event-type header names the type.',
            requestBody: {
              content: { 'application/json': { schema: t.schema === null ? {} : t.schema } }
            },
            responses: { '2XX': { description: 'any 2xx answer: delivered' } }
          }
        }
      }
      return { ...doc, 'x-webhooks': webhooks }
    }
  }
}
