// Platformatic DB's REST conventions as pg-hooks exposes them: the relation routes it generates for
// every foreign key, and the operationIds its generated clients call.
import t from 'tap'
import { testApp, testPool } from './helpers.js'

t.test('every relation route: to one row, and to the rows that point here', async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  const post = async (path: string, payload: object): Promise<any> => {
    const r = await app.inject({ method: 'POST', url: path, payload })
    t.equal(r.statusCode, 200, r.body)
    return r.json()
  }
  const dlq = await post('/queues', { name: 'dlq', callbackUrl: 'http://127.0.0.1:9/d' })
  const q = await post('/queues', { name: 'q', callbackUrl: 'http://127.0.0.1:9/q', deadLetterQueueId: dlq.id })
  const cron = await post('/crons', { queueId: q.id, schedule: '0 0 * * *', body: 'tick' })
  const plain = await post('/messages', { queueId: q.id, body: 'plain' })
  const { rows: [ticked] } = await pool.query(
    "INSERT INTO hookpost.messages (queue_id, body, cron_id, tick_at) VALUES ($1, 'tick', $2, now()) RETURNING id", [q.id, cron.id])
  const get = async (path: string): Promise<{ statusCode: number, json: () => any }> => await app.inject({ url: path })

  t.same((await get(`/messages/${plain.id}/queue`)).json(), (await get(`/queues/${q.id}`)).json(), '/messages/{id}/queue')
  t.equal((await get(`/messages/${ticked.id}/cron`)).json().id, cron.id, '/messages/{id}/cron')
  const none = await get(`/messages/${plain.id}/cron`)
  t.equal(none.statusCode, 404, 'a message of no cron: 404')
  t.match(none.json().message, /cron of message/)
  t.equal((await get(`/crons/${cron.id}/queue`)).json().id, q.id, '/crons/{id}/queue')
  t.same((await get(`/crons/${cron.id}/messages`)).json().map((m: any) => m.id), [ticked.id], '/crons/{id}/messages')
  t.same((await get(`/queues/${q.id}/messages?orderby.id=asc`)).json().map((m: any) => m.id), [plain.id, ticked.id])
  t.same((await get(`/queues/${q.id}/crons`)).json().map((c: any) => c.id), [cron.id])
  t.equal((await get(`/queues/${q.id}/dead_letter_queue`)).json().id, dlq.id, '/queues/{id}/dead_letter_queue')
  t.equal((await get(`/queues/${dlq.id}/dead_letter_queue`)).statusCode, 404, 'a queue without one: 404')
  t.same((await get(`/queues/${dlq.id}/queues`)).json().map((x: any) => x.id), [q.id], 'the queues it is the DLQ of')
  for (const path of ['/messages/999999/queue', '/crons/999999/queue', '/queues/999999/queues', '/crons/999999/messages']) {
    t.equal((await get(path)).statusCode, 404, `${path}: 404`)
  }
  t.equal((await get(`/queues/${q.id}/messages?where.body.eq=x`)).statusCode, 400, 'list parameters are checked')
})

t.test("the OpenAPI document: Platformatic's operationIds, one per operation", async (t) => {
  const { app } = await testApp(t)
  const doc = (await app.inject({ url: '/documentation/json' })).json()
  const ids: Record<string, string> = {}
  for (const [path, ops] of Object.entries<Record<string, { operationId?: string }>>(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      if (method === 'parameters') continue
      t.ok(op.operationId, `${method.toUpperCase()} ${path} has an operationId`)
      if (op.operationId !== undefined) ids[`${method.toUpperCase()} ${path}`] = op.operationId
    }
  }
  t.equal(new Set(Object.values(ids)).size, Object.values(ids).length, 'no two operations share one')
  t.notOk(Object.keys(doc.paths).includes('/graphql'), 'GraphQL documents itself, not here')
  t.match(ids, {
    'GET /queues': 'getQueues',
    'POST /queues': 'createQueue',
    'GET /queues/{id}': 'getQueueById',
    'PUT /queues/{id}': 'updateQueue',
    'DELETE /queues/{id}': 'deleteQueues',
    'PUT /queues': 'updateQueues',
    'GET /messages': 'getMessages',
    'POST /messages': 'createMessage',
    'GET /crons/{id}': 'getCronById',
    'GET /queues/{id}/messages': 'getMessagesForQueue',
    'GET /messages/{id}/queue': 'getQueueForMessage',
    'GET /messages/{id}/cron': 'getCronForMessage',
    'GET /crons/{id}/queue': 'getQueueForCron'
  })
})

