// Enqueue-path benchmark: POST /messages through the real server (a separate process) against the
// same single-row INSERT done with raw `pg`, at concurrency 1 and 32, in one run on one database.
//
//   npx tsx bench/api.ts
//
// Environment:
//   DATABASE_URL        PostgreSQL to bench on (loopback only); a fresh database hookpost_bench_<random> is
//                       created there and dropped at the end. Unset or empty: an embedded PostgreSQL
//                       (lib/db/embedded.ts) is started on ./data/bench for the run and stopped at the end
//   BENCH_N1            messages measured at c=1   (default 2000)
//   BENCH_N32           messages measured at c=32  (default 10000)
//   BENCH_WARMUP        messages sent before each measured phase, not counted (default 200)
//   BENCH_TIMEOUT_MS    global deadline; past it the server is killed and we exit 1 (default 300000)
//   BENCH_SERVER_DB_POOL  passed to the server as HOOKPOST_DB_POOL_SIZE (default: unset, the server's default)
//   BENCH_SERVER_ROOT   run the server from this copy of the repository instead (A/B a change to lib/)
//   BENCH_SERVER_NODE_ARGS  extra node flags for the server, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
//   PLT_ADMIN_SECRET    passed through to the server; sent as X-PLATFORMATIC-ADMIN-SECRET when set
// The database, the server process, cleanup and formatting come from bench/harness.ts.
import { performance } from 'node:perf_hooks'
import pg from 'pg'
import { Pool } from 'undici'
import { messageEntity } from '../lib/store/messages.js'
import {
  adminQuery, createBenchDatabase, drive, envInt, fmt, freePort, makeBody, nproc, percentile, round, runMain,
  serverAlive, startServer, table, waitForHealth
} from './harness.js'

const N1 = envInt('BENCH_N1', 2000, 1, 10_000_000)
const N32 = envInt('BENCH_N32', 10_000, 1, 10_000_000)
const WARMUP = envInt('BENCH_WARMUP', 200, 0, 1_000_000)
const TIMEOUT_MS = envInt('BENCH_TIMEOUT_MS', 5 * 60_000, 1000, 24 * 3600_000)
const SERVER_DB_POOL = process.env.BENCH_SERVER_DB_POOL
const ADMIN_SECRET = process.env.PLT_ADMIN_SECRET !== undefined && process.env.PLT_ADMIN_SECRET !== ''
  ? process.env.PLT_ADMIN_SECRET
  : undefined

// The statement createMessage (lib/store/messages.ts) sends, with the same prepared-statement name.
// Keep in step with that file. The RETURNING list is the store's own, imported, so it cannot drift.
const INSERT_SQL = `INSERT INTO hookpost.messages (queue_id, body, body_json, headers, "when", idempotency_key)
        VALUES ($1, $2, $3, $4, COALESCE($5::timestamptz, now()), $6)
        ON CONFLICT (queue_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING ${messageEntity.select}`
const INSERT_NAME = 'hookpost_insert_message'

// the same bigint parsing as lib/db/pool.ts, so both sides decode RETURNING rows alike
const pgTypes = {
  getTypeParser (oid: number, format?: any) {
    if (oid === 20) return (v: string) => Number(v)
    return pg.types.getTypeParser(oid, format)
  }
}

const BODY = makeBody()
const BODY_TEXT = JSON.stringify(BODY)

// ---------------------------------------------------------------------------------------------
// server

/** delivery off: only the enqueue path is measured */
function serverEnv (): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { HOOKPOST_DELIVERY: 'false' }
  if (SERVER_DB_POOL !== undefined && SERVER_DB_POOL !== '') env.HOOKPOST_DB_POOL_SIZE = SERVER_DB_POOL
  return env
}

function headers (): Record<string, string> {
  const h: Record<string, string> = { 'content-type': 'application/json' }
  if (ADMIN_SECRET !== undefined) h['x-platformatic-admin-secret'] = ADMIN_SECRET
  return h
}

async function createQueue (control: Pool): Promise<number> {
  const res = await control.request({
    path: '/queues',
    method: 'POST',
    headers: headers(),
    body: JSON.stringify({ name: 'bench', callbackUrl: 'http://127.0.0.1:9/none' })
  })
  const text = await res.body.text()
  if (res.statusCode !== 200) throw new Error(`POST /queues answered ${res.statusCode}: ${text}`)
  return (JSON.parse(text) as { id: number }).id
}

