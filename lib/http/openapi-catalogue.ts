// The event type catalogue in the OpenAPI document: each type as an entry of `x-webhooks` (the
// OpenAPI 3.0 extension that 3.1 made `webhooks`, as Redoc and Svix's documents use it), with its
// description, payload schema and deprecation. The document is open to all; the catalogue is the
// operator's data, so it is added only for a request that carries the admin secret (or when none is set).
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Pool } from 'pg'
import { ADMIN_SECRET_HEADER, secretMatches } from '../api/auth.js'
import { read } from '../db/query.js'
import { allEventTypes } from '../store/event-types.js'

/** the most types the document lists */
export const CATALOGUE_MAX = 1000
/**
 * the most bytes of payload schemas the document carries; the types past it are listed without theirs
 * (attack round: 1,000 schemas of 64 KB made each request a 107 MB document, built every time)
 */
export const CATALOGUE_SCHEMA_BYTES = 1024 * 1024

type Webhooks = Record<string, unknown>

/** The x-webhooks of the catalogue as it is, built once per version of it (its size and latest change). */
function catalogue (pool: Pool) {
  let built: { version: string, webhooks: Promise<Webhooks> } | undefined
  return async (): Promise<Webhooks> => {
    const { rows: [v] } = await read<{ version: string }>(pool,
      'SELECT count(*) || \':\' || coalesce(max(updated_at)::text, \'\') AS version FROM hookpost.event_types')
    if (built?.version !== v!.version) {
      const webhooks = allEventTypes(pool, CATALOGUE_MAX).then((types) => {
        const out: Webhooks = {}
        let bytes = 0
        for (const t of types) {
          const size = t.schema === null ? 0 : JSON.stringify(t.schema).length
          const fits = (bytes += size) <= CATALOGUE_SCHEMA_BYTES
          out[t.name] = {
            post: {
              summary: t.description ?? t.name,
              operationId: `event:${t.name}`,
              deprecated: t.deprecated,
              tags: ['eventTypes'],
              description: 'Published with POST /events; delivered to every queue subscribed to this type. ' +
                'The x-hookpost-event-type header names the type.' +
                (fits ? '' : ` Its payload schema is too large to list here: GET /event-types/${t.id}`),
              requestBody: {
                content: { 'application/json': { schema: t.schema === null || !fits ? {} : t.schema } }
              },
              responses: { '2XX': { description: 'any 2xx answer: delivered' } }
            }
          }
        }
        return out
      })
      built = { version: v!.version, webhooks }
      // a failed build is not kept
      webhooks.catch(() => { if (built?.webhooks === webhooks) built = undefined })
    }
    return await built.webhooks
  }
}

const catalogues = new WeakMap<FastifyRequest, Webhooks>()

/** @fastify/swagger-ui's options: a preHandler that reads the catalogue, and the transform that adds it. */
export function catalogueInDocument (pool: Pool, adminSecret: string | null) {
  const current = catalogue(pool)
  return {
    uiHooks: {
      preHandler: async (req: FastifyRequest): Promise<void> => {
        if (!/\/(json|yaml)$/.test(req.url.split('?')[0]!)) return
        const given = req.headers[ADMIN_SECRET_HEADER]
        if (adminSecret !== null && (typeof given !== 'string' || !secretMatches(adminSecret, given))) return
        catalogues.set(req, await current())
      }
    },
    transformSpecification: (doc: Readonly<Record<string, any>>, req: FastifyRequest, _reply: FastifyReply) => {
      const webhooks = catalogues.get(req)
      if (webhooks === undefined || Object.keys(webhooks).length === 0) return doc
      return { ...doc, 'x-webhooks': webhooks }
    }
  }
}