t.test("Platformatic's list idioms: like, ilike and or, over REST and GraphQL alike", async (t) => {
  const { app } = await testApp(t)
  for (const name of ['orders-eu', 'orders-us', 'Billing', 'audit']) {
    await app.inject({ method: 'POST', url: '/queues', payload: { name, callbackUrl: 'http://127.0.0.1:9/x' } })
  }
  const names = async (qs: string): Promise<string[]> => {
    const r = await app.inject({ url: `/queues?${qs}&orderby.id=asc` })
    t.equal(r.statusCode, 200, `${qs}: ${r.body}`)
    return r.json().map((q: { name: string }) => q.name)
  }
  t.same(await names('where.name.like=orders-%25'), ['orders-eu', 'orders-us'], 'like')
  t.same(await names('where.name.like=b%25'), [], 'like is case-sensitive')
  t.same(await names('where.name.ilike=b%25'), ['Billing'], 'ilike is not')
  t.same(await names('where.or=(name.eq=audit|name.like=%25-us)'), ['orders-us', 'audit'], "or, Platformatic's syntax: | between conditions")
  t.same(await names('where.or=(id.in=1,2|name.eq=audit)&where.name.neq=orders-eu'), ['orders-us', 'audit'], 'or, ANDed with the rest; in values split by ,')
  t.same(await names('where.or=(id.eq=1|id.eq=2)'), ['orders-eu', 'orders-us'], 'integers (attack round: "1|2" was read as one value)')
  for (const [qs, field] of [['where.id.like=1', 'where.id.like'], ['where.or=name.eq=a', 'where.or'], ['where.or=(nope.eq=1)', 'where.or'],
    ['where.or=(id.eq=x)', 'where.or'], ['where.or=(name.like)', 'where.or']]) {
    const r = await app.inject({ url: `/queues?${qs}` })
    t.equal(r.statusCode, 400, `${qs}: 400`)
    t.match(r.body, field, `${qs}: names ${field}`)
  }
  const gql = async (where: string): Promise<string[]> => {
    const r = await app.inject({ method: 'POST', url: '/graphql', payload: { query: `{ queues(where: ${where}, orderBy: [{ field: id, direction: ASC }]) { name } }` } })
    const body = r.json()
    t.equal(body.errors, undefined, JSON.stringify(body.errors))
    return body.data.queues.map((q: { name: string }) => q.name)
  }
  t.same(await gql('{ name: { like: "orders-%" } }'), ['orders-eu', 'orders-us'])
  t.same(await gql('{ name: { ilike: "B%" } }'), ['Billing'])
  t.same(await gql('{ or: [{ name: { eq: "audit" } }, { name: { like: "%-us" }, id: { lte: 2 } }] }'), ['orders-us', 'audit'],
    'or of branches, each branch ANDed')
})

t.test('fields= returns only the fields named, on lists, rows, relations and writes; a wrong name is a 400 before any write', async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  const q = (await app.inject({ method: 'POST', url: '/queues?fields=id,name', payload: { name: 'f', callbackUrl: 'http://127.0.0.1:9/x' } }))
  t.equal(q.statusCode, 200, q.body)
  t.same(Object.keys(q.json()).sort(), ['id', 'name'], 'a create')
  const id = q.json().id
  t.same((await app.inject({ url: '/queues?fields=name' })).json(), [{ name: 'f' }], 'a list')
  t.same((await app.inject({ url: `/queues/${id}?fields=callbackUrl` })).json(), { callbackUrl: 'http://127.0.0.1:9/x' }, 'a row')
  t.same((await app.inject({ method: 'PUT', url: `/queues/${id}?fields=maxRetries`, payload: { maxRetries: 2 } })).json(), { maxRetries: 2 }, 'an update')
  const m = (await app.inject({ method: 'POST', url: '/messages', payload: { queueId: id, body: 'b' } })).json()
  t.same((await app.inject({ url: `/messages/${m.id}/queue?fields=name` })).json(), { name: 'f' }, 'a relation to one')
  t.same((await app.inject({ url: `/queues/${id}/messages?fields=id` })).json(), [{ id: m.id }], 'a relation to many')
  const bad = await app.inject({ method: 'POST', url: '/queues?fields=id,nope', payload: { name: 'g', callbackUrl: 'http://127.0.0.1:9/x' } })
  t.equal(bad.statusCode, 400)
  t.match(bad.json().message, /fields.*no field "nope"/)
  t.equal((await pool.query("SELECT count(*)::int AS n FROM hookpost.queues WHERE name = 'g'")).rows[0].n, 0, 'nothing written')
  t.equal((await app.inject({ url: '/queues?fields=' })).statusCode, 400, 'an empty list of fields')
  t.same(Object.keys((await app.inject({ method: 'DELETE', url: `/messages/${m.id}?fields=id,body` })).json()).sort(), ['body', 'id'], 'a delete')
})

