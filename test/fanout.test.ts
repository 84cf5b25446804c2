// Events and fan-out through the API, against a real server and real receivers: subscriptions with
// overlapping patterns and a filter, idempotent publishing, the event type catalogue and its schemas,
// the Standard Webhooks envelope, replay, and bad input (a 400 naming the field, nothing stored).
import t from 'tap'
import { Webhook } from 'standardwebhooks'
import { deliveringApp, eventually, post, receiver, testApp, testPool, type Received } from './helpers.js'

const byType = (rs: Received[]): string[] => rs.map(r => String(r.headers['x-hookpost-event-type'])).sort()

t.test('three endpoints with overlapping patterns and a filter each get exactly their events', async (t) => {
  const target = await receiver(t)
  const { app } = await deliveringApp(t)
  const all = await post(app, '/queues', { name: 'all', callbackUrl: `${target.url}/all`, eventTypes: ['*'] })
  const orders = await post(app, '/queues', { name: 'orders', callbackUrl: `${target.url}/orders`, eventTypes: ['order.*'] })
  const de = await post(app, '/queues', {
    name: 'de', callbackUrl: `${target.url}/de`, eventTypes: ['order.created', 'user.deleted'], filter: { country: 'DE' }
  })
  // no eventTypes: direct messages only, never an event
  await post(app, '/queues', { name: 'direct', callbackUrl: `${target.url}/direct` })
  t.same(orders.eventTypes, ['order.*'])
  t.same(de.filter, { country: 'DE' })
  t.equal(all.payloadFormat, 'raw')

  const published = [
    ['order.created', { id: 1, country: 'DE' }, 3],
    ['order.created', { id: 2, country: 'FR' }, 2],
    ['order.paid.eu', { id: 3, country: 'DE' }, 2],
    ['order', { id: 4 }, 1], // order.* needs a segment after "order."
    ['user.deleted', { id: 5, country: 'DE', extra: [1] }, 2],
    ['user.created', { id: 6 }, 1]
  ] as const
  for (const [type, payload, endpoints] of published) {
    const ev = await post(app, '/events', { type, payload })
    t.equal(ev.endpoints, endpoints, `${type} ${JSON.stringify(payload)} went to ${endpoints}`)
    t.same(ev.payload, payload)
  }
  const total = published.reduce((n, p) => n + p[2], 0)
  const got = await target.waitFor(total)
  const at = (path: string): Received[] => got.filter(r => r.url === path)
  t.same(byType(at('/all')), ['order', 'order.created', 'order.created', 'order.paid.eu', 'user.created', 'user.deleted'])
  t.same(byType(at('/orders')), ['order.created', 'order.created', 'order.paid.eu'])
  t.same(at('/de').map(r => JSON.parse(r.body).id).sort(), [1, 5])
  t.equal(at('/direct').length, 0)
  for (const r of got) {
    t.match(r.headers['x-hookpost-event-id'], /^\d+$/)
    t.equal(r.headers['content-type'], 'application/json')
  }
  // the raw payload as published, byte for byte (key order and all)
  t.equal(at('/de').find(r => r.headers['x-hookpost-event-type'] === 'user.deleted')!.body,
    JSON.stringify({ id: 5, country: 'DE', extra: [1] }))

  // reading it back: the event with its deliveries, its messages, and the messages by event
  const list = (await app.inject({ url: '/events?where.type.eq=order.created&orderby.id=asc' })).json()
  t.equal(list.length, 2)
  const one = (await app.inject({ url: `/events/${list[0].id}` })).json()
  t.equal(one.deliveries.length, 3)
  t.same(one.deliveries.map((d: any) => d.queueId).sort(), [all.id, orders.id, de.id].sort())
  const messages = (await app.inject({ url: `/events/${list[0].id}/messages?orderby.id=asc` })).json()
  t.equal(messages.length, 3)
  t.ok(messages.every((m: any) => m.eventId === list[0].id && m.eventType === 'order.created' && !m.replay))
  const byEvent = (await app.inject({ url: '/messages?where.eventType.eq=order.paid.eu' })).json()
  t.equal(byEvent.length, 2)
  t.equal((await app.inject({ url: '/events/999999' })).statusCode, 404)
})

