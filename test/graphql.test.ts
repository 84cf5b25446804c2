import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { eventually, receiver, testApp, testPool } from './helpers.js'

async function gql (
  app: FastifyInstance, query: string, variables?: object, headers: Record<string, string> = {}
): Promise<{ status: number, data: any, errors?: any[] }> {
  const res = await app.inject({ method: 'POST', url: '/graphql', payload: { query, variables }, headers })
  const body = res.json()
  return { status: res.statusCode, data: body.data, errors: body.errors }
}

async function ok (app: FastifyInstance, query: string, variables?: object): Promise<any> {
  const r = await gql(app, query, variables)
  if (r.errors !== undefined) throw new Error(JSON.stringify(r.errors))
  return r.data
}

t.test('queries: lists with limit, offset, where and orderBy; by id; counts', async (t) => {
  const { app } = await testApp(t)
  for (const name of ['a', 'b', 'c']) await ok(app, 'mutation ($i: QueueInput!) { saveQueue(input: $i) { id } }', { i: { name, callbackUrl: `http://127.0.0.1:9/${name}` } })
  const d = await ok(app, `{
    queues(where: { name: { in: ["a", "c"] } }, orderBy: [{ field: name, direction: DESC }]) { id name callbackUrl method headers maxRetries createdAt }
    page: queues(limit: 1, offset: 1, orderBy: [{ field: id, direction: ASC }]) { name }
    getQueueById(id: 2) { name }
    missing: getQueueById(id: 999) { name }
    countQueues(where: { name: { neq: "a" } }) { total }
  }`)
  t.same(d.queues.map((q: any) => q.name), ['c', 'a'])
  t.match(d.queues[0], { id: '3', callbackUrl: 'http://127.0.0.1:9/c', method: 'POST', headers: {}, maxRetries: 10 })
  t.ok(Date.parse(d.queues[0].createdAt) > 0, 'dates are ISO strings')
  t.same(d.page, [{ name: 'b' }])
  t.same(d.getQueueById, { name: 'b' })
  t.equal(d.missing, null)
  t.same(d.countQueues, { total: 2 })

  await ok(app, 'mutation { insertMessages(inputs: [{ queueId: 1, body: "x" }, { queueId: 2, bodyJson: { n: 1 } }]) { id } }')
  await ok(app, 'mutation { saveCron(input: { queueId: 1, schedule: "0 * * * *" }) { id } }')
  const m = await ok(app, `{
    messages(where: { queueId: { eq: 2 } }, limit: 10) { id queueId body bodyJson sentAt failed retries attemptCount when nextAttemptAt }
    getMessageById(id: 1) { body }
    countMessages(where: { sentAt: { eq: null } }) { total }
    crons { id queueId schedule timezone paused missedTicks nextTickAt }
    getCronById(id: 1) { schedule }
    countCrons { total }
  }`)
  t.match(m.messages, [{ queueId: '2', body: '{"n":1}', bodyJson: { n: 1 }, sentAt: null, failed: false, retries: 0, attemptCount: 0 }],
    'a JSON body: its text in body (a String, as in pg-hooks), its value in bodyJson')
  t.equal(m.getMessageById.body, 'x')
  t.same(m.countMessages, { total: 2 })
  t.match(m.crons, [{ queueId: '1', schedule: '0 * * * *', timezone: 'UTC', paused: false, missedTicks: 'once' }])
  t.same(m.getCronById, { schedule: '0 * * * *' })
  t.same(m.countCrons, { total: 1 })
})

