// Diagnostic, not a benchmark: what PostgreSQL spends per delivered message on hookpost's claim +
// complete statements (lib/delivery/sql.ts), against the raw loop's claim + grouped UPDATE, with no
// HTTP at all. One connection, statements run back to back; the backend's own CPU time is read from
// /proc, so other load on the machine does not count.
//
//   npx tsx bench/probe-sql.ts
//
// Environment: DATABASE_URL, BENCH_N (messages per variant, default 20000), BENCH_TIMEOUT_MS (300000),
// PROBE_SETUP (SQL run after the migrations: to price a schema change before writing it).
import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import pg from 'pg'
import { migrate } from '../lib/db/migrate.js'
import * as sql from '../lib/delivery/sql.js'
import { createBenchDatabase, envInt, fmt, onCleanup, round, table, runMain } from './harness.js'
import { rawTableSql } from './raw-loop.js'

const N = envInt('BENCH_N', 20_000, 1, 10_000_000)
const TIMEOUT_MS = envInt('BENCH_TIMEOUT_MS', 300_000, 1000, 3_600_000)
const BODY = JSON.stringify({ pad: 'x'.repeat(1000) })

function backendCpuMs (pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) * 10 // CLK_TCK 100
}

interface Variant {
  name: string
  claimRows: number
  flushRows: number
  rows: number
  claims: number
  completes: number
  pgUsPerMsg: number
  wallUsPerMsg: number
  walBytesPerMsg: number
}

async function main (): Promise<void> {
  const { url } = await createBenchDatabase()
  const types = {
    getTypeParser: (oid: number, format?: any) =>
      oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)
  }
  const client = new pg.Client({ connectionString: url, options: '-c synchronous_commit=off', types: types as any })
  await client.connect()
  onCleanup(async () => await client.end())
  const pool = new pg.Pool({ connectionString: url, max: 1 })
  await migrate(pool)
  await pool.end()
  // try a schema change without a migration, e.g. PROBE_SETUP='DROP INDEX hookpost.messages_sent_at_idx'
  if (process.env.PROBE_SETUP !== undefined && process.env.PROBE_SETUP !== '') await client.query(process.env.PROBE_SETUP)
  const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
  const queueId = Number((await client.query<{ id: string }>(
    "INSERT INTO hookpost.queues (name, callback_url) VALUES ('probe', 'http://127.0.0.1:9/none') RETURNING id")).rows[0]!.id)
  await client.query(rawTableSql('raw_messages'))

  const results: Variant[] = []
  const measure = async (
    name: string, claimRows: number, flushRows: number, step: () => Promise<{ claimed: number, completes: number }>
  ): Promise<void> => {
    await client.query('CHECKPOINT')
    const lsn = async (): Promise<bigint> => BigInt((await client.query<{ b: string }>("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS b")).rows[0]!.b)
    const wal0 = await lsn()
    const cpu0 = backendCpuMs(pid)
    const t0 = performance.now()
    let rows = 0
    let claims = 0
    let completes = 0
    for (;;) {
      const r = await step()
      claims++
      completes += r.completes
      rows += r.claimed
      if (r.claimed === 0) break
    }
    const wall = performance.now() - t0
    const cpu = backendCpuMs(pid) - cpu0
    const wal = Number(await lsn() - wal0)
    results.push({
      name,
      claimRows,
      flushRows,
      rows,
      claims,
      completes,
      pgUsPerMsg: 1000 * cpu / rows,
      wallUsPerMsg: 1000 * wall / rows,
      walBytesPerMsg: wal / rows
    })
    process.stderr.write(`probe: ${name} done\n`)
  }

  const fakeResult = { ok: true, status: 200, errorKind: null, error: null, responseBody: 'ok', retryAfter: undefined, startedAt: new Date(), durationMs: 1 }
  const noAttemptLog = (text: string): string => text.replace(/logged AS \([\s\S]*?\n {6}\),\n/, '')

  const hookpostVariant = async (name: string, claimRows: number, flushRows: number, noLog = false): Promise<void> => {
    await client.query('INSERT INTO hookpost.messages (queue_id, body, body_json) SELECT $1, $2, true FROM generate_series(1, $3)', [queueId, BODY, N])
    await client.query('VACUUM ANALYZE hookpost.messages')
    await measure(name, claimRows, flushRows, async () => {
      const { rows } = await client.query<sql.ClaimedRow>(sql.claim(claimRows, 60_000, 'probe', []))
      let completes = 0
      for (let i = 0; i < rows.length; i += flushRows) {
        const batch = rows.slice(i, i + flushRows).map(r => ({
          id: r.id, queueId: r.queueId, attempt: r.attempts + 1, result: { ...fakeResult }, retryAt: null
        }))
        const st = sql.complete(batch as sql.Completion[], 'probe')
        await client.query(noLog ? { text: noAttemptLog(st.text), values: st.values } : st)
        completes++
      }
      return { claimed: rows.length, completes }
    })
  }

  await client.query('INSERT INTO raw_messages (body, run_at) SELECT $1, now() FROM generate_series(1, $2)', [BODY, N])
  await client.query('VACUUM ANALYZE raw_messages')
  await measure('raw loop statements', 200, 200, async () => {
    const { rows } = await client.query<{ id: string }>({
      name: 'raw_claim',
      text: `UPDATE raw_messages SET run_at = now() + interval '60 seconds', locked_at = now()
        WHERE id IN (SELECT id FROM raw_messages WHERE sent_at IS NULL AND run_at <= now() ORDER BY run_at LIMIT $1 FOR UPDATE SKIP LOCKED)
        RETURNING id, body`,
      values: [200]
    })
    if (rows.length > 0) await client.query('UPDATE raw_messages SET sent_at = now() WHERE id = ANY($1::bigint[])', [rows.map(r => r.id)])
    return { claimed: rows.length, completes: rows.length > 0 ? 1 : 0 }
  })
  // as the worker runs today with one hot queue (bench/probe-worker.ts: claims of ~180 rows, flushes of ~200)
  await hookpostVariant('hookpost sql, as observed', 180, 200)
  await hookpostVariant('hookpost sql, flushes of 200', 200, 200)
  await hookpostVariant('hookpost sql, flushes of 500', 500, 500)
  await hookpostVariant('hookpost sql, 200, no attempt log', 200, 200, true)

  const out = ['', `PostgreSQL backend CPU per message, claim + complete only (no HTTP), ${fmt(N)} messages per variant, synchronous_commit=off`, '']
  out.push(...table(['statements', 'claim rows', 'flush rows', 'claims', 'completes', 'pg cpu us/msg', 'wall us/msg', 'WAL bytes/msg'],
    results.map(r => [
      r.name, String(r.claimRows), String(r.flushRows), fmt(r.claims), fmt(r.completes),
      fmt(r.pgUsPerMsg, 1), fmt(r.wallUsPerMsg, 1), fmt(r.walBytesPerMsg)
    ])))
  process.stdout.write(out.join('\n') + '\n')
  process.stdout.write(JSON.stringify(results.map(r => ({ ...r, pgUsPerMsg: round(r.pgUsPerMsg, 1), wallUsPerMsg: round(r.wallUsPerMsg, 1) }))) + '\n')
}

runMain(main, TIMEOUT_MS)
