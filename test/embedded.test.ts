// The default on a fresh machine: no DATABASE_URL, so the server starts its own PostgreSQL.
import { existsSync, mkdtempSync, chmodSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { spawnServer } from './helpers.js'

t.test('no DATABASE_URL: embedded PostgreSQL from nothing, used, then stopped cleanly', async (t) => {
  const cwd = mkdtempSync(join(tmpdir(), 'hookpost-embedded-'))
  chmodSync(cwd, 0o755) // when run as root the embedded server runs as the postgres user and must reach its data
  const dataDir = join(cwd, 'data')
  const server = await spawnServer(t, { DATABASE_URL: undefined, HOOKPOST_DATA_DIR: dataDir }, { cwd, startMs: 60_000 })
  t.ok(server.logs.some(l => /embedded PostgreSQL/.test(l.msg) && l.dataDir === join(dataDir, 'pg')), 'logs that it started an embedded PostgreSQL, and where')
  t.ok(existsSync(join(dataDir, 'pg', 'PG_VERSION')), 'data kept under the data directory')

  const health = await (await fetch(`${server.url}/health`)).json()
  t.same(health, { status: 'ok', database: 'up' })
  const res = await fetch(`${server.url}/queues`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'q', callbackUrl: 'http://127.0.0.1:9/x' }) })
  t.equal(res.status, 200)

  t.equal(await server.stop(), 0, 'SIGTERM exits 0')
  t.notOk(existsSync(join(dataDir, 'pg', 'postmaster.pid')), 'the embedded PostgreSQL is stopped too')

  // a second start finds the data again
  const again = await spawnServer(t, { DATABASE_URL: undefined, HOOKPOST_DATA_DIR: dataDir }, { cwd, startMs: 60_000 })
  const queues = await (await fetch(`${again.url}/queues`)).json() as unknown[]
  t.equal(queues.length, 1, 'the queue survived the restart')

  // kill -9 leaves PostgreSQL running on the data directory: the next start adopts it
  again.proc.kill('SIGKILL')
  await again.exited
  const third = await spawnServer(t, { DATABASE_URL: undefined, HOOKPOST_DATA_DIR: dataDir }, { cwd, startMs: 60_000 })
  t.ok(third.logs.some(l => /reusing the embedded PostgreSQL/.test(l.msg)), 'adopts the orphan')
  t.equal(((await (await fetch(`${third.url}/queues`)).json()) as unknown[]).length, 1)
  t.equal(await third.stop(), 0)
  t.notOk(existsSync(join(dataDir, 'pg', 'postmaster.pid')), 'and stops it at shutdown')
})