t.test('a repeated idempotency key returns the first event and creates nothing', async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  await post(app, '/queues', { name: 'a', callbackUrl: 'http://127.0.0.1:9/a', eventTypes: ['*'] })
  const first = await app.inject({ method: 'POST', url: '/events', payload: { type: 'x.y', payload: { n: 1 }, idempotencyKey: 'k-1' } })
  t.equal(first.statusCode, 200)
  t.notOk(first.headers['idempotent-replayed'])
  const again = await app.inject({ method: 'POST', url: '/events', payload: { type: 'x.y', payload: { n: 2 }, idempotencyKey: 'k-1' } })
  t.equal(again.statusCode, 200)
  t.equal(again.headers['idempotent-replayed'], 'true')
  t.equal(again.json().id, first.json().id)
  t.same(again.json().payload, { n: 1 }, 'the first event, as stored')
  t.equal(again.json().endpoints, 1)
  const { rows: [n] } = await pool.query('SELECT (SELECT count(*) FROM hookpost.events)::int AS e, (SELECT count(*) FROM hookpost.messages)::int AS m')
  t.same(n, { e: 1, m: 1 })
  // concurrent repeats: still one event
  const results = await Promise.all(Array.from({ length: 8 }, async () =>
    (await app.inject({ method: 'POST', url: '/events', payload: { type: 'x.y', payload: {}, idempotencyKey: 'k-2' } })).json()))
  t.equal(new Set(results.map(r => r.id)).size, 1)
  t.equal((await pool.query("SELECT count(*)::int AS n FROM hookpost.events WHERE idempotency_key = 'k-2'")).rows[0].n, 1)
})

t.test('the standard-webhooks envelope verifies with the standardwebhooks package', async (t) => {
  const target = await receiver(t)
  const { app } = await deliveringApp(t)
  const q = await post(app, '/queues', {
    name: 'sw', callbackUrl: `${target.url}/sw`, eventTypes: ['invoice.*'], payloadFormat: 'standard-webhooks'
  })
  const { signingSecret } = await post(app, `/queues/${q.id}/signing-secret`, {})
  const ev = await post(app, '/events', { type: 'invoice.paid', payload: { invoice: 'in_1', amount: 12.5 } })
  const [r] = await target.waitFor(1)
  const verified = new Webhook(signingSecret).verify(r!.body, {
    'webhook-id': String(r!.headers['webhook-id']),
    'webhook-timestamp': String(r!.headers['webhook-timestamp']),
    'webhook-signature': String(r!.headers['webhook-signature'])
  }) as any
  t.equal(verified.type, 'invoice.paid')
  t.same(verified.data, { invoice: 'in_1', amount: 12.5 })
  t.equal(new Date(verified.timestamp).toISOString(), new Date(ev.createdAt).toISOString(), 'the event\'s time')
  t.equal(r!.body, `{"type":"invoice.paid","timestamp":"${verified.timestamp}","data":{"invoice":"in_1","amount":12.5}}`,
    'the envelope around the payload as published')
  t.equal(r!.headers['x-hookpost-event-type'], 'invoice.paid')
})

t.test('the catalogue: a schema-validated type refuses a bad payload with a 400 naming the path', async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  await post(app, '/queues', { name: 'a', callbackUrl: 'http://127.0.0.1:9/a', eventTypes: ['*'] })
  const et = await post(app, '/event-types', {
    name: 'order.created',
    description: 'an order was placed',
    schema: { type: 'object', required: ['id'], properties: { id: { type: 'integer' }, items: { type: 'array', items: { type: 'string' } } } }
  })
  t.equal(et.deprecated, false)
  const bad = await app.inject({ method: 'POST', url: '/events', payload: { type: 'order.created', payload: { id: 1, items: ['a', 2] } } })
  t.equal(bad.statusCode, 400)
  t.match(bad.json().message, /payload\/items\/1 must be string/)
  const missing = await app.inject({ method: 'POST', url: '/events', payload: { type: 'order.created', payload: {} } })
  t.match(missing.json().message, /payload must have required property 'id'/)
  t.equal((await app.inject({ method: 'POST', url: '/events', payload: { type: 'order.created', payload: { id: 7 } } })).statusCode, 200)

  // an edit of the schema is seen at the next publish
  await post(app, `/event-types/${et.id}`, { schema: { type: 'object', required: ['sku'] } }, 'PUT')
  t.equal((await app.inject({ method: 'POST', url: '/events', payload: { type: 'order.created', payload: { id: 7 } } })).statusCode, 400)
  t.equal((await pool.query('SELECT count(*)::int AS n FROM hookpost.events')).rows[0].n, 1, 'refused publishes stored nothing')
  t.equal((await pool.query('SELECT count(*)::int AS n FROM hookpost.messages')).rows[0].n, 1)

  // an invalid schema is a 400 naming schema; a duplicate name a 409
  const invalid = await app.inject({ method: 'POST', url: '/event-types', payload: { name: 'x', schema: { type: 'nope' } } })
  t.equal(invalid.statusCode, 400)
  t.match(invalid.json().message, /"schema": not a valid JSON Schema/)
  const remote = await app.inject({ method: 'POST', url: '/event-types', payload: { name: 'x', schema: { $ref: 'http://127.0.0.1:9/s.json' } } })
  t.equal(remote.statusCode, 400, 'a remote $ref is refused, never fetched')
  t.equal((await app.inject({ method: 'POST', url: '/event-types', payload: { name: 'order.created' } })).statusCode, 409)
  const doc = (await app.inject({ url: '/documentation/json' })).json()
  t.ok(doc.paths['/event-types/'] ?? doc.paths['/event-types'], 'the catalogue routes are documented')
  t.match(doc['x-webhooks']['order.created'].post, {
    deprecated: false, requestBody: { content: { 'application/json': { schema: { required: ['sku'] } } } }
  }, 'and the catalogue itself is listed, with its payload schemas')
})

