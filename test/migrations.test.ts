import t from 'tap'
import { migrate } from '../lib/db/migrate.js'
import { testDatabase, testPool } from './helpers.js'

t.test('migrations apply once and a second run is a no-op', async (t) => {
  const url = await testDatabase(t, { migrated: false })
  const pool = testPool(t, url)
  const first = await migrate(pool)
  t.ok(first.length >= 1, 'applied on an empty database')
  t.same(await migrate(pool), [], 'nothing the second time')
  const { rows } = await pool.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'hookpost' ORDER BY 1")
  t.same(rows.map(r => r.table_name), ['attempts', 'crons', 'dead_letters', 'event_types', 'events', 'messages', 'migrations', 'queue_minutes', 'queue_rates', 'queue_slots', 'queues'])
})

t.test('concurrent migrations: every runner succeeds and each file applies once', async (t) => {
  const url = await testDatabase(t, { migrated: false })
  const pools = Array.from({ length: 4 }, () => testPool(t, url, 1))
  const results = await Promise.all(pools.map(async p => await migrate(p)))
  t.same(results.flat().sort(), results.find(r => r.length > 0)?.sort(), 'only one runner applied anything')
  t.equal(results.filter(r => r.length > 0).length, 1)
  const { rows } = await pools[0]!.query('SELECT version, count(*)::int AS n FROM hookpost.migrations GROUP BY version')
  t.ok(rows.every(r => r.n === 1))
})

t.test('two servers booting together on an empty database both come up', async (t) => {
  const { build } = await import('../lib/app.js')
  const { makeConfig } = await import('../lib/config.js')
  const { silentLog } = await import('./helpers.js')
  const url = await testDatabase(t, { migrated: false })
  const config = makeConfig({ db: { connectionString: url }, hooks: { enabled: false } })
  const apps = await Promise.all([build(config, { logger: silentLog }), build(config, { logger: silentLog })])
  t.teardown(async () => { await Promise.all(apps.map(async a => await a.close())) })
  for (const app of apps) t.equal((await app.inject({ url: '/ready' })).statusCode, 200)
})

t.test('/ready is 503 until migrations are applied', async (t) => {
  const { build } = await import('../lib/app.js')
  const { makeConfig } = await import('../lib/config.js')
  const { silentLog } = await import('./helpers.js')
  const url = await testDatabase(t, { migrated: false })
  const app = await build(
    makeConfig({ db: { connectionString: url, autoMigrate: false }, hooks: { enabled: false } }),
    { logger: silentLog }
  )
  t.teardown(async () => { await app.close() })
  const before = await app.inject({ url: '/ready' })
  t.equal(before.statusCode, 503)
  t.equal(before.json().migrations, 'pending')
  await migrate(app.pool)
  t.equal((await app.inject({ url: '/ready' })).statusCode, 200)
})

t.test('the attempt log goes with its messages, however they are deleted', async (t) => {
  const url = await testDatabase(t)
  const pool = testPool(t, url)
  const queue = async (name: string): Promise<string> => (await pool.query(
    "INSERT INTO hookpost.queues (name, callback_url) VALUES ($1, 'http://127.0.0.1:9/x') RETURNING id", [name])).rows[0].id
  const message = async (queueId: string, attempts: number): Promise<string> => {
    const id = (await pool.query('INSERT INTO hookpost.messages (queue_id, body) VALUES ($1, $2) RETURNING id', [queueId, 'b'])).rows[0].id
    for (let i = 1; i <= attempts; i++) {
      await pool.query('INSERT INTO hookpost.attempts (message_id, attempt, started_at, duration_ms, status_code) VALUES ($1, $2, now(), 1, 500)', [id, i])
    }
    return id
  }
  const logged = async (): Promise<Record<string, number>> => Object.fromEntries((await pool.query(
    'SELECT message_id, count(*)::int AS n FROM hookpost.attempts GROUP BY message_id')).rows.map(r => [r.message_id, r.n]))

  const q1 = await queue('one')
  const q2 = await queue('two')
  const a = await message(q1, 2)
  const b = await message(q1, 3)
  const c = await message(q2, 1)
  const d = await message(q2, 2)
  t.same(await logged(), { [a]: 2, [b]: 3, [c]: 1, [d]: 2 })

  await pool.query('DELETE FROM hookpost.messages WHERE id = $1', [a])
  t.same(await logged(), { [b]: 3, [c]: 1, [d]: 2 }, 'a plain DELETE takes its attempts and no others')

  await pool.query('DELETE FROM hookpost.queues WHERE id = $1', [q1])
  t.same(await logged(), { [c]: 1, [d]: 2 }, "a queue's cascade takes its messages' attempts")

  await pool.query('BEGIN')
  await pool.query('DELETE FROM hookpost.messages WHERE id = $1', [c])
  await pool.query('ROLLBACK')
  t.same(await logged(), { [c]: 1, [d]: 2 }, 'a rolled-back delete keeps them')

  await pool.query('TRUNCATE hookpost.messages CASCADE')
  t.same(await logged(), {}, 'TRUNCATE takes the whole log')
})
