import type { FastifyInstance } from 'fastify'
import { cronResource } from '../lib/api/resources.js'
import { crudRoutes } from '../lib/http/crud.js'

export default async function cronRoutes (app: FastifyInstance): Promise<void> {
  await app.register(crudRoutes(cronResource))
}

/** /cron: the pg-hooks README's spelling, kept out of the OpenAPI document. */
export async function cronAliasRoutes (app: FastifyInstance): Promise<void> {
  await app.register(crudRoutes(cronResource, { hide: true }))
}