t.test('the catalogue is in the OpenAPI document only for the admin', async (t) => {
  const secret = 'a-secret-of-length'
  const { app } = await testApp(t, { adminSecret: secret })
  const headers = { 'x-platformatic-admin-secret': secret }
  t.equal((await app.inject({ method: 'POST', url: '/event-types', payload: { name: 'x' } })).statusCode, 401)
  await app.inject({ method: 'POST', url: '/event-types', payload: { name: 'private.type', deprecated: true }, headers })
  const open = (await app.inject({ url: '/documentation/json' })).json()
  t.notOk(open['x-webhooks'], 'not without the secret')
  const wrong = (await app.inject({ url: '/documentation/json', headers: { 'x-platformatic-admin-secret': 'wrong-secret-x' } })).json()
  t.notOk(wrong['x-webhooks'], 'nor with a wrong one')
  const admin = (await app.inject({ url: '/documentation/json', headers })).json()
  t.equal(admin['x-webhooks']['private.type'].post.deprecated, true)
  const yaml = await app.inject({ url: '/documentation/yaml', headers })
  t.match(yaml.body, /private\.type/)
})

t.test('unknown types are refused when the setting says so', async (t) => {
  const { app } = await testApp(t, { hooks: { acceptUnknownEventTypes: false } })
  await post(app, '/event-types', { name: 'known' })
  const res = await app.inject({ method: 'POST', url: '/events', payload: { type: 'unknown', payload: 1 } })
  t.equal(res.statusCode, 400)
  t.match(res.json().message, /"type": unknown is not in the event type catalogue/)
  t.equal((await app.inject({ method: 'POST', url: '/events', payload: { type: 'known', payload: 1 } })).statusCode, 200)
})

