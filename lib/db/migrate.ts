// Applies migrations/NNN.do.sql in order, one transaction per file, under an advisory lock so
// that processes booting together queue up instead of racing.
import { readdir, readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { Pool } from 'pg'
import { MIGRATE_LOCK } from './locks.js'

interface Migration { version: number, name: string, sql: string }

async function findMigrationsDir (): Promise<string> {
  // compiled code lives in dist/lib/db, sources in lib/db: migrations/ is at the repo root for both
  for (const rel of ['../../migrations/', '../../../migrations/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url))
    try {
      await readdir(dir)
      return dir
    } catch {}
  }
  throw new Error('migrations directory not found')
}

export async function loadMigrations (dir?: string): Promise<Migration[]> {
  const base = dir ?? await findMigrationsDir()
  const files = (await readdir(base)).filter(f => /^\d+\.do\.sql$/.test(f))
  const out: Migration[] = []
  for (const f of files) {
    out.push({ version: parseInt(f, 10), name: f, sql: await readFile(base + f, 'utf8') })
  }
  return out.sort((a, b) => a.version - b.version)
}

/** Returns the versions it applied (empty when the schema was current). */
export async function migrate (pool: Pool, opts: { dir?: string } = {}): Promise<number[]> {
  const migrations = await loadMigrations(opts.dir)
  const client = await pool.connect()
  const applied: number[] = []
  // see withTransaction: a lost connection must fail the next query, not crash the process
  const ignore = (): void => {}
  client.on('error', ignore)
  try {
    await client.query('SELECT pg_advisory_lock($1, $2)', [...MIGRATE_LOCK])
    try {
      await client.query('CREATE SCHEMA IF NOT EXISTS hookpost')
      await client.query(`CREATE TABLE IF NOT EXISTS hookpost.migrations (
        version integer PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`)
      const { rows } = await client.query<{ version: number }>('SELECT version FROM hookpost.migrations')
      const done = new Set(rows.map(r => r.version))
      for (const m of migrations) {
        if (done.has(m.version)) continue
        await client.query('BEGIN')
        try {
          await client.query(m.sql)
          await client.query('INSERT INTO hookpost.migrations (version, name) VALUES ($1, $2)', [m.version, m.name])
          await client.query('COMMIT')
        } catch (err) {
          await client.query('ROLLBACK')
          throw new Error(`migration ${m.name} failed: ${(err as Error).message}`, { cause: err })
        }
        applied.push(m.version)
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1, $2)', [...MIGRATE_LOCK])
    }
  } finally {
    client.removeListener('error', ignore)
    client.release()
  }
  return applied
}

/** True when every migration on disk is applied: the readiness check. */
export async function isMigrated (pool: Pool): Promise<boolean> {
  const migrations = await loadMigrations()
  const latest = migrations.at(-1)?.version ?? 0
  const exists = await pool.query("SELECT to_regclass('hookpost.migrations') IS NOT NULL AS ok")
  if (exists.rows[0]?.ok !== true) return false
  const { rows } = await pool.query<{ v: number | null }>('SELECT max(version) AS v FROM hookpost.migrations')
  return (rows[0]?.v ?? 0) >= latest
}