t.test('mutations: save (create and update), insert (atomic, own when), delete by where, retry, redrive, pause/resume', async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  const q = (await ok(app, 'mutation { saveQueue(input: { name: "q", callbackUrl: "http://127.0.0.1:9/q", maxRetries: 2 }) { id maxRetries } }')).saveQueue
  const upd = (await ok(app, 'mutation ($id: ID) { saveQueue(input: { id: $id, maxRetries: 0 }) { id name maxRetries } }', { id: q.id })).saveQueue
  t.same(upd, { id: q.id, name: 'q', maxRetries: 0 }, 'saveQueue with id updates')

  const bad = await gql(app, 'mutation { insertQueues(inputs: [{ name: "ok1", callbackUrl: "http://127.0.0.1:9/1" }, { name: "bad", callbackUrl: "nope" }]) { id } }')
  t.equal(bad.errors?.[0].extensions.code, 'HOOKPOST_ERR_BAD_REQUEST')
  t.match(bad.errors?.[0].message, /callbackUrl/)
  t.equal((await pool.query("SELECT count(*)::int AS n FROM hookpost.queues WHERE name = 'ok1'")).rows[0].n, 0, 'insertQueues is all or nothing')
  const two = (await ok(app, 'mutation { insertQueues(inputs: [{ name: "i1", callbackUrl: "http://127.0.0.1:9/1" }, { name: "i2", callbackUrl: "http://127.0.0.1:9/2" }]) { name } }')).insertQueues
  t.same(two.map((x: any) => x.name), ['i1', 'i2'])

  // insertMessages keeps each message's own when (pg-hooks overwrote it with now)
  const whens = ['2030-01-01T00:00:00.000Z', '2031-06-15T12:00:00.000Z']
  const ins = (await ok(app, 'mutation ($i: [MessageInput!]!) { insertMessages(inputs: $i) { id when } }', { i: whens.map(w => ({ queueId: q.id, body: 'x', when: w })) })).insertMessages
  t.same(ins.map((m: any) => m.when), whens)
  const saved = (await ok(app, 'mutation ($i: MessageInput!) { saveMessage(input: $i) { id body headers } }', { i: { queueId: q.id, body: 'one', headers: { 'x-a': '1' } } })).saveMessage
  t.same(saved.headers, { 'x-a': '1' })
  const resaved = (await ok(app, 'mutation ($id: ID) { saveMessage(input: { id: $id, body: "two" }) { id body } }', { id: saved.id })).saveMessage
  t.equal(resaved.body, 'two')

  // retry only a failed message; redrive a queue's failed messages
  const notFailed = await gql(app, 'mutation ($id: ID!) { retryMessage(id: $id) { id } }', { id: saved.id })
  t.equal(notFailed.errors?.[0].extensions.code, 'HOOKPOST_ERR_MESSAGE_NOT_FAILED')
  await pool.query('UPDATE hookpost.messages SET failed = true, retries = 1 WHERE id = ANY($1::bigint[])', [ins.map((m: any) => m.id)])
  const retried = (await ok(app, 'mutation ($id: ID!) { retryMessage(id: $id) { id failed retries } }', { id: ins[0].id })).retryMessage
  t.same(retried, { id: ins[0].id, failed: false, retries: 0 })
  t.same((await ok(app, 'mutation ($id: ID!) { redriveQueue(id: $id) { queueId requeued } }', { id: q.id })).redriveQueue, { queueId: q.id, requeued: 1 })

  // crons: insert, pause, resume, delete
  const crons = (await ok(app, 'mutation ($q: ID) { insertCrons(inputs: [{ queueId: $q, schedule: "*/5 * * * *" }, { queueId: $q, schedule: "0 0 * * *", timezone: "Europe/Rome" }]) { id timezone } }', { q: q.id })).insertCrons
  t.equal(crons.length, 2)
  t.equal((await ok(app, 'mutation ($id: ID!) { pauseCron(id: $id) { paused } }', { id: crons[0].id })).pauseCron.paused, true)
  t.equal((await ok(app, 'mutation ($id: ID!) { resumeCron(id: $id) { paused } }', { id: crons[0].id })).resumeCron.paused, false)
  const badCron = await gql(app, 'mutation ($q: ID) { saveCron(input: { queueId: $q, schedule: "61 * * * *" }) { id } }', { q: q.id })
  t.equal(badCron.errors?.[0].extensions.code, 'HOOKPOST_ERR_INVALID_CRON')
  const delCrons = (await ok(app, 'mutation ($q: ID) { deleteCrons(where: { queueId: { eq: $q } }) { id } }', { q: q.id })).deleteCrons
  t.equal(delCrons.length, 2)

  // deletes follow REST's rules: pending messages make a queue delete a 409 unless forced
  const pending = await gql(app, 'mutation ($q: ID) { deleteQueues(where: { id: { eq: $q } }) { id } }', { q: q.id })
  t.equal(pending.errors?.[0].extensions.code, 'HOOKPOST_ERR_QUEUE_HAS_PENDING')
  const delMsgs = (await ok(app, 'mutation { deleteMessages(where: { failed: { eq: false }, when: { gt: "2029-01-01T00:00:00Z" } }) { id } }')).deleteMessages
  t.equal(delMsgs.length, 2, 'deleteMessages by where')
  const forced = (await ok(app, 'mutation ($q: ID) { deleteQueues(where: { id: { eq: $q } }, force: true) { name } }', { q: q.id })).deleteQueues
  t.same(forced, [{ name: 'q' }])
  const noWhere = await gql(app, 'mutation { deleteQueues { id } }')
  t.match(noWhere.errors?.[0].message, /where/, 'a delete must say what it deletes')
})

