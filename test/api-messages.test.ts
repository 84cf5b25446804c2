import t from 'tap'
import { testApp, testPool } from './helpers.js'

t.test('messages: create, read, list, update, delete', async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  const q = (await app.inject({ method: 'POST', url: '/queues', payload: { name: 'm', callbackUrl: 'http://127.0.0.1:9/x' } })).json()

  // a string body (pg-hooks' way) is stored and read back byte for byte
  const raw = '{"a":1,  "b":[2]}'
  const m1 = await app.inject({ method: 'POST', url: '/messages', payload: { queueId: q.id, body: raw } })
  t.equal(m1.statusCode, 200, m1.body)
  t.equal(m1.json().body, raw)
  t.equal((await pool.query('SELECT body, body_json FROM hookpost.messages WHERE id = $1', [m1.json().id])).rows[0].body, raw)

  // a JSON value comes back as the same value
  const m2 = await app.inject({ method: 'POST', url: '/messages/', payload: { queueId: q.id, body: { z: 1, a: [1, 'x'] }, headers: { 'X-A': '1' }, when: '2030-01-01T00:00:00.000Z' } })
  t.equal(m2.statusCode, 200, m2.body)
  t.same(m2.json().body, { z: 1, a: [1, 'x'] })
  t.match(m2.json(), { queueId: q.id, headers: { 'X-A': '1' }, when: '2030-01-01T00:00:00.000Z', sentAt: null, failed: false, retries: 0, cronId: null })
  t.equal(m2.json().nextAttemptAt, '2030-01-01T00:00:00.000Z')

  const m3 = await app.inject({ method: 'POST', url: '/messages', payload: { queueId: q.id } })
  t.equal(m3.json().body, null, 'a body may be left out')

  const list = await app.inject({ url: `/messages?where.queueId.eq=${q.id}&orderby.id=desc&totalCount=true&limit=2` })
  t.equal(list.statusCode, 200, list.body)
  t.same(list.json().map((m: any) => m.id), [m3.json().id, m2.json().id])
  t.equal(list.headers['x-total-count'], '3')

  const scoped = await app.inject({ url: `/queues/${q.id}/messages?where.when.gt=2029-01-01T00:00:00Z` })
  t.same(scoped.json().map((m: any) => m.id), [m2.json().id], 'relation route with a filter')

  // rescheduling a pending message moves its next attempt too
  const upd = await app.inject({ method: 'PUT', url: `/messages/${m2.json().id}`, payload: { when: '2031-01-01T00:00:00Z', body: 'plain' } })
  t.equal(upd.statusCode, 200, upd.body)
  t.equal(upd.json().when, '2031-01-01T00:00:00.000Z')
  t.equal(upd.json().nextAttemptAt, '2031-01-01T00:00:00.000Z')
  t.equal(upd.json().body, 'plain')

  // a message claimed for delivery (lease running) is not changed under the call
  await pool.query("UPDATE hookpost.messages SET locked_by = 'someone', run_at = now() + interval '1 minute' WHERE id = $1", [m2.json().id])
  t.equal((await app.inject({ method: 'PUT', url: `/messages/${m2.json().id}`, payload: { body: 'x' } })).statusCode, 409, 'claimed: 409')
  await pool.query('UPDATE hookpost.messages SET locked_by = NULL WHERE id = $1', [m2.json().id])

  // a delivered message can no longer be changed
  await pool.query('UPDATE hookpost.messages SET sent_at = now() WHERE id = $1', [m1.json().id])
  const late = await app.inject({ method: 'PUT', url: `/messages/${m1.json().id}`, payload: { body: 'x' } })
  t.equal(late.statusCode, 409, late.body)

  const del = await app.inject({ method: 'DELETE', url: `/messages/${m3.json().id}` })
  t.equal(del.statusCode, 200)
  t.equal((await app.inject({ url: `/messages/${m3.json().id}` })).statusCode, 404)
})

t.test('delivery state cannot be forged: read-only fields in a write body are dropped (as Platformatic does) and named', async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  const q = (await app.inject({ method: 'POST', url: '/queues', payload: { name: 'f', callbackUrl: 'http://127.0.0.1:9/x' } })).json()
  for (const [field, value] of [['sentAt', '2020-01-01T00:00:00Z'], ['failed', true], ['retries', 7]] as const) {
    const res = await app.inject({ method: 'POST', url: '/messages', payload: { queueId: q.id, body: 'x', [field]: value } })
    t.equal(res.statusCode, 200, `${field} on create: ${res.body}`)
    t.equal(res.headers['x-hookpost-ignored-fields'], field, 'the header names what was dropped')
  }
  const m = (await app.inject({ method: 'POST', url: '/messages', payload: { queueId: q.id, body: 'x' } })).json()
  const res = await app.inject({ method: 'PUT', url: `/messages/${m.id}`, payload: { sentAt: '2020-01-01T00:00:00Z', body: 'y' } })
  t.equal(res.statusCode, 200, res.body)
  t.equal(res.json().body, 'y', 'the writable field is written')
  const { rows } = await pool.query('SELECT count(*)::int AS n, bool_or(sent_at IS NOT NULL OR failed OR retries > 0) AS forged FROM hookpost.messages')
  t.same(rows[0], { n: 4, forged: false }, 'none sent, failed or retried')
  const only = await app.inject({ method: 'PUT', url: `/messages/${m.id}`, payload: { sentAt: '2020-01-01T00:00:00Z' } })
  t.equal(only.statusCode, 400, 'a PUT with nothing writable left is still a 400')
})

