// Delivery statistics per queue and minute (lib/services/stats.ts) and the dashboard's overview
// (GET /dashboard/api/overview) against a real PostgreSQL and a real receiver.
import t from 'tap'
import { LATENCY_BUCKETS_MS, latencyBucket, percentile } from '../lib/domain/latency.js'
import { deliveringApp, eventually, post, receiver } from './helpers.js'

t.test('latency buckets and percentiles', async (t) => {
  t.equal(latencyBucket(0), 0)
  t.equal(latencyBucket(10), 0)
  t.equal(latencyBucket(11), 1)
  t.equal(latencyBucket(1e9), LATENCY_BUCKETS_MS.length, 'past the last bound: the open bucket')
  const counts = new Array(LATENCY_BUCKETS_MS.length + 1).fill(0)
  t.equal(percentile(counts, 0.5), null)
  counts[2] = 98
  counts[6] = 2
  t.equal(percentile(counts, 0.5), 50)
  t.equal(percentile(counts, 0.99), 1000)
})

t.test('the overview: state, backlog and the last hour per queue, added up across flushes', async (t) => {
  const target = await receiver(t, (r, res) => { res.statusCode = r.url === '/bad' ? 500 : 200; res.end() })
  const { app, pool } = await deliveringApp(t)
  const good = await post(app, '/queues', { name: 'good', callbackUrl: `${target.url}/good` })
  const bad = await post(app, '/queues', { name: 'bad', callbackUrl: `${target.url}/bad`, maxRetries: 0 })
  const paused = await post(app, '/queues', { name: 'paused', callbackUrl: `${target.url}/p`, paused: true })
  for (let i = 0; i < 5; i++) await post(app, '/messages', { queueId: good.id, body: `g${i}` })
  await app.delivery!.stats.flush()
  for (let i = 0; i < 3; i++) await post(app, '/messages', { queueId: bad.id, body: `b${i}` })
  await post(app, '/messages', { queueId: paused.id, body: 'waits' })
  await post(app, '/messages', { queueId: good.id, body: 'later', when: new Date(Date.now() + 3_600_000).toISOString() })
  await target.waitFor(8)
  // the last outcomes counted, then added: a second flush adds to the same minute
  await eventually(async () => (await pool.query('SELECT count(*)::int AS n FROM hookpost.messages WHERE failed')).rows[0].n === 3)
  await app.delivery!.stats.flush()
  const res = await app.inject({ url: '/dashboard/api/overview' })
  t.equal(res.statusCode, 200)
  const [g, b, p] = res.json()
  t.match(g, { id: good.id, name: 'good', state: 'active', pending: 1, due: 0, claimed: 0, lastError: null })
  t.match(g.lastHour, { delivered: 5, failed: 0, successRate: 1 })
  t.ok(g.lastHour.p50Ms > 0 && g.lastHour.p99Ms >= g.lastHour.p50Ms, `p50 ${g.lastHour.p50Ms} ms, p99 ${g.lastHour.p99Ms} ms`)
  t.equal(g.perMinute.delivered.length, 60)
  t.equal(g.perMinute.failed.length, 60)
  t.equal(g.perMinute.delivered.reduce((n: number, d: number) => n + d, 0), 5, 'the minutes add up')
  t.match(b.lastHour, { delivered: 0, failed: 3, successRate: 0, p50Ms: null })
  t.match(b.lastError, { status: 500 })
  t.match(p, { state: 'paused', pending: 1 })
  const rows = (await pool.query('SELECT count(*)::int AS n FROM hookpost.queue_minutes WHERE queue_id = $1', [good.id])).rows[0].n
  t.ok(rows <= 2, 'one row per queue and minute, added to')

  // a queue deleted with minutes unflushed: the rest are still recorded
  await post(app, '/messages', { queueId: good.id, body: 'one more' })
  await target.waitFor(9)
  await eventually(async () => (await pool.query('SELECT count(*)::int AS n FROM hookpost.messages WHERE sent_at IS NOT NULL')).rows[0].n === 6)
  await pool.query('DELETE FROM hookpost.queues WHERE id = $1', [bad.id])
  await app.delivery!.stats.flush()
  t.equal((await app.inject({ url: '/dashboard/api/overview' })).json()[0].lastHour.delivered, 6)
})

t.test('the overview needs the admin secret', async (t) => {
  const { app } = await deliveringApp(t, { adminSecret: 'open sesame' })
  t.equal((await app.inject({ url: '/dashboard/api/overview' })).statusCode, 401)
  const ok = await app.inject({ url: '/dashboard/api/overview', headers: { 'x-platformatic-admin-secret': 'open sesame' } })
  t.equal(ok.statusCode, 200)
})