// ---------------------------------------------------------------------------------------------
// measurement

interface Result {
  name: string
  concurrency: number
  n: number
  seconds: number
  rowsPerSec: number
  p50Ms: number
  p99Ms: number
  maxMs: number
}

/** Run `op` n times with c loops in flight (harness.ts drive); each call's latency is recorded. */
async function timed (name: string, c: number, n: number, op: () => Promise<void>): Promise<Result> {
  const lat = new Float64Array(n)
  const start = performance.now()
  try {
    await drive(c, n, async (i) => {
      const t0 = performance.now()
      await op()
      lat[i] = performance.now() - t0
    })
  } catch (err) {
    throw new Error(`${name} c=${c}: ${(err as Error).message}`, { cause: err })
  }
  const seconds = (performance.now() - start) / 1000
  lat.sort()
  return {
    name,
    concurrency: c,
    n,
    seconds,
    rowsPerSec: n / seconds,
    p50Ms: percentile(lat, 0.5),
    p99Ms: percentile(lat, 0.99),
    maxMs: lat[lat.length - 1] ?? NaN
  }
}

async function benchHttp (origin: string, queueId: number, c: number, n: number): Promise<Result> {
  const pool = new Pool(origin, { connections: c, pipelining: 1 })
  const payload = JSON.stringify({ queueId, body: BODY })
  const h = headers()
  const op = async (): Promise<void> => {
    const res = await pool.request({ path: '/messages', method: 'POST', headers: h, body: payload })
    const text = await res.body.text()
    if (res.statusCode !== 200) throw new Error(`POST /messages answered ${res.statusCode}: ${text.slice(0, 300)}`)
  }
  try {
    if (WARMUP > 0) await timed('http warmup', c, WARMUP, op)
    return await timed('http', c, n, op)
  } finally {
    await pool.close()
  }
}

async function benchRaw (databaseUrl: string, queueId: number, c: number, n: number): Promise<Result> {
  // one statement per message, autocommit, the values createMessage passes for a JSON body
  const query = { name: INSERT_NAME, text: INSERT_SQL, values: [queueId, BODY_TEXT, true, '{}', null, null] }
  const check = (r: pg.QueryResult): void => { if (r.rowCount !== 1) throw new Error(`INSERT returned ${r.rowCount} rows`) }
  if (c === 1) {
    const client = new pg.Client({ connectionString: databaseUrl, types: pgTypes as any, application_name: 'hookpost-bench-raw' })
    client.on('error', () => {})
    await client.connect()
    const op = async (): Promise<void> => { check(await client.query(query)) }
    try {
      if (WARMUP > 0) await timed('raw warmup', c, WARMUP, op)
      return await timed('raw pg', c, n, op)
    } finally {
      await client.end().catch(() => {})
    }
  }
  const pool = new pg.Pool({ connectionString: databaseUrl, max: c, types: pgTypes as any, application_name: 'hookpost-bench-raw' })
  pool.on('error', () => {})
  try {
    // open every connection before the clock starts
    const clients = await Promise.all(Array.from({ length: c }, async () => await pool.connect()))
    for (const cl of clients) cl.release()
    const op = async (): Promise<void> => { check(await pool.query(query)) }
    if (WARMUP > 0) await timed('raw warmup', c, WARMUP, op)
    return await timed('raw pg', c, n, op)
  } finally {
    await pool.end().catch(() => {})
  }
}

// ---------------------------------------------------------------------------------------------

