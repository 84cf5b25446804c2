// lib/delivery/events.ts: the outcome NOTIFY payload, encoded by the deliverer and decoded by every
// process's GraphQL subscriptions.
import t from 'tap'
import {
  decodeOutcomes, encodeOutcomes, EVENTS_PAYLOAD_MAX, outcomeOf, type OutcomeEvent
} from '../lib/delivery/events.js'
import { fail, ok } from './engine-fakes.js'

const e = (i: number, over: Partial<OutcomeEvent> = {}): OutcomeEvent =>
  ({ messageId: i, queueId: 3, attempt: 1, ok: true, statusCode: 200, willRetry: false, ...over })

t.test('round trip, in order', async (t) => {
  const events = [
    e(1), e(2, { ok: false, statusCode: null, willRetry: true, attempt: 4 }), e(3, { ok: false, statusCode: 500 })
  ]
  const payloads = encodeOutcomes(events)
  t.equal(payloads.length, 1)
  t.same(decodeOutcomes(payloads[0]!), events)
})

t.test('the wire format is the tuple the previous release reads', async (t) => {
  t.same(encodeOutcomes([e(9, { ok: false, statusCode: 503, willRetry: true })]), ['[[9,3,1,0,503,1]]'])
})

t.test('split into payloads under the NOTIFY limit, none lost', async (t) => {
  const events = Array.from({ length: 2000 }, (_, i) => e(1_000_000_000 + i))
  const payloads = encodeOutcomes(events)
  t.ok(payloads.length > 1)
  t.ok(payloads.every(p => Buffer.byteLength(p) <= EVENTS_PAYLOAD_MAX))
  t.same(payloads.flatMap(decodeOutcomes), events)
})

t.test('from a recorded completion', async (t) => {
  const base = {
    id: 5, claimToken: 'x', queueId: 2, attempt: 3, when: new Date(0), parked: false, holdUntil: null, slotted: false, ordered: false, observedRate: 1
  }
  t.same(outcomeOf({ ...base, result: ok(201), retryAt: null }), e(5, { queueId: 2, attempt: 3, statusCode: 201 }))
  t.same(outcomeOf({ ...base, result: fail(500), retryAt: new Date() }),
    e(5, { queueId: 2, attempt: 3, ok: false, statusCode: 500, willRetry: true }))
})

t.test('malformed payloads decode to nothing, never throw', async (t) => {
  t.same(decodeOutcomes('not json'), [])
  t.same(decodeOutcomes('{"a":1}'), [])
  t.same(decodeOutcomes('[[1,2],["x",1,1,1,200,0],[1,2,3,1,"200",0]]'), [])
  t.same(decodeOutcomes('[[1,2,3,1,200,0,"later field"]]'), [e(1, { queueId: 2, attempt: 3 })],
    'fields appended later are ignored')
})