t.test('errors carry the same codes and messages as REST', async (t) => {
  const { app } = await testApp(t)
  await app.inject({ method: 'POST', url: '/queues', payload: { name: 'dup', callbackUrl: 'http://127.0.0.1:9/x' } })
  const rest = (await app.inject({ method: 'POST', url: '/queues', payload: { name: 'dup', callbackUrl: 'http://127.0.0.1:9/x' } })).json()
  const g = await gql(app, 'mutation { saveQueue(input: { name: "dup", callbackUrl: "http://127.0.0.1:9/x" }) { id } }')
  t.same({ code: g.errors?.[0].extensions.code, message: g.errors?.[0].message }, { code: rest.code, message: rest.message }, 'conflict')
  const rest404 = (await app.inject({ method: 'POST', url: '/messages/999/retry' })).json()
  const g404 = await gql(app, 'mutation { retryMessage(id: 999) { id } }')
  t.same({ code: g404.errors?.[0].extensions.code, message: g404.errors?.[0].message }, { code: rest404.code, message: rest404.message }, 'not found')
  const restRef = (await app.inject({ method: 'POST', url: '/messages', payload: { queueId: 4242 } })).json()
  const gRef = await gql(app, 'mutation { saveMessage(input: { queueId: 4242 }) { id } }')
  t.same({ code: gRef.errors?.[0].extensions.code, message: gRef.errors?.[0].message }, { code: restRef.code, message: restRef.message }, 'unknown reference')
  const badId = await gql(app, '{ getQueueById(id: "abc") { id } }')
  const restBadId = (await app.inject({ url: '/queues/abc' })).json()
  t.equal(badId.errors?.[0].extensions.code, restBadId.code, 'a bad id: REST\'s schema error')
  t.equal(restBadId.code, 'HOOKPOST_ERR_BAD_REQUEST')
})