async function main (): Promise<void> {
  const { url: databaseUrl } = await createBenchDatabase()

  const settings = await adminQuery(`SELECT current_setting('server_version') AS version,
    current_setting('synchronous_commit') AS sync, current_setting('fsync') AS fsync`)
  const pgInfo = settings.rows[0] as { version: string, sync: string, fsync: string }

  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  startServer(databaseUrl, port, (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(/\s+/).filter(a => a !== ''), serverEnv())
  const control = new Pool(origin, { connections: 1 })
  let queueId: number
  try {
    await waitForHealth(control, 60_000)
    queueId = await createQueue(control)
  } finally {
    await control.close()
  }
  process.stderr.write(`bench: server up at ${origin}, queue ${queueId}; ${fmt(N1)} messages at c=1, ${fmt(N32)} at c=32, warm-up ${WARMUP} each\n`)

  // c=1 pair, then c=32 pair; raw first in each so the HTTP side never runs on the smaller table
  const results: Result[] = []
  const step = async (label: string, p: Promise<Result>): Promise<Result> => {
    process.stderr.write(`bench: ${label}...\n`)
    const r = await p
    results.push(r)
    return r
  }
  const raw1 = await step('raw pg c=1', benchRaw(databaseUrl, queueId, 1, N1))
  const http1 = await step('POST /messages c=1', benchHttp(origin, queueId, 1, N1))
  const raw32 = await step('raw pg c=32', benchRaw(databaseUrl, queueId, 32, N32))
  const http32 = await step('POST /messages c=32', benchHttp(origin, queueId, 32, N32))

  if (!serverAlive()) throw new Error('the server died during the run')
  const bench = new pg.Client({ connectionString: databaseUrl })
  await bench.connect()
  const { rows } = await bench.query('SELECT count(*)::int AS n FROM hookpost.messages')
  await bench.end()
  const expected = 2 * (N1 + N32) + 4 * WARMUP
  if (rows[0].n !== expected) throw new Error(`expected ${expected} rows in hookpost.messages, found ${rows[0].n}`)

  const ratio1 = http1.rowsPerSec / raw1.rowsPerSec
  const ratio32 = http32.rowsPerSec / raw32.rowsPerSec
  const nCpu = nproc()

  const out: string[] = []
  out.push('')
  out.push('hookpost enqueue benchmark (bench/api.ts)')
  out.push(`nproc ${nCpu}, node ${process.version}, PostgreSQL ${pgInfo.version} (synchronous_commit=${pgInfo.sync}, fsync=${pgInfo.fsync})`)
  out.push(`body ${BODY_TEXT.length} bytes of JSON; server DB pool ${SERVER_DB_POOL ?? 'default (10)'}; raw c=32 uses 32 connections; rows in table at end ${fmt(expected)}`)
  out.push('')
  const head = ['path', 'c', 'n', 'seconds', 'rows/s', 'p50 ms', 'p99 ms', 'max ms']
  const tableRows = results.map(r => [
    r.name === 'http' ? 'POST /messages' : 'raw pg INSERT',
    String(r.concurrency), fmt(r.n), fmt(r.seconds, 2), fmt(r.rowsPerSec),
    fmt(r.p50Ms, 2), fmt(r.p99Ms, 2), fmt(r.maxMs, 2)
  ])
  out.push(...table(head, tableRows))
  out.push('')
  out.push(`HTTP/raw at c=1:  ${fmt(ratio1 * 100, 1)}%  (${fmt(http1.rowsPerSec)} / ${fmt(raw1.rowsPerSec)} rows/s)`)
  out.push(`HTTP/raw at c=32: ${fmt(ratio32 * 100, 1)}%  (${fmt(http32.rowsPerSec)} / ${fmt(raw32.rowsPerSec)} rows/s)`)
  out.push('')
  process.stdout.write(out.join('\n') + '\n')

  const fig = (r: Result): Record<string, number> => ({
    concurrency: r.concurrency,
    n: r.n,
    seconds: round(r.seconds, 3),
    rowsPerSec: round(r.rowsPerSec, 1),
    p50Ms: round(r.p50Ms, 3),
    p99Ms: round(r.p99Ms, 3),
    maxMs: round(r.maxMs, 3)
  })
  const json = {
    bench: 'api',
    nproc: nCpu,
    node: process.version,
    postgres: { version: pgInfo.version, synchronousCommit: pgInfo.sync, fsync: pgInfo.fsync },
    bodyBytes: BODY_TEXT.length,
    serverDbPool: SERVER_DB_POOL === undefined ? null : Number(SERVER_DB_POOL),
    warmup: WARMUP,
    results: { http_c1: fig(http1), raw_c1: fig(raw1), http_c32: fig(http32), raw_c32: fig(raw32) },
    ratios: { httpOverRaw_c1: round(ratio1, 4), httpOverRaw_c32: round(ratio32, 4) }
  }
  process.stdout.write(JSON.stringify(json, null, 2) + '\n')
}

runMain(main, TIMEOUT_MS)
