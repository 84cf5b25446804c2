import type { FastifyInstance } from 'fastify'
import { deliveryItem, eventItem, publish, publishInput } from '../lib/api/events.js'
import { listQuerySchema } from '../lib/api/list-query.js'
import { messageResource } from '../lib/api/resources.js'
import { errorReplies, idParams, IDEMPOTENT_REPLAYED, sendList, toManyRoute, typed } from '../lib/http/crud.js'
import { fieldsProjection, fieldsQuery } from '../lib/http/fields.js'
import {
  countEvents, deliveriesOf, eventEntity, getEvent, listEvents, MAX_DELIVERIES_LISTED
} from '../lib/store/events.js'

const events = { entity: eventEntity, tag: 'events', list: listEvents, count: countEvents, get: getEvent }

const eventWithDeliveries = {
  ...eventItem,
  title: 'EventWithDeliveries',
  properties: {
    ...eventItem.properties,
    deliveries: {
      type: 'array',
      items: deliveryItem,
      description: `its messages, one per queue (and per replay), at most ${MAX_DELIVERIES_LISTED}: ` +
        'GET /events/{id}/messages pages through all of them'
    }
  }
}

export default async function eventRoutes (instance: FastifyInstance): Promise<void> {
  const app = typed(instance)
  fieldsProjection(instance)
  const fieldsOnly = { type: 'object', properties: { fields: fieldsQuery }, additionalProperties: false } as const

  app.post('/', {
    schema: {
      tags: ['events'],
      operationId: 'publishEvent',
      summary: 'publish an event: every queue subscribed to its type (and whose filter it matches) gets a message',
      description: 'The event and its messages are stored by one statement. The subscribers are those at ' +
        'publish time. `endpoints` says how many queues it went to.',
      querystring: fieldsOnly,
      body: publishInput,
      response: { ...errorReplies, 200: eventItem }
    }
  }, async (req, reply) => {
    const { event, created } = await publish(app.pool, req.body, {
      acceptUnknownTypes: app.config.hooks.acceptUnknownEventTypes
    })
    if (!created) reply.header(IDEMPOTENT_REPLAYED, 'true')
    return event
  })

  app.get('/', {
    schema: {
      tags: ['events'],
      operationId: 'getEvents',
      summary: 'list events',
      querystring: listQuerySchema(eventEntity),
      response: { ...errorReplies, 200: { type: 'array', items: eventItem } }
    }
  }, async (req, reply) => await sendList(reply, app.pool, events, req.query))

  app.get('/:id', {
    schema: {
      tags: ['events'],
      operationId: 'getEventById',
      summary: 'one event, with where each of its messages stands',
      params: idParams,
      querystring: fieldsOnly,
      response: { ...errorReplies, 200: eventWithDeliveries }
    }
  }, async (req) => {
    const event = await getEvent(app.pool, req.params.id)
    return { ...event, deliveries: await deliveriesOf(app.pool, event.id) }
  })

  toManyRoute(instance, events, 'messages', messageResource, 'eventId')
}
