// The transactional outbox: an application role, with only the documented grants, enqueues inside its
// own transaction; the message commits or rolls back with the application's data.
import t from 'tap'
import type pg from 'pg'
import { applicationRole, eventually, receiver, testApp, testPool } from './helpers.js'
import { workerAsleep } from './signals.js'

const appRole = async (t: Parameters<typeof testApp>[0], admin: pg.Pool, url: string): Promise<pg.Pool> =>
  await applicationRole(t, admin, url, ['hookpost.enqueue(bigint, text, jsonb, timestamptz, text)',
    'hookpost.enqueue(bigint, jsonb, jsonb, timestamptz, text)'])

t.test('an outbox insert that rolls back is never delivered; one that commits is, at once', async (t) => {
  const target = await receiver(t)
  const { app, url } = await testApp(t, { hooks: { enabled: true, leaderPollMs: 100, pollMs: 60_000 } })
  await app.ready()
  const admin = testPool(t, url)
  const q = (await app.inject({ method: 'POST', url: '/queues', payload: { name: 'orders', callbackUrl: `${target.url}/orders` } })).json()
  const db = await appRole(t, admin, url)
  await eventually(async () => app.delivery!.worker.active)

  const rolledBack = await db.connect()
  await rolledBack.query('BEGIN')
  await rolledBack.query("INSERT INTO orders (item) VALUES ('never')")
  const { rows: [ghost] } = await rolledBack.query("SELECT hookpost.enqueue($1, jsonb_build_object('order', 'never')) AS id", [q.id])
  t.ok(ghost.id > 0, 'enqueue returns the message id')
  await rolledBack.query('ROLLBACK')
  rolledBack.release()

  const c = await db.connect()
  await c.query('BEGIN')
  const { rows: [order] } = await c.query("INSERT INTO orders (item) VALUES ('book') RETURNING id")
  await c.query('SELECT hookpost.enqueue($1, $2::jsonb, $3::jsonb)', [q.id, JSON.stringify({ order: order.id, item: 'book' }), JSON.stringify({ 'x-order': String(order.id) })])
  await c.query('COMMIT')
  const committedAt = Date.now()
  c.release()

  const [r] = await target.waitFor(1, 5000)
  // its outcome still to record and a claim to come up empty: the worker sleeps after this
  const idle = workerAsleep(app.delivery!.worker)
  t.ok(r!.at - committedAt < 1000, `delivered ${r!.at - committedAt} ms after the commit`)
  t.same(JSON.parse(r!.body), { item: 'book', order: order.id })
  t.equal(r!.headers['x-order'], String(order.id))
  await idle // nothing left to claim
  t.equal(target.requests.length, 1, 'the rolled-back message was never delivered')
  t.equal((await admin.query('SELECT count(*)::int AS n FROM hookpost.messages')).rows[0].n, 1, 'and never existed')
  t.equal((await admin.query('SELECT count(*)::int AS n FROM public.orders')).rows[0].n, 1)
})

t.test('the application role needs no right on hookpost tables; idempotency keys hold under concurrency', async (t) => {
  const { app, url } = await testApp(t)
  const admin = testPool(t, url)
  const q = (await app.inject({ method: 'POST', url: '/queues', payload: { name: 'o2', callbackUrl: 'http://127.0.0.1:9/x' } })).json()
  const db = await appRole(t, admin, url)
  await t.rejects(db.query('SELECT * FROM hookpost.messages'), { code: '42501' }, 'cannot read the messages table')
  await t.rejects(db.query("INSERT INTO hookpost.messages (queue_id, body) VALUES ($1, 'x')", [q.id]), { code: '42501' }, 'cannot write it directly')
  await t.rejects(db.query("SELECT hookpost.enqueue_message($1, 'x', false, '{}', now(), null)", [q.id]), { code: '42501' }, 'cannot call the internal function')

  const ids = await Promise.all(Array.from({ length: 6 }, async (_, i) => {
    const c = await db.connect()
    try {
      await c.query('BEGIN')
      const { rows } = await c.query("SELECT hookpost.enqueue($1, $2, '{}', now(), 'order-42') AS id", [q.id, `attempt ${i}`])
      await c.query('COMMIT')
      return rows[0].id
    } finally {
      c.release()
    }
  }))
  t.equal(new Set(ids).size, 1, 'every caller got the same message id')
  const { rows } = await admin.query("SELECT count(*)::int AS n FROM hookpost.messages WHERE idempotency_key = 'order-42'")
  t.equal(rows[0].n, 1, 'one message')
  // and the REST API sees the same key
  const again = await app.inject({ method: 'POST', url: '/messages', payload: { queueId: q.id, body: 'rest', idempotencyKey: 'order-42' } })
  t.equal(again.statusCode, 200)
  t.equal(again.json().id, Number(ids[0]))
})