t.test('bad input is a 400 that names the field, and nothing is stored', async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  const q = await post(app, '/queues', { name: 'a', callbackUrl: 'http://127.0.0.1:9/a', eventTypes: ['*'] })
  const cases: Array<[string, string, object, RegExp]> = [
    ['POST', '/events', { type: 'bad type', payload: 1 }, /body\/type/],
    ['POST', '/events', { type: 'x'.repeat(256), payload: 1 }, /body\/type/],
    ['POST', '/events', { type: 'a.b' }, /payload/],
    ['POST', '/events', { type: 'a.b', payload: 1, headers: { 'x-hookpost-event-type': 'forged' } }, /headers/],
    ['POST', '/events', { type: 'a.b', payload: 1, idempotencyKey: 'é' }, /idempotencyKey/],
    ['POST', '/events', { type: 'a.b', payload: { s: 'nul\u0000' } }, /payload/],
    ['POST', '/events', { type: 'a.b', payload: { 'k\u0000': 1 } }, /payload/],
    ['POST', '/events', { type: 'a.b', payload: ['\udc00'] }, /payload/],
    ['POST', '/events', { type: 'a.b', payload: JSON.parse('['.repeat(300) + ']'.repeat(300)) }, /payload/],
    ['POST', '/queues', { name: 'b', callbackUrl: 'http://127.0.0.1:9/b', eventTypes: ['order*'] }, /eventTypes\/0/],
    ['POST', '/queues', { name: 'b', callbackUrl: 'http://127.0.0.1:9/b', eventTypes: ['*.created'] }, /eventTypes\/0/],
    ['POST', '/queues', { name: 'b', callbackUrl: 'http://127.0.0.1:9/b', eventTypes: [''] }, /eventTypes\/0/],
    ['POST', '/queues', { name: 'b', callbackUrl: 'http://127.0.0.1:9/b', filter: ['DE'] }, /filter/],
    ['POST', '/queues', { name: 'b', callbackUrl: 'http://127.0.0.1:9/b', filter: 'DE' }, /filter/],
    ['POST', '/queues', { name: 'b', callbackUrl: 'http://127.0.0.1:9/b', payloadFormat: 'xml' }, /payloadFormat/],
    ['PUT', `/queues/${q.id}`, { eventTypes: Array.from({ length: 101 }, (_, i) => `t${i}`) }, /eventTypes/],
    ['POST', '/event-types', { name: 'a b' }, /name/],
    ['POST', '/event-types', { name: 'deep', schema: JSON.parse('{"items":'.repeat(100) + '{}' + '}'.repeat(100)) }, /schema/],
    ['POST', `/queues/${q.id}/replay`, { since: '2026-01-02T00:00:00Z', until: '2026-01-01T00:00:00Z' }, /since/],
    ['POST', `/queues/${q.id}/replay`, { since: 'yesterday' }, /since/],
    ['POST', `/queues/${q.id}/replay`, { since: '2026-01-01T00:00:00Z', eventTypes: ['a*'] }, /eventTypes/]
  ]
  for (const [method, path, payload, field] of cases) {
    const res = await app.inject({ method: method as 'POST', url: path, payload })
    t.equal(res.statusCode, 400, `${method} ${path} ${JSON.stringify(payload).slice(0, 80)}: ${res.body}`)
    t.match(res.json().message, field)
  }
  const { rows: [n] } = await pool.query(`SELECT (SELECT count(*) FROM hookpost.events)::int AS e,
    (SELECT count(*) FROM hookpost.messages)::int AS m, (SELECT count(*) FROM hookpost.queues)::int AS q,
    (SELECT count(*) FROM hookpost.event_types)::int AS t`)
  t.same(n, { e: 0, m: 0, q: 1, t: 0 })
  t.equal((await app.inject({ method: 'POST', url: '/queues/999/replay', payload: { since: '2026-01-01T00:00:00Z' } })).statusCode, 404)
})

t.test('replay after an outage delivers the missed events once; a second replay adds nothing', async (t) => {
  let down = true
  const target = await receiver(t, (_r, res) => { res.statusCode = down ? 503 : 200; res.end() })
  const { app, pool } = await deliveringApp(t)
  const q = await post(app, '/queues', {
    name: 'flaky', callbackUrl: `${target.url}/flaky`, eventTypes: ['order.*'], maxRetries: 0
  })
  const since = new Date(Date.now() - 1000).toISOString()
  for (let i = 1; i <= 3; i++) await post(app, '/events', { type: 'order.created', payload: { i } })
  await post(app, '/events', { type: 'user.created', payload: { i: 99 } }) // not the queue's
  await target.waitFor(3)
  // dead: one attempt each, all refused (their outcomes are recorded just after the calls)
  await eventually(async () => (await pool.query('SELECT count(*)::int AS n FROM hookpost.messages WHERE failed')).rows[0].n === 3)
  // and hookpost's own events of those deaths published (just after the outcomes are written): else a
  // subscriber to '*' created now would get them too (a flaky count of /late calls, once in CI)
  await eventually(async () => (await pool.query(`SELECT count(*)::int AS n FROM hookpost.events
    WHERE type = 'hookpost.message.dead_lettered'`)).rows[0].n === 3)
  // a subscriber added after the events, wanting history
  const late = await post(app, '/queues', { name: 'late', callbackUrl: `${target.url}/late`, eventTypes: ['*'] })

  down = false
  const first = await post(app, `/queues/${q.id}/replay`, { since })
  t.same(first, { queueId: q.id, replayed: 3, more: false })
  const second = await post(app, `/queues/${q.id}/replay`, { since })
  t.same(second, { queueId: q.id, replayed: 0, more: false }, 'nothing new')
  const history = await post(app, `/queues/${late.id}/replay`, { since, eventTypes: ['user.*'] })
  t.equal(history.replayed, 1, 'only the patterns asked for')
  // the 503s throttled the queue (adaptive throttling): its replays go at the slowed rate, a second or two
  const got = await target.waitFor(3 + 3 + 1, 20_000)
  const replayed = got.slice(3).filter(r => r.url === '/flaky')
  t.same(replayed.map(r => JSON.parse(r.body).i).sort(), [1, 2, 3])
  t.equal(got.slice(3).filter(r => r.url === '/late').length, 1)
  const { rows } = await pool.query('SELECT count(*)::int AS n FROM hookpost.messages WHERE replay AND queue_id = $1', [q.id])
  t.equal(rows[0].n, 3)
  // a window that has not started yet replays nothing
  t.same((await post(app, `/queues/${q.id}/replay`, { since: new Date(Date.now() + 60_000).toISOString() })).replayed, 0)
})