t.test('relation fields of 100 queues cost a bounded number of SQL statements', async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  await pool.query("INSERT INTO hookpost.queues (name, callback_url) SELECT 'q' || g, 'http://127.0.0.1:9/' || g FROM generate_series(1, 100) g")
  await pool.query('UPDATE hookpost.queues SET dead_letter_queue_id = id - 1 WHERE id > 1')
  await pool.query("INSERT INTO hookpost.crons (queue_id, schedule, next_tick_at) SELECT id, '0 * * * *', now() + interval '1 hour' FROM hookpost.queues")
  await pool.query('INSERT INTO hookpost.messages (queue_id, body, cron_id) SELECT q.id, g::text, c.id FROM hookpost.queues q JOIN hookpost.crons c ON c.queue_id = q.id, generate_series(1, 3) g')
  await pool.query('INSERT INTO hookpost.attempts (message_id, attempt, started_at, duration_ms, status_code) SELECT id, 1, now(), 5, 500 FROM hookpost.messages')

  let statements = 0
  const query = app.pool.query.bind(app.pool)
  ;(app.pool as any).query = (...args: any[]) => { statements++; return (query as any)(...args) }
  const d = await ok(app, `{
    queues(limit: 100) {
      id deadLetterQueue { id }
      crons { id queue { id } }
      messages(limit: 2) { id queue { name } cron { schedule } attempts { statusCode } }
    }
  }`)
  ;(app.pool as any).query = query
  t.equal(d.queues.length, 100)
  t.equal(d.queues.reduce((n: number, q: any) => n + q.messages.length, 0), 200)
  t.ok(d.queues.every((q: any) => q.crons.length === 1 && q.messages.every((m: any) => m.attempts.length === 1 && m.cron.schedule === '0 * * * *')))
  t.equal(d.queues[5].deadLetterQueue.id, d.queues[4].id)
  t.ok(statements <= 8, `${statements} SQL statements for 100 queues, 200 messages, their crons, queues and attempts`)
})

t.test('a hostile query is refused: depth and cost limits', async (t) => {
  const { app } = await testApp(t)
  const deep = await gql(app, '{ queues { messages { queue { messages { queue { messages { queue { messages { queue { messages { id } } } } } } } } } } }')
  t.equal(deep.status, 400)
  t.ok(deep.errors?.length, 'rejected')
  const wide = await gql(app, '{ queues { messages { queue { crons { queue { id } } } } } }')
  t.equal(wide.status, 400)
  t.match(wide.errors?.[0].message, /too expensive/)
})

t.test('auth over HTTP: the same rule as REST; GraphiQL page open', async (t) => {
  const secret = 'graphql-secret-123'
  const { app } = await testApp(t, { adminSecret: secret })
  const none = await app.inject({ method: 'POST', url: '/graphql', payload: { query: '{ countQueues { total } }' } })
  t.equal(none.statusCode, 401, none.body)
  t.equal(none.json().errors[0].extensions.code, 'HOOKPOST_ERR_MISSING_ADMIN_SECRET', 'the REST code, in the GraphQL error shape')
  const wrong = await app.inject({ method: 'POST', url: '/graphql', payload: { query: '{ countQueues { total } }' }, headers: { 'x-platformatic-admin-secret': 'nope-nope-nope' } })
  t.equal(wrong.statusCode, 403)
  const get = await app.inject({ method: 'GET', url: '/graphql?query={countQueues{total}}' })
  t.equal(get.statusCode, 401, 'GET queries too')
  const right = await gql(app, '{ countQueues { total } }', undefined, { 'x-platformatic-admin-secret': secret })
  t.same(right.data, { countQueues: { total: 0 } })
  t.equal((await app.inject({ url: '/graphiql' })).statusCode, 200)
})

t.test('a message saved through GraphQL is delivered', async (t) => {
  const target = await receiver(t)
  const { app } = await testApp(t, { hooks: { enabled: true, leaderPollMs: 100 } })
  const q = (await ok(app, 'mutation ($u: String) { saveQueue(input: { name: "g", callbackUrl: $u }) { id } }', { u: `${target.url}/gql` })).saveQueue
  const m = (await ok(app, 'mutation ($q: ID) { saveMessage(input: { queueId: $q, bodyJson: { via: "graphql" } }) { id } }', { q: q.id })).saveMessage
  const [r] = await target.waitFor(1)
  t.same(JSON.parse(r!.body), { via: 'graphql' })
  t.equal(r!.headers['x-hookpost-message-id'], m.id)
  const after = await eventually(async () => { const x = await ok(app, '{ getMessageById(id: 1) { sentAt attempts { attempt statusCode } } }'); return x.getMessageById.sentAt !== null && x })
  t.same(after.getMessageById.attempts, [{ attempt: 1, statusCode: 200 }], 'Message.attempts is the attempt log')
})