t.test('hookpost.enqueue applies the API header rules', async (t) => {
  const { RESERVED_HEADERS } = await import('../lib/domain/headers.js')
  const { app, url } = await testApp(t)
  const admin = testPool(t, url)
  const q = (await app.inject({ method: 'POST', url: '/queues', payload: { name: 'h', callbackUrl: 'http://127.0.0.1:9/x' } })).json()
  const bad: Array<Record<string, unknown>> = [{ 'x-n': 1 }, { 'bad name': 'v' }, { 'x-e': 'emoji 😀' }, { 'x-c': 'a\nb' }]
  for (const name of RESERVED_HEADERS) bad.push({ [name.toUpperCase()]: 'v' })
  for (const headers of bad) {
    await t.rejects(admin.query("SELECT hookpost.enqueue($1, 'x', $2::jsonb)", [q.id, JSON.stringify(headers)]), { code: '22023' }, JSON.stringify(headers))
  }
  const { rows } = await admin.query("SELECT hookpost.enqueue($1, 'x', $2::jsonb) AS id", [q.id, JSON.stringify({ 'x-ok': 'café' })])
  t.ok(rows[0].id > 0, 'a valid header passes')
  t.equal((await admin.query('SELECT count(*)::int AS n FROM hookpost.messages')).rows[0].n, 1)
})

t.test('hookpost.enqueue_ordered: the outbox with an ordering key, delivered in order; a bad key is refused', async (t) => {
  const target = await receiver(t)
  const { app, url } = await testApp(t, { hooks: { enabled: true, leaderPollMs: 100 } })
  await app.ready()
  const admin = testPool(t, url)
  const q = (await app.inject({ method: 'POST', url: '/queues', payload: { name: 'ordered', callbackUrl: `${target.url}/o` } })).json()
  const db = await applicationRole(t, admin, url, ['hookpost.enqueue_ordered(bigint, text, text, jsonb, timestamptz, text)',
    'hookpost.enqueue_ordered(bigint, text, jsonb, jsonb, timestamptz, text)'])
  await t.rejects(db.query("SELECT hookpost.enqueue_message($1, 'x', false, '{}', now(), null, 'k')", [q.id]), { code: '42501' })
  await t.rejects(db.query("SELECT hookpost.enqueue_ordered($1, E'a\\nb', 'x')", [q.id]), { code: '22023', message: /ordering_key/ })
  const c = await db.connect()
  await c.query('BEGIN')
  for (let i = 1; i <= 5; i++) await c.query("SELECT hookpost.enqueue_ordered($1, 'customer-1', $2::jsonb)", [q.id, JSON.stringify({ i })])
  await c.query("SELECT hookpost.enqueue_ordered($1, 'customer-1', 'text body')", [q.id])
  await c.query('COMMIT')
  c.release()
  const got = await target.waitFor(6, 10_000)
  t.same(got.map(r => r.body), ['{"i": 1}', '{"i": 2}', '{"i": 3}', '{"i": 4}', '{"i": 5}', 'text body'], 'in enqueue order')
  const { rows } = await admin.query('SELECT DISTINCT ordering_key FROM hookpost.messages')
  t.same(rows, [{ ordering_key: 'customer-1' }])
})