t.test('GET-then-PUT: a row read back is a valid write body; read-only and unknown fields are dropped, wrong values still a 400', async (t) => {
  const { app } = await testApp(t)
  for (const [path, body] of [['/queues', { name: 'gp', callbackUrl: 'http://127.0.0.1:9/x' }]] as const) {
    const row = (await app.inject({ method: 'POST', url: path, payload: body })).json()
    const put = await app.inject({ method: 'PUT', url: `${path}/${row.id}`, payload: { ...row, maxRetries: 4, extra: 1 } })
    t.equal(put.statusCode, 200, put.body)
    t.equal(put.json().maxRetries, 4)
    t.equal(put.headers['x-hookpost-ignored-fields'], 'id,disabledReason,disabledAt,heldUntil,circuitState,circuitOpenedAt,consecutiveFailures,failingSince,effectiveRatePerSecond,signed,createdAt,updatedAt,extra', 'what was dropped, named')
    const bad = await app.inject({ method: 'PUT', url: `${path}/${row.id}`, payload: { ...row, maxRetries: 'many' } })
    t.equal(bad.statusCode, 400, 'a wrong value of a writable field')
    t.match(bad.json().message, /maxRetries/)
  }
  const q = (await app.inject({ url: '/queues' })).json()[0]
  const m = (await app.inject({ method: 'POST', url: '/messages', payload: { queueId: q.id, body: 'a' } })).json()
  const put = await app.inject({ method: 'PUT', url: `/messages/${m.id}`, payload: { ...m, body: 'b' } })
  t.equal(put.statusCode, 200, put.body)
  t.equal(put.json().body, 'b')
  const c = (await app.inject({ method: 'POST', url: '/crons', payload: { queueId: q.id, schedule: '0 * * * *' } })).json()
  const cput = await app.inject({ method: 'PUT', url: `/crons/${c.id}`, payload: { ...c, paused: true } })
  t.equal(cput.statusCode, 200, cput.body)
  t.equal(cput.json().paused, true)
})

t.test('bulk PUT /{entity}?where…: every matching row changed, all or none; a where is required, at most 1,000 rows', async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  for (const name of ['bulk-a', 'bulk-b', 'other']) {
    await app.inject({ method: 'POST', url: '/queues', payload: { name, callbackUrl: 'http://127.0.0.1:9/x' } })
  }
  const put = await app.inject({ method: 'PUT', url: '/queues?where.name.like=bulk-%25&fields=name,maxRetries', payload: { maxRetries: 2 } })
  t.equal(put.statusCode, 200, put.body)
  t.same(put.json(), [{ name: 'bulk-a', maxRetries: 2 }, { name: 'bulk-b', maxRetries: 2 }])
  t.same((await pool.query('SELECT name, max_retries FROM hookpost.queues ORDER BY id')).rows.map(r => r.max_retries), [2, 2, 10], 'the other queue untouched')
  const none = await app.inject({ method: 'PUT', url: '/queues', payload: { maxRetries: 1 } })
  t.equal(none.statusCode, 400, 'no where: refused')
  t.match(none.json().message, /where/)
  // backoffBaseMs above one queue's own max: that row fails, so none changes
  await pool.query("UPDATE hookpost.queues SET backoff_base_ms = 500, backoff_max_ms = 1000 WHERE name = 'bulk-b'")
  const half = await app.inject({ method: 'PUT', url: '/queues?where.name.like=bulk-%25', payload: { backoffBaseMs: 5000 } })
  t.equal(half.statusCode, 400, half.body)
  t.same((await pool.query("SELECT backoff_base_ms FROM hookpost.queues WHERE name = 'bulk-a'")).rows[0].backoff_base_ms, 30000, 'all or none')
  t.equal((await app.inject({ method: 'PUT', url: '/queues?where.name.eq=nothing', payload: { maxRetries: 1 } })).json().length, 0, 'no match: an empty list')
  t.equal((await app.inject({ method: 'PUT', url: '/queues?limit=1&where.id.eq=1', payload: { maxRetries: 1 } })).statusCode, 400, 'no paging on a bulk update')
})

