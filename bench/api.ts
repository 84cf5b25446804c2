// Enqueue-path benchmark: POST /messages through the real server (a separate process) against the
// same single-row INSERT done with raw `pg`, at concurrency 1 and 32, in one run on one database.
//
//   npx tsx bench/api.ts
//
// Environment:
//   DATABASE_URL        server to bench on (default postgres://postgres@127.0.0.1:5432/test); a fresh
//                       database hookpost_bench_<random> is created there and dropped at the end
//   BENCH_N1            messages measured at c=1   (default 2000)
//   BENCH_N32           messages measured at c=32  (default 10000)
//   BENCH_WARMUP        messages sent before each measured phase, not counted (default 200)
//   BENCH_TIMEOUT_MS    global deadline; past it the server is killed and we exit 1 (default 300000)
//   BENCH_SERVER_DB_POOL  passed to the server as HOOKPOST_DB_POOL_SIZE (default: unset, the server's default)
//   PLT_ADMIN_SECRET    passed through to the server; sent as X-PLATFORMATIC-ADMIN-SECRET when set
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createServer } from 'node:net'
import os from 'node:os'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { Pool } from 'undici'
import { messageEntity } from '../lib/store/messages.js'

const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test'
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]', '::1', ''])
const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url))

function envInt (name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw.trim() === '') return fallback
  const n = Number(raw.trim())
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`${name}: expected an integer between ${min} and ${max}, got ${JSON.stringify(raw)}`)
  }
  return n
}

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

/** A JSON object of about 1 KB, like a typical webhook payload. */
function makeBody (): Record<string, unknown> {
  const body: Record<string, unknown> = {
    event: 'order.created',
    id: 'evt_0123456789abcdef',
    createdAt: '2024-01-01T00:00:00.000Z',
    data: {
      orderId: 'ord_0123456789',
      customer: { id: 'cus_42', email: 'someone@example.com', name: 'Some One' },
      currency: 'EUR',
      total: 12345,
      items: [] as unknown[]
    }
  }
  const items = (body.data as { items: unknown[] }).items
  let i = 0
  while (JSON.stringify(body).length < 1000) {
    items.push({ sku: `SKU-${String(i).padStart(6, '0')}`, qty: (i % 5) + 1, price: 1000 + i * 7, name: `item number ${i}` })
    i++
  }
  return body
}
const BODY = makeBody()
const BODY_TEXT = JSON.stringify(BODY)

// ---------------------------------------------------------------------------------------------
// lifecycle: database, server, cleanup

let adminUrl = ''
let dbName = ''
let dbCreated = false
let server: ChildProcess | undefined
const serverOutput: string[] = []

function loopbackOnly (url: string, what: string): void {
  const u = new URL(url)
  const host = decodeURIComponent(u.hostname)
  if (!LOOPBACK_HOSTS.has(host) && !host.startsWith('/')) {
    throw new Error(`${what}: this benchmark only talks to 127.0.0.1; refusing host ${JSON.stringify(host)}`)
  }
}

async function withDeadline<T> (p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      p,
      new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms) })
    ])
  } finally {
    clearTimeout(timer)
  }
}

async function adminQuery (sql: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: adminUrl, application_name: 'hookpost-bench-admin', connectionTimeoutMillis: 5000 })
  client.on('error', () => {})
  await client.connect()
  try {
    return await client.query(sql)
  } finally {
    await client.end().catch(() => {})
  }
}

