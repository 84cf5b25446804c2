// lib/delivery/lease.ts: the lease rule, and the timeout cap it relies on, against the schema.
import t from 'tap'
import { LEASE_SLACK_MS, leaseFor, MAX_QUEUE_TIMEOUT_MS } from '../lib/delivery/lease.js'
import { testDatabase, testPool } from './helpers.js'

t.test('the lease outlives the queue timeout by the slack, or is leaseMs when that is longer', async (t) => {
  t.equal(leaseFor(60_000, 10_000), 60_000)
  t.equal(leaseFor(60_000, 45_000), 45_000 + LEASE_SLACK_MS)
  t.equal(leaseFor(60_000, MAX_QUEUE_TIMEOUT_MS), MAX_QUEUE_TIMEOUT_MS + LEASE_SLACK_MS)
})

t.test('MAX_QUEUE_TIMEOUT_MS is the bound the schema checks', async (t) => {
  const pool = testPool(t, await testDatabase(t))
  const q = async (timeout: number) => await pool.query(
    "INSERT INTO hookpost.queues (name, callback_url, timeout_ms) VALUES ($1, 'http://127.0.0.1:9/', $2)",
    [`q${timeout}`, timeout])
  await q(MAX_QUEUE_TIMEOUT_MS)
  await t.rejects(q(MAX_QUEUE_TIMEOUT_MS + 1), { code: '23514' })
})

t.test('the claim leases by the same rule in SQL', async (t) => {
  const pool = testPool(t, await testDatabase(t))
  const { rows: [queue] } = await pool.query(
    `INSERT INTO hookpost.queues (name, callback_url, timeout_ms)
     VALUES ('q', 'http://127.0.0.1:9/', 100000) RETURNING id`)
  await pool.query('INSERT INTO hookpost.messages (queue_id, body) VALUES ($1, $2)', [queue.id, 'x'])
  const { claim } = await import('../lib/delivery/sql.js')
  await pool.query(claim(10, 60_000, 'w', []))
  const { rows: [m] } = await pool.query(
    'SELECT extract(epoch FROM run_at - locked_at) * 1000 AS ms FROM hookpost.messages')
  t.equal(Math.round(m.ms), leaseFor(60_000, 100_000))
})
