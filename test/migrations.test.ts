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
  t.same(rows.map(r => r.table_name), ['attempts', 'crons', 'dead_letters', 'messages', 'migrations', 'queues'])
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
  const app = await build(makeConfig({ db: { connectionString: url, autoMigrate: false }, hooks: { enabled: false } }), { logger: silentLog })
  t.teardown(async () => { await app.close() })
  const before = await app.inject({ url: '/ready' })
  t.equal(before.statusCode, 503)
  t.equal(before.json().migrations, 'pending')
  await migrate(app.pool)
  t.equal((await app.inject({ url: '/ready' })).statusCode, 200)
})
