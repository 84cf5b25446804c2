// Events through GraphQL: publishEvent, the catalogue, Event.messages and Message.event, replayQueue,
// with typed variables as clients send them, and the same 400s as REST.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { testApp, testPool } from './helpers.js'

async function gql (app: FastifyInstance, query: string, variables?: object): Promise<{ data: any, errors?: any[] }> {
  const res = await app.inject({ method: 'POST', url: '/graphql', payload: { query, variables } })
  return res.json()
}

async function ok (app: FastifyInstance, query: string, variables?: object): Promise<any> {
  const r = await gql(app, query, variables)
  if (r.errors !== undefined) throw new Error(JSON.stringify(r.errors))
  return r.data
}

t.test('publishEvent fans out; Event.messages and Message.event read it back', async (t) => {
  const { app } = await testApp(t)
  const save = 'mutation ($i: QueueInput!) { saveQueue(input: $i) { id eventTypes filter payloadFormat } }'
  const a = (await ok(app, save, { i: { name: 'a', callbackUrl: 'http://127.0.0.1:9/a', eventTypes: ['order.*'] } })).saveQueue
  const b = (await ok(app, save, {
    i: { name: 'b', callbackUrl: 'http://127.0.0.1:9/b', eventTypes: ['*'], filter: { vip: true }, payloadFormat: 'standard-webhooks' }
  })).saveQueue
  t.same(b, { id: b.id, eventTypes: ['*'], filter: { vip: true }, payloadFormat: 'standard-webhooks' })

  const publish = `mutation ($e: PublishEventInput!) {
    publishEvent(input: $e) { id type payload endpoints messages(orderBy: [{ field: queueId, direction: ASC }]) { queueId eventType event { id } } }
  }`
  const one = (await ok(app, publish, { e: { type: 'order.created', payload: { vip: true, n: 1 }, idempotencyKey: 'g-1' } })).publishEvent
  t.equal(one.endpoints, 2)
  t.same(one.messages.map((m: any) => m.queueId), [a.id, b.id])
  t.ok(one.messages.every((m: any) => m.eventType === 'order.created' && m.event.id === one.id))
  const repeat = (await ok(app, publish, { e: { type: 'order.created', payload: { other: 1 }, idempotencyKey: 'g-1' } })).publishEvent
  t.equal(repeat.id, one.id, 'an idempotent repeat returns the first event')
  t.same(repeat.payload, { vip: true, n: 1 })
  // an inline literal payload, as in GraphiQL
  const inline = await ok(app, 'mutation { publishEvent(input: { type: "user.created", payload: { vip: false } }) { endpoints } }')
  t.equal(inline.publishEvent.endpoints, 0, 'neither a pattern nor a filter matches')

  const d = await ok(app, `{
    events(where: { type: { like: "order.%" } }) { id type }
    countEvents { total }
    getEventById(id: ${one.id}) { type messages { id } }
    messages(where: { eventId: { eq: ${one.id} } }) { eventId replay }
  }`)
  t.same(d.events.map((e: any) => e.type), ['order.created'])
  t.equal(d.countEvents.total, 2)
  t.equal(d.getEventById.messages.length, 2)
  t.same(d.messages.map((m: any) => m.replay), [false, false])
})

t.test('the catalogue, replayQueue, and the same 400s as REST', async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  const et = await ok(app, 'mutation ($i: EventTypeInput!) { saveEventType(input: $i) { id name schema deprecated } }', {
    i: { name: 'invoice.paid', schema: { type: 'object', required: ['amount'] }, description: 'paid' }
  })
  t.equal(et.saveEventType.name, 'invoice.paid')
  const updated = await ok(app, 'mutation ($i: EventTypeInput!) { saveEventType(input: $i) { deprecated } }',
    { i: { id: et.saveEventType.id, deprecated: true } })
  t.equal(updated.saveEventType.deprecated, true)
  const bad = await gql(app, 'mutation ($e: PublishEventInput!) { publishEvent(input: $e) { id } }',
    { e: { type: 'invoice.paid', payload: { amt: 1 } } })
  t.match(bad.errors?.[0].message, /payload must have required property 'amount'/)
  const badType = await gql(app, 'mutation { publishEvent(input: { type: "a b", payload: 1 }) { id } }')
  t.match(badType.errors?.[0].message, /input\/type/)
  const badQueue = await gql(app, 'mutation { saveQueue(input: { name: "x", callbackUrl: "http://127.0.0.1:9/", eventTypes: ["a*"] }) { id } }')
  t.match(badQueue.errors?.[0].message, /eventTypes\/0/)
  t.equal((await pool.query('SELECT count(*)::int AS n FROM hookpost.events')).rows[0].n, 0)

  const q = await ok(app, 'mutation { saveQueue(input: { name: "r", callbackUrl: "http://127.0.0.1:9/", eventTypes: ["invoice.*"] }) { id } }')
  await pool.query("SELECT hookpost.publish('invoice.paid', '{\"amount\": 1}')")
  await pool.query('UPDATE hookpost.messages SET failed = true')
  const since = new Date(Date.now() - 60_000).toISOString()
  const replay = 'mutation ($id: ID!, $since: DateTime!) { replayQueue(id: $id, since: $since) { queueId replayed more } }'
  const first = (await ok(app, replay, { id: q.saveQueue.id, since })).replayQueue
  t.same(first, { queueId: q.saveQueue.id, replayed: 1, more: false })
  t.same((await ok(app, replay, { id: q.saveQueue.id, since })).replayQueue.replayed, 0)
  const wrong = await gql(app, replay, { id: q.saveQueue.id, since: 'soon' })
  t.match(wrong.errors?.[0].message, /since/)
  const backwards = await gql(app, 'mutation { replayQueue(id: 1, since: "2026-02-01T00:00:00Z", until: "2026-01-01T00:00:00Z") { replayed } }')
  t.match(backwards.errors?.[0].message, /since/)

  const del = await ok(app, 'mutation { deleteEventTypes(where: { name: { eq: "invoice.paid" } }) { id } }')
  t.equal(del.deleteEventTypes.length, 1)
  t.same((await ok(app, '{ eventTypes { name } countEventTypes { total } }')), { eventTypes: [], countEventTypes: { total: 0 } })
})
