import type { FastifyInstance } from 'fastify'
import { eventTypeResource } from '../lib/api/events.js'
import { crudRoutes } from '../lib/http/crud.js'

export default async function eventTypeRoutes (instance: FastifyInstance): Promise<void> {
  await instance.register(crudRoutes(eventTypeResource))
}