t.test('attack round: payload schemas that would block or crash the process are refused at save', async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  const save = async (name: string, schema: unknown): Promise<{ statusCode: number, message: string }> => {
    const res = await app.inject({ method: 'POST', url: '/event-types', payload: { name, schema } })
    return { statusCode: res.statusCode, message: res.json().message }
  }
  for (const schema of [
    { type: 'string', pattern: '^(a+)+$' },
    { type: 'object', properties: { s: { type: 'string', pattern: '(x+x+)+y' } } },
    { type: 'object', patternProperties: { '^(ab+)*$': {} } }
  ]) {
    const r = await save('redos', schema)
    t.equal(r.statusCode, 400, JSON.stringify(schema))
    t.match(r.message, /"schema": the pattern .* could take exponential time/)
  }
  for (const schema of [{ $ref: '#' }, { not: { $ref: '#' } }, { allOf: [{ $ref: '#' }] }]) {
    const r = await save('loop', schema)
    t.equal(r.statusCode, 400, JSON.stringify(schema))
    t.match(r.message, /"schema": it refers to itself without end/)
  }
  t.equal((await save('ok.examples', { type: 'string', examples: [{ pattern: '(a+)+' }] })).statusCode, 200,
    'a "pattern" inside examples is data')
  // recursion over the data is fine: it ends with the data
  t.equal((await save('tree', { type: 'object', properties: { child: { $ref: '#' } } })).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: '/events', payload: { type: 'tree', payload: { child: { child: {} } } } })).statusCode, 200)
  // one stored past the API (plain SQL) is a 400 at publish, not a 500
  await pool.query('INSERT INTO hookpost.event_types (name, schema) VALUES (\'sql.loop\', \'{"$ref": "#"}\')')
  const pub = await app.inject({ method: 'POST', url: '/events', payload: { type: 'sql.loop', payload: 1 } })
  t.equal(pub.statusCode, 400)
  t.match(pub.json().message, /"payload": its schema could not be evaluated/)
  // and in the catalogue, a description keeps its text or is refused (half a surrogate pair)
  const desc = await app.inject({ method: 'POST', url: '/event-types', payload: { name: 'd', description: 'x\ud800' } })
  t.equal(desc.statusCode, 400)
  t.match(desc.json().message, /description/)
})

t.test('attack round: a queue deleted while an event is published is left out; the event stands', async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  const keep = await post(app, '/queues', { name: 'keep', callbackUrl: 'http://127.0.0.1:9/k', eventTypes: ['fk.*'] })
  const gone = await post(app, '/queues', { name: 'gone', callbackUrl: 'http://127.0.0.1:9/g', eventTypes: ['fk.*'] })
  const deleter = await pool.connect()
  await deleter.query('BEGIN')
  await deleter.query('DELETE FROM hookpost.queues WHERE id = $1', [gone.id])
  const publishing = app.inject({ method: 'POST', url: '/events', payload: { type: 'fk.x', payload: 1 } })
  // the publish waits on the deleted queue's row lock: then the delete commits
  const { rows: [db] } = await pool.query('SELECT current_database() AS name')
  await eventually(async () => (await pool.query(`SELECT count(*)::int AS n FROM pg_locks l
    JOIN pg_stat_activity a ON a.pid = l.pid WHERE NOT l.granted AND a.datname = $1`, [db.name])).rows[0].n > 0)
  await deleter.query('COMMIT')
  deleter.release()
  const res = await publishing
  t.equal(res.statusCode, 200, res.body)
  t.equal(res.json().endpoints, 1)
  const { rows } = await pool.query('SELECT queue_id FROM hookpost.messages')
  t.same(rows.map(r => Number(r.queue_id)), [keep.id])
})

