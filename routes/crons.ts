import type { FastifyInstance } from 'fastify'
import { cronResource, messageResource, queueResource } from '../lib/api/resources.js'
import { crudRoutes, toManyRoute, toOneRoute } from '../lib/http/crud.js'
import { fieldsProjection } from '../lib/http/fields.js'

export default async function cronRoutes (app: FastifyInstance): Promise<void> {
  await app.register(crudRoutes(cronResource))
  fieldsProjection(app)
  // Platformatic DB's relation routes, as pg-hooks has them
  toOneRoute(app, cronResource, 'queue', queueResource, c => c.queueId)
  toManyRoute(app, cronResource, 'messages', messageResource, 'cronId')
}

/** /cron: the pg-hooks README's spelling, kept out of the OpenAPI document. */
export async function cronAliasRoutes (app: FastifyInstance): Promise<void> {
  await app.register(crudRoutes(cronResource, { hide: true }))
}
