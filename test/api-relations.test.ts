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
    'GET /messages': 'getMessages',
    'POST /messages': 'createMessage',
    'GET /crons/{id}': 'getCronById',
    'GET /queues/{id}/messages': 'getMessagesForQueue',
    'GET /messages/{id}/queue': 'getQueueForMessage',
    'GET /messages/{id}/cron': 'getCronForMessage',
    'GET /crons/{id}/queue': 'getQueueForCron'
  })
})