t.test('idempotency keys through GraphQL: repeats return the first message, in input order', async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  const q = (await ok(app, 'mutation { saveQueue(input: { name: "idem", callbackUrl: "http://127.0.0.1:9/i" }) { id } }')).saveQueue
  const first = (await ok(app, 'mutation ($q: ID) { saveMessage(input: { queueId: $q, body: "first", idempotencyKey: "k1" }) { id } }', { q: q.id })).saveMessage
  const batch = (await ok(app, `mutation ($q: ID) { insertMessages(inputs: [
    { queueId: $q, body: "a" }, { queueId: $q, body: "dup", idempotencyKey: "k1" }, { queueId: $q, body: "b", idempotencyKey: "k2" },
    { queueId: $q, body: "c" }, { queueId: $q, body: "dup2", idempotencyKey: "k2" }
  ]) { id body idempotencyKey } }`, { q: q.id })).insertMessages
  t.same(batch.map((m: any) => m.body), ['a', 'first', 'b', 'c', 'b'])
  t.equal(batch[1].id, first.id, 'an existing key returns the first message')
  t.equal(batch[4].id, batch[2].id, 'a key repeated inside the batch is one message')
  t.equal((await pool.query('SELECT count(*)::int AS n FROM hookpost.messages')).rows[0].n, 4)
})

t.test('the GraphQL secret cannot be dodged: a stray Upgrade header, an encoded path', async (t) => {
  const secret = 'graphql-secret-456'
  const { app } = await testApp(t, { adminSecret: secret })
  const query = { query: '{ countQueues { total } }' }
  const upgrade = await app.inject({ method: 'POST', url: '/graphql', payload: query, headers: { upgrade: 'websocket' } })
  t.equal(upgrade.statusCode, 401, 'an Upgrade header on a plain request is not a WebSocket')
  const encoded = await app.inject({ method: 'POST', url: '/%67raphql', payload: query })
  t.equal(encoded.statusCode, 401, 'a percent-encoded path is the same route')
  const encodedGet = await app.inject({ method: 'GET', url: '/graphq%6c?query={countQueues{total}}' })
  t.equal(encodedGet.statusCode, 401)
  for (const name of ['constructor', '__proto__', 'toString']) {
    t.equal((await app.inject({ url: `/graphiql/assets/${name}` })).statusCode, 404, `asset ${name}`)
  }
})

t.test("pg-hooks' GraphQL types: variables typed as pg-hooks types them validate and work", async (t) => {
  const { app } = await testApp(t)
  const q = (await ok(app, 'mutation ($i: QueueInput!) { saveQueue(input: $i) { id } }', { i: { name: 'typed', callbackUrl: 'http://127.0.0.1:9/t' } })).saveQueue
  // pg-hooks: body String, when DateTime, headers JSON, inputs [MessageInput]!, limit LimitInt
  const saved = (await ok(app, 'mutation ($b: String, $w: DateTime, $h: JSON, $q: ID) { saveMessage(input: { queueId: $q, body: $b, when: $w, headers: $h }) { id body when headers } }',
    { b: '{"raw":true}', w: '2099-01-01T00:00:00.000Z', h: { 'x-a': '1' }, q: q.id })).saveMessage
  t.match(saved, { body: '{"raw":true}', when: '2099-01-01T00:00:00.000Z', headers: { 'x-a': '1' } }, 'a String body is sent as given')
  const many = (await ok(app, 'mutation ($i: [MessageInput]!) { insertMessages(inputs: $i) { id body } }',
    { i: [{ queueId: q.id, body: 'a' }, { queueId: q.id, body: 'b' }] })).insertMessages
  t.same(many.map((m: { body: string }) => m.body), ['a', 'b'], '[MessageInput]! with nullable items')
  const nullItem = await gql(app, 'mutation ($i: [MessageInput]!) { insertMessages(inputs: $i) { id } }', { i: [{ queueId: q.id, body: 'a' }, null] })
  t.equal(nullItem.errors?.[0]?.extensions?.statusCode, 400, 'a null input: a 400')
  t.match(nullItem.errors?.[0]?.message, /inputs\/1/, 'naming it')
  const page = (await ok(app, 'query ($l: LimitInt) { messages(limit: $l) { id } }', { l: 1 })).messages
  t.equal(page.length, 1, 'LimitInt')
  const over = await gql(app, 'query ($l: LimitInt) { messages(limit: $l) { id } }', { l: 101 })
  t.match(over.errors?.[0]?.message, /limit/, 'LimitInt keeps the list bound, naming limit')
  const both = await gql(app, 'mutation ($q: ID) { saveMessage(input: { queueId: $q, body: "x", bodyJson: { a: 1 } }) { id } }', { q: q.id })
  t.match(both.errors?.[0]?.message, /bodyJson.*not both/)
})