t.test('a message for a missing queue is a 400 naming queueId', async (t) => {
  const { app } = await testApp(t)
  const res = await app.inject({ method: 'POST', url: '/messages', payload: { queueId: 12345, body: 'x' } })
  t.equal(res.statusCode, 400)
  t.match(res.json().message, /queueId/)
})

t.test('idempotency key: a repeat returns the first message with 200', async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  const q = (await app.inject({ method: 'POST', url: '/queues', payload: { name: 'i', callbackUrl: 'http://127.0.0.1:9/x' } })).json()
  const first = await app.inject({ method: 'POST', url: '/messages', payload: { queueId: q.id, body: 'a', idempotencyKey: 'order-1' } })
  t.equal(first.statusCode, 200, 'a create answers 200, as pg-hooks does')
  t.equal(first.headers['idempotent-replayed'], undefined)
  const again = await Promise.all(Array.from({ length: 8 }, async () => await app.inject({ method: 'POST', url: '/messages', payload: { queueId: q.id, body: 'b', idempotencyKey: 'order-1' } })))
  for (const r of again) {
    t.equal(r.statusCode, 200)
    t.equal(r.headers['idempotent-replayed'], 'true', 'a repeat says so')
    t.equal(r.json().id, first.json().id)
    t.equal(r.json().body, 'a')
  }
  t.equal((await pool.query('SELECT count(*)::int AS n FROM hookpost.messages')).rows[0].n, 1)
})

t.test('concurrent enqueues share commits, and one bad message fails alone', async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  const q = (await app.inject({ method: 'POST', url: '/queues', payload: { name: 'gc', callbackUrl: 'http://127.0.0.1:9/x' } })).json()
  const results = await Promise.all(Array.from({ length: 60 }, async (_, i) => await app.inject({
    method: 'POST', url: '/messages', payload: { queueId: i === 30 ? 999_999 : q.id, body: `m${i}`, ...(i % 10 === 0 ? { idempotencyKey: 'same' } : {}) }
  })))
  t.equal(results[30]!.statusCode, 400, 'the message for a missing queue is refused')
  t.match(results[30]!.json().message, /queueId/)
  const valid = results.map((r, i) => ({ r, i })).filter(x => x.i !== 30)
  t.ok(valid.every(x => x.r.statusCode === 200), 'the others are accepted')
  // the key 'same' on this queue: inputs 0, 10, 20, 40, 50 -> one message, four repeats
  const keyed = valid.filter(x => x.i % 10 === 0)
  const replayed = (r: { headers: Record<string, unknown> }): boolean => r.headers['idempotent-replayed'] === 'true'
  t.equal(keyed.filter(x => !replayed(x.r)).length, 1, 'a repeated key creates one message')
  t.equal(keyed.filter(x => replayed(x.r)).length, 4, 'its repeats are told apart by Idempotent-Replayed')
  t.equal(new Set(keyed.map(x => x.r.json().id)).size, 1, 'every repeat of the key returns the same message')
  const plain = valid.filter(x => x.i % 10 !== 0)
  t.ok(plain.every(x => x.r.statusCode === 200 && !replayed(x.r) && x.r.json().body === `m${x.i}`), 'each reply carries its own message')
  const { rows } = await pool.query('SELECT count(*)::int AS n FROM hookpost.messages')
  t.equal(rows[0].n, plain.length + 1, 'nothing lost, nothing doubled')
  // with no bad message in the lot, concurrent enqueues share statements, so commits (autocommit)
  let inserts = 0
  const query = app.pool.query.bind(app.pool)
  ;(app.pool as any).query = (...args: any[]) => {
    const text = typeof args[0] === 'string' ? args[0] : args[0]?.text
    if (/INSERT INTO hookpost\.messages/.test(String(text))) inserts++
    return (query as any)(...args)
  }
  const more = await Promise.all(Array.from({ length: 60 }, async (_, i) => await app.inject({ method: 'POST', url: '/messages', payload: { queueId: q.id, body: `n${i}` } })))
  ;(app.pool as any).query = query
  t.ok(more.every((r, i) => r.statusCode === 200 && r.json().body === `n${i}`), 'each its own message')
  t.ok(inserts >= 1 && inserts < 30, `60 concurrent enqueues took ${inserts} INSERT statements (commits)`)
})
