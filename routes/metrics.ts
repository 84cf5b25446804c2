import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'

// Open like /health: the metrics carry counts, durations and queue ids, never a payload, URL or secret.
// Where even that is too much, keep the port off the public network.
export default async function metricsRoutes (app: FastifyInstance): Promise<void> {
  app.get('/metrics', {
    schema: {
      tags: ['health'],
      summary: 'Prometheus metrics (text exposition format)',
      operationId: 'getMetrics',
      response: { 200: { type: 'string' } }
    }
  }, async (_req, reply) => {
    const delivery = app.delivery
    const text = await app.metrics.scrape(app.pool, {
      leader: delivery?.leader.isLeader === true,
      inFlight: delivery?.worker.inFlightCount ?? 0
    }, app.log as unknown as Logger)
    reply.type(app.metrics.registry.contentType)
    return text
  })
}