t.test("pg-hooks' relation fields take a list's arguments: Queue.messages, Queue.crons, Queue.queues, Cron.messages", async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  const dlq = (await ok(app, 'mutation { saveQueue(input: { name: "dlq", callbackUrl: "http://127.0.0.1:9/d" }) { id } }')).saveQueue
  const q = (await ok(app, `mutation { saveQueue(input: { name: "q", callbackUrl: "http://127.0.0.1:9/q", deadLetterQueueId: ${dlq.id} }) { id } }`)).saveQueue
  const c = (await ok(app, `mutation { saveCron(input: { queueId: ${q.id}, schedule: "0 * * * *" }) { id } }`)).saveCron
  await ok(app, `mutation { insertMessages(inputs: [{ queueId: ${q.id}, body: "a" }, { queueId: ${q.id}, body: "b" }, { queueId: ${q.id}, body: "c" }, { queueId: ${dlq.id}, body: "d" }]) { id } }`)
  await pool.query('UPDATE hookpost.messages SET cron_id = $1 WHERE body IN (\'a\', \'c\')', [c.id])
  const data = await ok(app, `{
    queues(orderBy: [{ field: id, direction: ASC }], limit: 2) {
      name
      messages(where: { id: { gt: 1 } }, orderBy: [{ field: id, direction: DESC }], limit: 1, offset: 0) { body }
      all: messages(limit: 5) { body }
      crons(limit: 5) { id messages(orderBy: [{ field: id, direction: DESC }], limit: 5) { body } }
      queues(limit: 5) { name }
    }
  }`)
  t.same(data.queues, [
    { name: 'dlq', messages: [{ body: 'd' }], all: [{ body: 'd' }], crons: [], queues: [{ name: 'q' }] },
    { name: 'q', messages: [{ body: 'c' }], all: [{ body: 'a' }, { body: 'b' }, { body: 'c' }], crons: [{ id: String(c.id), messages: [{ body: 'c' }, { body: 'a' }] }], queues: [] }
  ], 'each parent filtered, ordered and paged on its own; aliases with other arguments apart')
  const bad = await gql(app, '{ queues { messages(limit: 101) { id } } }')
  t.match(bad.errors?.[0]?.message, /limit/, 'the list bound holds per parent')
})

t.test("pg-hooks' inputs carry read-only fields: accepted and ignored, as REST drops them", async (t) => {
  const { app } = await testApp(t)
  const q = (await ok(app, 'mutation { saveQueue(input: { name: "ro", callbackUrl: "http://127.0.0.1:9/r", createdAt: "2020-01-01T00:00:00Z" }) { id createdAt } }')).saveQueue
  t.not(q.createdAt, '2020-01-01T00:00:00.000Z', 'createdAt not written')
  const m = (await ok(app, 'mutation ($i: MessageInput!) { saveMessage(input: $i) { id failed sentAt retries } }',
    { i: { queueId: q.id, body: 'x', failed: true, sentAt: '2020-01-01T00:00:00Z', retries: 9, cronId: null } })).saveMessage
  t.match(m, { failed: false, sentAt: null, retries: 0 }, 'delivery state cannot be forged through GraphQL either')
})