t.test('attack round: bounds on what one request writes, and what the catalogue document carries', async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  await pool.query(`INSERT INTO hookpost.queues (name, callback_url, event_types)
    SELECT 'q' || g, 'http://127.0.0.1:9/', '{*}' FROM generate_series(1, 300) g`)
  // 300 copies of 900 KB: past 256 MiB
  const big = await app.inject({ method: 'POST', url: '/events', payload: { type: 'big', payload: 'x'.repeat(900_000) } })
  t.equal(big.statusCode, 400)
  t.match(big.json().message, /"payload": .*300 queues.*more than 256 MiB/)
  t.equal((await pool.query('SELECT count(*)::int AS n FROM hookpost.events')).rows[0].n, 0)
  t.equal((await app.inject({ method: 'POST', url: '/events', payload: { type: 'small', payload: 'x'.repeat(1000) } })).json().endpoints, 300)

  // one replay per GraphQL request
  const twice = await app.inject({
    method: 'POST',
    url: '/graphql',
    payload: { query: 'mutation { a: replayQueue(id: 1, since: "2026-01-01T00:00:00Z") { replayed } b: replayQueue(id: 1, since: "2026-01-01T00:00:00Z") { replayed } }' }
  })
  t.match(twice.json().errors?.[0].message, /cost/i)

  // 20 types of 60 KB schemas: the document lists all of them, with the schemas that fit in 1 MiB
  for (let i = 0; i < 20; i++) {
    await post(app, '/event-types', { name: `big.${i}`, schema: { type: 'object', description: 'd'.repeat(60_000) } })
  }
  const doc = await app.inject({ url: '/documentation/json' })
  const hooks = doc.json()['x-webhooks']
  t.equal(Object.keys(hooks).length, 20)
  const omitted = Object.values(hooks).filter((h: any) => /too large to list here/.test(h.post.description))
  t.ok(omitted.length > 0 && omitted.length < 20, `${omitted.length} listed without their schema`)
  t.ok(doc.body.length < 1.5 * 1024 * 1024, `${doc.body.length} bytes`)
})

t.test('attack round: filters kept exactly, replays due at the event\'s when, no stored event headers on direct messages', async (t) => {
  const target = await receiver(t)
  const { app, pool } = await deliveringApp(t)
  // as JSON text: 1e400 is what a client sends, not what JS can hold
  for (const [filter, why] of [['{"a":1e400}', /number too large/], ['{"a":'.repeat(300) + '1' + '}'.repeat(300), /nested/],
    ['{"k\\u0000":1}', /NUL/]] as const) {
    const res = await app.inject({
      method: 'POST',
      url: '/queues',
      headers: { 'content-type': 'application/json' },
      payload: `{"name":"f","callbackUrl":"http://127.0.0.1:9/","filter":${filter}}`
    })
    t.equal(res.statusCode, 400)
    t.match(res.json().message, why)
  }
  // replay keeps the event's own when
  const later = new Date(Date.now() + 3_600_000).toISOString()
  const ev = await post(app, '/events', { type: 'when.t', payload: 1, when: later })
  const q = await post(app, '/queues', { name: 'late', callbackUrl: `${target.url}/late`, eventTypes: ['when.*'] })
  t.equal((await post(app, `/queues/${q.id}/replay`, { since: new Date(Date.now() - 60_000).toISOString() })).replayed, 1)
  const [m] = (await app.inject({ url: `/events/${ev.id}/messages` })).json()
  t.equal(new Date(m.when).toISOString(), later)
  // a direct message stored by plain SQL with our event headers: they are not sent
  const d = await post(app, '/queues', { name: 'direct', callbackUrl: `${target.url}/direct` })
  await pool.query(`INSERT INTO hookpost.messages (queue_id, body, headers) VALUES ($1, 'x',
    '{"x-hookpost-event-type": "forged", "x-hookpost-event-id": "1", "x-other": "y"}')`, [d.id])
  const [r] = await target.waitFor(1)
  t.equal(r!.url, '/direct')
  t.equal(r!.headers['x-other'], 'y')
  t.notOk(r!.headers['x-hookpost-event-type'])
  t.notOk(r!.headers['x-hookpost-event-id'])
})
