import t from 'tap'
import { testApp } from './helpers.js'

t.test('queue CRUD with pg-hooks field names', async (t) => {
  const { app } = await testApp(t)
  const created = await app.inject({ method: 'POST', url: '/queues', payload: { name: 'q1', callbackUrl: 'http://127.0.0.1:1/hook', method: 'POST', headers: { 'X-Foo': 'bar' }, maxRetries: 3 } })
  t.equal(created.statusCode, 200, created.body)
  t.equal(created.headers['idempotent-replayed'], undefined, 'a create is not a replay')
  const q = created.json()
  t.match(q, { id: Number, name: 'q1', callbackUrl: 'http://127.0.0.1:1/hook', method: 'POST', headers: { 'X-Foo': 'bar' }, maxRetries: 3, deadLetterQueueId: null, timeoutMs: 30000 })
  t.ok(Date.parse(q.createdAt))
  const got = await app.inject({ url: `/queues/${q.id}` })
  t.same(got.json(), q)
  const put = await app.inject({ method: 'PUT', url: `/queues/${q.id}/`, payload: { maxRetries: 0 } })
  t.equal(put.statusCode, 200, put.body)
  t.equal(put.json().maxRetries, 0)
  t.equal(put.json().name, 'q1', 'other fields kept')
  const del = await app.inject({ method: 'DELETE', url: `/queues/${q.id}` })
  t.equal(del.statusCode, 200)
  t.equal((await app.inject({ url: `/queues/${q.id}` })).statusCode, 404)
})

t.test('a rule between two fields is said in both names, even when the client sent one (attack round)', async (t) => {
  const { app } = await testApp(t)
  const q = (await app.inject({ method: 'POST', url: '/queues', payload: { name: 'b', callbackUrl: 'http://127.0.0.1:1/hook' } })).json()
  const put = await app.inject({ method: 'PUT', url: `/queues/${q.id}`, payload: { backoffBaseMs: 86_400_000 } })
  t.equal(put.statusCode, 400, put.body)
  t.match(put.json().message, /backoffMaxMs must be at least backoffBaseMs/)
  const post = await app.inject({ method: 'POST', url: '/queues', payload: { name: 'c', callbackUrl: 'http://127.0.0.1:1/hook', backoffBaseMs: 1000, backoffMaxMs: 10 } })
  t.equal(post.statusCode, 400)
  t.match(post.json().message, /backoffMaxMs must be at least backoffBaseMs/)
})