async function dropDatabase (): Promise<void> {
  if (!dbCreated) return
  // FORCE ends whatever is still connected (a killed server's backends, our own pools on error paths)
  await withDeadline(adminQuery(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`), 15_000, 'DROP DATABASE')
  dbCreated = false
  process.stderr.write(`bench: dropped database ${dbName}\n`)
}

function serverAlive (): boolean {
  return server !== undefined && server.exitCode === null && server.signalCode === null
}

async function stopServer (): Promise<void> {
  const child = server
  if (child === undefined || !serverAlive()) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const gone = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)])
  if (!gone && serverAlive()) {
    child.kill('SIGKILL')
    await Promise.race([exited, sleep(2000)])
  }
}

let cleaning: Promise<void> | undefined
async function cleanup (): Promise<void> {
  cleaning ??= (async () => {
    try {
      await stopServer()
    } catch (err) {
      process.stderr.write(`bench: stopping the server: ${(err as Error).message}\n`)
    }
    try {
      await dropDatabase()
    } catch (err) {
      process.stderr.write(`bench: could not drop database ${dbName}: ${(err as Error).message}\n`)
    }
  })()
  return await cleaning
}

let bailing = false
async function bail (reason: string, code: number): Promise<never> {
  bailing = true
  process.stderr.write(`bench: ${reason}\n`)
  // no grace here: whatever hangs must not hang the exit too
  if (serverAlive()) server!.kill('SIGKILL')
  await withDeadline(cleanup(), 20_000, 'cleanup').catch((err) => process.stderr.write(`bench: ${(err as Error).message}\n`))
  process.exit(code)
}

async function freePort (): Promise<number> {
  const srv = createServer()
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const addr = srv.address()
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0
  await new Promise<void>((resolve) => srv.close(() => resolve()))
  if (port === 0) throw new Error('could not find a free port')
  return port
}

function startServer (databaseUrl: string, port: number): ChildProcess {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: databaseUrl,
    PORT: String(port),
    PLT_SERVER_HOSTNAME: '127.0.0.1',
    PLT_SERVER_LOGGER_LEVEL: 'warn',
    HOOKPOST_DELIVERY: 'false',
    HOOKPOST_PRETTY_LOGS: 'false'
  }
  if (SERVER_DB_POOL !== undefined && SERVER_DB_POOL !== '') env.HOOKPOST_DB_POOL_SIZE = SERVER_DB_POOL
  const child = spawn(process.execPath, ['--import', 'tsx', 'lib/server.ts'], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  const echo = (chunk: Buffer): void => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() === '') continue
      serverOutput.push(line)
      if (serverOutput.length > 200) serverOutput.shift()
      process.stderr.write(`[server] ${line}\n`)
    }
  }
  child.stdout!.on('data', echo)
  child.stderr!.on('data', echo)
  child.on('exit', (code, signal) => {
    if (cleaning === undefined) process.stderr.write(`bench: server exited early (code ${code}, signal ${signal})\n`)
  })
  return child
}

function headers (): Record<string, string> {
  const h: Record<string, string> = { 'content-type': 'application/json' }
  if (ADMIN_SECRET !== undefined) h['x-platformatic-admin-secret'] = ADMIN_SECRET
  return h
}

async function waitForHealth (control: Pool, deadlineMs: number): Promise<void> {
  const until = Date.now() + deadlineMs
  let last = ''
  while (Date.now() < until) {
    if (!serverAlive()) throw new Error('the server exited before answering /health')
    try {
      const res = await control.request({ path: '/health', method: 'GET', headersTimeout: 2000, bodyTimeout: 2000 })
      const text = await res.body.text()
      if (res.statusCode === 200 && (JSON.parse(text) as { database?: string }).database === 'up') return
      last = `${res.statusCode} ${text}`
    } catch (err) {
      last = (err as Error).message
    }
    await sleep(100)
  }
  throw new Error(`GET /health did not answer ok within ${deadlineMs} ms (last: ${last})`)
}

async function createQueue (control: Pool): Promise<number> {
  const res = await control.request({
    path: '/queues',
    method: 'POST',
    headers: headers(),
    body: JSON.stringify({ name: 'bench', callbackUrl: 'http://127.0.0.1:9/none' })
  })
  const text = await res.body.text()
  if (res.statusCode !== 201) throw new Error(`POST /queues answered ${res.statusCode}: ${text}`)
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

function percentile (sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN
  const rank = Math.ceil(p * sorted.length) - 1
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))]!
}

/** Run `op` n times with c loops in flight; each call's latency is recorded. */
async function drive (name: string, c: number, n: number, op: () => Promise<void>): Promise<Result> {
  const lat = new Float64Array(n)
  let next = 0
  let failure: Error | undefined
  const loop = async (): Promise<void> => {
    while (failure === undefined) {
      const i = next++
      if (i >= n) return
      const t0 = performance.now()
      try {
        await op()
      } catch (err) {
        failure ??= err as Error
        return
      }
      lat[i] = performance.now() - t0
    }
  }
  const start = performance.now()
  await Promise.all(Array.from({ length: c }, loop))
  const seconds = (performance.now() - start) / 1000
  if (failure !== undefined) throw new Error(`${name} c=${c}: ${failure.message}`, { cause: failure })
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
    if (res.statusCode !== 201) throw new Error(`POST /messages answered ${res.statusCode}: ${text.slice(0, 300)}`)
  }
  try {
    if (WARMUP > 0) await drive('http warmup', c, WARMUP, op)
    return await drive('http', c, n, op)
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
      if (WARMUP > 0) await drive('raw warmup', c, WARMUP, op)
      return await drive('raw pg', c, n, op)
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
    if (WARMUP > 0) await drive('raw warmup', c, WARMUP, op)
    return await drive('raw pg', c, n, op)
  } finally {
    await pool.end().catch(() => {})
  }
}

// ---------------------------------------------------------------------------------------------

function nproc (): number {
  try {
    return Number(execFileSync('nproc', { encoding: 'utf8' }).trim())
  } catch {
    return os.availableParallelism()
  }
}

function fmt (n: number, digits = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

async function main (): Promise<void> {
  adminUrl = process.env.DATABASE_URL !== undefined && process.env.DATABASE_URL !== '' ? process.env.DATABASE_URL : DEFAULT_DATABASE_URL
  loopbackOnly(adminUrl, 'DATABASE_URL')

  dbName = `hookpost_bench_${randomBytes(6).toString('hex')}`
  await adminQuery(`CREATE DATABASE "${dbName}"`)
  dbCreated = true
  const benchUrl = new URL(adminUrl)
  benchUrl.pathname = '/' + dbName
  const databaseUrl = benchUrl.toString()
  process.stderr.write(`bench: created database ${dbName}\n`)

  const settings = await adminQuery(`SELECT current_setting('server_version') AS version,
    current_setting('synchronous_commit') AS sync, current_setting('fsync') AS fsync`)
  const pgInfo = settings.rows[0] as { version: string, sync: string, fsync: string }

  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  server = startServer(databaseUrl, port)
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
  out.push(`hookpost enqueue benchmark (bench/api.ts)`)
  out.push(`nproc ${nCpu}, node ${process.version}, PostgreSQL ${pgInfo.version} (synchronous_commit=${pgInfo.sync}, fsync=${pgInfo.fsync})`)
  out.push(`body ${BODY_TEXT.length} bytes of JSON; server DB pool ${SERVER_DB_POOL ?? 'default (10)'}; raw c=32 uses 32 connections; rows in table at end ${fmt(expected)}`)
  out.push('')
  const head = ['path', 'c', 'n', 'seconds', 'rows/s', 'p50 ms', 'p99 ms', 'max ms']
  const table = results.map(r => [
    r.name === 'http' ? 'POST /messages' : 'raw pg INSERT',
    String(r.concurrency), fmt(r.n), fmt(r.seconds, 2), fmt(r.rowsPerSec), fmt(r.p50Ms, 2), fmt(r.p99Ms, 2), fmt(r.maxMs, 2)
  ])
  const widths = head.map((h, i) => Math.max(h.length, ...table.map(row => row[i]!.length)))
  const line = (cells: string[]): string => '| ' + cells.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join(' | ') + ' |'
  out.push(line(head))
  out.push('|' + widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|')
  for (const row of table) out.push(line(row))
  out.push('')
  out.push(`HTTP/raw at c=1:  ${fmt(ratio1 * 100, 1)}%  (${fmt(http1.rowsPerSec)} / ${fmt(raw1.rowsPerSec)} rows/s)`)
  out.push(`HTTP/raw at c=32: ${fmt(ratio32 * 100, 1)}%  (${fmt(http32.rowsPerSec)} / ${fmt(raw32.rowsPerSec)} rows/s)`)
  out.push('')
  process.stdout.write(out.join('\n') + '\n')

  const round = (x: number, d: number): number => Math.round(x * 10 ** d) / 10 ** d
  const fig = (r: Result): Record<string, number> => ({
    concurrency: r.concurrency, n: r.n, seconds: round(r.seconds, 3), rowsPerSec: round(r.rowsPerSec, 1),
    p50Ms: round(r.p50Ms, 3), p99Ms: round(r.p99Ms, 3), maxMs: round(r.maxMs, 3)
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

const deadline = setTimeout(() => { if (!bailing) void bail(`global timeout of ${TIMEOUT_MS} ms reached: killing the server`, 1) }, TIMEOUT_MS)
// on, not once: a Ctrl-C reaches npx, tsx and us, so the signal can come twice; the repeat must not
// kill us with the default action before the database is dropped
process.on('SIGINT', () => { if (!bailing) void bail('interrupted', 130) })
process.on('SIGTERM', () => { if (!bailing) void bail('terminated', 143) })

main().then(async () => {
  clearTimeout(deadline)
  await cleanup()
  process.exit(0)
}, async (err: unknown) => {
  clearTimeout(deadline)
  // bail() is already cleaning up and will exit; what fails now is only the fallout of its kill
  if (bailing) return
  process.stderr.write(`bench: failed: ${(err as Error).stack ?? String(err)}\n`)
  if (serverOutput.length > 0 && !serverAlive()) process.stderr.write(`bench: last server output:\n${serverOutput.slice(-20).join('\n')}\n`)
  await cleanup()
  process.exit(1)
})