t.test('attack round: like patterns are bounded and well formed, fields never strips an error, the same when keeps a backoff', async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  const q = (await app.inject({ method: 'POST', url: '/queues', payload: { name: 'p', callbackUrl: 'http://127.0.0.1:9/x' } })).json()
  const get = async (u: string): Promise<{ statusCode: number, json: () => any }> => await app.inject({ url: u })
  for (const [qs, why] of [
    ['where.name.like=a%5C', 'a pattern ending with its escape character (was a 500)'],
    ['where.or=(name.ilike=0%5C)', 'the same inside or'],
    [`where.name.like=${'a'.repeat(101)}`, 'a pattern over 100 characters'],
    ['where.name.like=a&where.name.ilike=b&where.or=(name.like=c|id.eq=1)', 'three patterns in one request']
  ] as Array<[string, string]>) {
    const r = await get(`/queues?${qs}`)
    t.equal(r.statusCode, 400, why)
    t.match(r.json(), { code: 'HOOKPOST_ERR_INVALID_FIELD', message: /where\.name\.(like|ilike)/ }, `${why}: names the filter`)
  }
  t.equal((await get('/queues?where.name.like=a%5C%5C')).statusCode, 200, 'an escaped backslash is a pattern')
  const gqlRes = await app.inject({ method: 'POST', url: '/graphql', payload: { query: '{ queues(where: { name: { like: "a\\\\" } }) { id } }' } })
  t.equal(gqlRes.json().errors?.[0]?.extensions?.statusCode, 400, 'GraphQL too')
  // fields= shapes what a success returns, never an error
  const missing = await get('/messages/999?fields=id')
  t.equal(missing.statusCode, 404)
  t.match(missing.json(), { statusCode: 404, code: 'HOOKPOST_ERR_NOT_FOUND', message: String })
  // a message waiting out a retry's backoff: sending its own when back (GET-then-PUT) keeps the backoff
  const m = (await app.inject({ method: 'POST', url: '/messages', payload: { queueId: q.id, body: 'a', when: '2020-01-01T00:00:00Z' } })).json()
  await pool.query("UPDATE hookpost.messages SET run_at = now() + interval '10 minutes', retries = 1 WHERE id = $1", [m.id])
  const row = (await get(`/messages/${m.id}`)).json()
  const put = await app.inject({ method: 'PUT', url: `/messages/${m.id}`, payload: { ...row, body: 'b' } })
  t.equal(put.statusCode, 200, put.body)
  const { rows: [after] } = await pool.query('SELECT run_at > now() + interval \'9 minutes\' AS waiting FROM hookpost.messages WHERE id = $1', [m.id])
  t.equal(after.waiting, true, 'the next attempt is still 10 minutes away')
  await app.inject({ method: 'PUT', url: `/messages/${m.id}`, payload: { when: '2020-01-02T00:00:00Z' } })
  const { rows: [moved] } = await pool.query('SELECT run_at <= now() AS due FROM hookpost.messages WHERE id = $1', [m.id])
  t.equal(moved.due, true, 'a new when is the next attempt')
})

t.test('the OpenAPI document names its entities in components, as Platformatic DB does', async (t) => {
  const { app } = await testApp(t)
  const doc = (await app.inject({ url: '/documentation/json' })).json()
  t.same(Object.keys(doc.components.schemas).sort(), ['Attempt', 'Cron', 'Delivery', 'Event', 'EventType', 'EventWithDeliveries', 'Message', 'Queue'])
  t.match(doc.components.schemas.Queue, { type: 'object', properties: { id: {}, name: {}, callbackUrl: {} } })
  const list = doc.paths['/queues'].get.responses['200'].content['application/json'].schema
  t.same(list, { type: 'array', items: { $ref: '#/components/schemas/Queue' } }, 'getQueues returns Queue[]')
  t.same(doc.paths['/messages/{id}'].get.responses['200'].content['application/json'].schema, { $ref: '#/components/schemas/Message' })
  t.same(doc.paths['/messages/{id}/queue'].get.responses['200'].content['application/json'].schema, { $ref: '#/components/schemas/Queue' })
  t.equal(JSON.stringify(doc).includes('"title":"Queue"'), true, 'defined once, in components')
  t.equal(JSON.stringify(doc.paths).includes('"title":"Queue"'), false, 'and referenced from the paths')
  // the routes still serialize as before
  const q = (await app.inject({ method: 'POST', url: '/queues', payload: { name: 'c', callbackUrl: 'http://127.0.0.1:9/c' } })).json()
  t.match(q, { id: Number, name: 'c', headers: {} })
})
