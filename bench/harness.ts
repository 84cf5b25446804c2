// What the benchmarks (bench/api.ts, bench/delivery.ts, the probes) need around their phases: a fresh
// database, the real server as a child process, cleanup that runs on error, timeout and Ctrl-C, CPU
// accounting per process, and the formatting of the results.
//
// The database follows the project rule: with DATABASE_URL set (loopback only), hookpost_bench_<random>
// is created there; with DATABASE_URL unset or empty, an embedded PostgreSQL is started on ./data/bench
// (lib/db/embedded.ts) and the database is created in it. cleanup() drops the database, then stops the
// embedded PostgreSQL.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { readdirSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import os from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import pino from 'pino'
import type { Pool } from 'undici'
import { startEmbedded, type Embedded } from '../lib/db/embedded.js'

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]', '::1', ''])
export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url))

export function envInt (name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw.trim() === '') return fallback
  const n = Number(raw.trim())
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`${name}: expected an integer between ${min} and ${max}, got ${JSON.stringify(raw)}`)
  }
  return n
}

export function loopbackOnly (url: string, what: string): void {
  const host = decodeURIComponent(new URL(url).hostname)
  if (!LOOPBACK_HOSTS.has(host) && !host.startsWith('/')) {
    throw new Error(`${what}: this benchmark only talks to 127.0.0.1; refusing host ${JSON.stringify(host)}`)
  }
}

export async function withDeadline<T> (p: Promise<T>, ms: number, what: string): Promise<T> {
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

// ---------------------------------------------------------------------------------------------
// database

let adminUrl = ''
let dbName = ''
let dbCreated = false
/** the embedded PostgreSQL when DATABASE_URL is not set; a promise so cleanup() also stops one still starting */
let embedded: Promise<Embedded> | undefined

/** Where the embedded PostgreSQL keeps its data (./data/bench/pg), apart from the server's and the tests'. */
export const EMBEDDED_DATA_DIR = join(REPO_ROOT, 'data', 'bench')

export async function adminQuery (sql: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: adminUrl, application_name: 'hookpost-bench-admin', connectionTimeoutMillis: 5000 })
  client.on('error', () => {})
  await client.connect()
  try {
    return await client.query(sql)
  } finally {
    await client.end().catch(() => {})
  }
}

/**
 * Create hookpost_bench_<random> on DATABASE_URL, or with no DATABASE_URL on an embedded PostgreSQL
 * started here; returns its URL. Dropped (and the embedded PostgreSQL stopped) by cleanup().
 */
export async function createBenchDatabase (): Promise<{ name: string, url: string }> {
  const given = process.env.DATABASE_URL
  if (given !== undefined && given !== '') {
    adminUrl = given
    loopbackOnly(adminUrl, 'DATABASE_URL')
  } else {
    process.stderr.write(`bench: no DATABASE_URL: starting embedded PostgreSQL on ${EMBEDDED_DATA_DIR}\n`)
    // its warnings to stderr: stdout carries only the results
    embedded = startEmbedded(EMBEDDED_DATA_DIR, pino({ level: 'warn' }, pino.destination(2)))
    adminUrl = (await embedded).connectionString
  }
  dbName = `hookpost_bench_${randomBytes(6).toString('hex')}`
  await adminQuery(`CREATE DATABASE "${dbName}"`)
  dbCreated = true
  const u = new URL(adminUrl)
  u.pathname = '/' + dbName
  process.stderr.write(`bench: created database ${dbName}\n`)
  return { name: dbName, url: u.toString() }
}

async function dropDatabase (): Promise<void> {
  if (!dbCreated) return
  // FORCE ends whatever is still connected (a killed server's backends, our own pools on error paths)
  await withDeadline(adminQuery(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`), 15_000, 'DROP DATABASE')
  dbCreated = false
  process.stderr.write(`bench: dropped database ${dbName}\n`)
}

/**
 * Stop the embedded PostgreSQL, unless another bench run is still using it: two runs without
 * DATABASE_URL share ./data/bench, the second adopts the first one's PostgreSQL (startEmbedded), and
 * whichever finishes first must not pull it from under the other. Last one out stops it.
 */
async function stopEmbedded (): Promise<void> {
  const starting = embedded
  if (starting === undefined) return
  embedded = undefined
  let pgServer: Embedded
  try {
    pgServer = await withDeadline(starting, 35_000, 'starting embedded PostgreSQL')
  } catch {
    return // it failed to start (startEmbedded kills what it spawned) or never answered
  }
  let others = 0
  try {
    // our server is stopped and our database dropped (FORCE): every client left is someone else's
    const { rows } = await withDeadline(adminQuery(`SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`), 5000, 'counting connections')
    others = (rows[0] as { n: number }).n
  } catch {
    // not answering: nothing to spare, stop it
  }
  if (others > 0) {
    process.stderr.write(`bench: embedded PostgreSQL left running: ${others} other connection(s) to it (another bench run?)\n`)
    return
  }
  await withDeadline(pgServer.stop(), 15_000, 'stopping embedded PostgreSQL')
  process.stderr.write('bench: stopped embedded PostgreSQL\n')
}

// ---------------------------------------------------------------------------------------------
// server process

/** the first server started answers the API; BENCH_SERVERS > 1 starts more beside it */
let server: ChildProcess | undefined
const servers: ChildProcess[] = []
const serverOutput: string[] = []
/** closed by cleanup() before the server stops: receivers, pools */
const closers: Array<() => Promise<void>> = []

export function onCleanup (fn: () => Promise<void>): void { closers.push(fn) }

const alive = (c: ChildProcess): boolean => c.exitCode === null && c.signalCode === null

export function serverAlive (): boolean {
  return server !== undefined && servers.every(alive)
}

export function serverPid (): number | undefined { return server?.pid }

/** every server process started */
export function serverPids (): number[] { return servers.flatMap(s => s.pid !== undefined ? [s.pid] : []) }

export async function freePort (): Promise<number> {
  const srv = createServer()
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const addr = srv.address()
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0
  await new Promise<void>((resolve) => srv.close(() => resolve()))
  if (port === 0) throw new Error('could not find a free port')
  return port
}

/**
 * Where the server runs from: this checkout, or BENCH_SERVER_ROOT (another copy of the repository,
 * e.g. `git archive HEAD` plus a change under test, with node_modules linked), to compare a change
 * to lib/ without touching lib/.
 */
export function serverRoot (): string {
  const root = process.env.BENCH_SERVER_ROOT
  return root !== undefined && root !== '' ? root : REPO_ROOT
}

/**
 * The server as `npm start` runs it: compiled by tsc (`npm run build`, once per bench process) and
 * started with the node flags of package.json's start script, so the figures are those of what users
 * run, not of tsx's on-the-fly transform.
 */
let built: { root: string, args: string[] } | undefined
function serverCommand (): string[] {
  const root = serverRoot()
  if (built?.root !== root) {
    execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] })
    const start = String((JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start)
    const m = /^node((?:\s+--\S+)*)\s+(\S+\.js)$/.exec(start.trim())
    if (m === null) throw new Error(`package.json: cannot read the start script "${start}" as node [flags] file.js`)
    built = { root, args: [...m[1]!.trim().split(/\s+/).filter(a => a !== ''), m[2]!] }
  }
  return built.args
}

/**
 * The built server (serverCommand) with delivery on; HOOKPOST_* tuning in our env passes through.
 * `envOverride` is applied last (e.g. HOOKPOST_DELIVERY: 'false'); an undefined value removes the variable.
 */
export function startServer (
  databaseUrl: string, port: number, nodeArgs: string[] = [], envOverride: NodeJS.ProcessEnv = {}
): ChildProcess {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: databaseUrl,
    PORT: String(port),
    PLT_SERVER_HOSTNAME: '127.0.0.1',
    PLT_SERVER_LOGGER_LEVEL: 'warn',
    HOOKPOST_DELIVERY: 'true',
    HOOKPOST_PRETTY_LOGS: 'false'
  }
  for (const [name, value] of Object.entries(envOverride)) {
    if (value === undefined) delete env[name]
    else env[name] = value
  }
  const command = serverCommand()
  const child = spawn(process.execPath, [...nodeArgs, ...command], { cwd: serverRoot(), env, stdio: ['ignore', 'pipe', 'pipe'] })
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
  server ??= child
  servers.push(child)
  return child
}

export function lastServerOutput (n: number): string[] { return serverOutput.slice(-n) }

async function stopServer (): Promise<void> {
  await Promise.all(servers.filter(alive).map(async (child) => {
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    const gone = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)])
    if (!gone && alive(child)) {
      child.kill('SIGKILL')
      await Promise.race([exited, sleep(2000)])
    }
  }))
}

export async function waitForHealth (control: Pool, deadlineMs: number): Promise<void> {
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

// ---------------------------------------------------------------------------------------------
// cleanup and bail-out

let cleaning: Promise<void> | undefined
export async function cleanup (): Promise<void> {
  cleaning ??= (async () => {
    for (const close of closers.splice(0).reverse()) {
      await withDeadline(close(), 5000, 'closing').catch((err) => process.stderr.write(`bench: ${(err as Error).message}\n`))
    }
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
    try {
      await stopEmbedded()
    } catch (err) {
      process.stderr.write(`bench: stopping embedded PostgreSQL: ${(err as Error).message}\n`)
    }
  })()
  return await cleaning
}

let bailing = false
export function isBailing (): boolean { return bailing }

export async function bail (reason: string, code: number): Promise<never> {
  bailing = true
  process.stderr.write(`bench: ${reason}\n`)
  // no grace here: whatever hangs must not hang the exit too
  if (serverAlive()) server!.kill('SIGKILL')
  await withDeadline(cleanup(), 20_000, 'cleanup').catch((err) => process.stderr.write(`bench: ${(err as Error).message}\n`))
  process.exit(code)
}

/**
 * bail() from a timer or a signal handler, where nobody awaits it. bail() ends the process itself; should
 * it fail instead, the process dies as on any unhandled rejection: the error on stderr, exit code 1.
 */
function bailUnawaited (reason: string, code: number): void {
  bail(reason, code).catch((err: unknown) => {
    process.stderr.write(`bench: bail failed: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  })
}

/**
 * Run a benchmark's main(): a global deadline, bail-out on Ctrl-C and SIGTERM, cleanup() and exit 0
 * on success, 1 on failure (with the server's last output when it died).
 */
export function runMain (main: () => Promise<void>, timeoutMs: number): void {
  const deadline = setTimeout(() => {
    if (!bailing) bailUnawaited(`global timeout of ${timeoutMs} ms reached: killing the server`, 1)
  }, timeoutMs)
  // on, not once: a Ctrl-C reaches npx, tsx and us, so the signal can come twice; the repeat must not
  // kill us with the default action before the database is dropped
  process.on('SIGINT', () => { if (!bailing) bailUnawaited('interrupted', 130) })
  process.on('SIGTERM', () => { if (!bailing) bailUnawaited('terminated', 143) })

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
}

// ---------------------------------------------------------------------------------------------
// CPU accounting: who burns the cores during a phase

const CLK_TCK = ((): number => {
  try { return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100 } catch { return 100 }
})()

/** utime, stime, cutime, cstime of a process, ms; null when it is gone */
function procTimes (pid: number | string): { comm: string, self: number, children: number } | null {
  let text: string
  try { text = readFileSync(`/proc/${pid}/stat`, 'utf8') } catch { return null }
  const close = text.lastIndexOf(')')
  const comm = text.slice(text.indexOf('(') + 1, close)
  // fields after "pid (comm)": state is [0], utime [11], stime [12], cutime [13], cstime [14]
  const f = text.slice(close + 2).split(' ')
  const tick = 1000 / CLK_TCK
  return { comm, self: (Number(f[11]) + Number(f[12])) * tick, children: (Number(f[13]) + Number(f[14])) * tick }
}

export function processCpuMs (pid: number | undefined): number {
  if (pid === undefined) return NaN
  return procTimes(pid)?.self ?? NaN
}

/** A process's peak resident memory so far (VmHWM), MB; NaN when it cannot be read. */
export function peakRssMb (pid: number | undefined): number {
  if (pid === undefined) return NaN
  try {
    const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
    return kb === undefined ? NaN : Math.round(Number(kb) / 1024)
  } catch {
    return NaN
  }
}

/**
 * Every postgres process on the machine (the postmaster's reaped children included). Other users
 * of the same PostgreSQL count too: the machine-wide figure says whether that happened.
 */
export function postgresCpuMs (): number {
  let total = 0
  let seen = 0
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const t = procTimes(name)
    if (t === null || t.comm !== 'postgres') continue
    total += t.self + t.children
    seen++
  }
  return seen > 0 ? total : NaN
}

/** machine-wide busy, interrupt (irq + softirq: loopback TCP is mostly this) and total CPU ms since boot, all cores */
export function machineCpuMs (): { busy: number, irq: number, total: number } {
  try {
    // user nice system idle iowait irq softirq steal
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
    const total = line.slice(0, 8).reduce((a, b) => a + b, 0)
    const idle = (line[3] ?? 0) + (line[4] ?? 0)
    const tick = 1000 / CLK_TCK
    return { busy: (total - idle) * tick, irq: ((line[5] ?? 0) + (line[6] ?? 0)) * tick, total: total * tick }
  } catch {
    return { busy: NaN, irq: NaN, total: NaN }
  }
}

// ---------------------------------------------------------------------------------------------
// payload

/** A JSON object of about 1 KB, like a typical webhook payload; the same for every benchmark. */
export function makeBody (): Record<string, unknown> {
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

// ---------------------------------------------------------------------------------------------
// formatting

/** The commit measured, and whether the code the server runs had uncommitted changes. */
export function gitRevision (): string {
  if (serverRoot() !== REPO_ROOT) return `server from ${serverRoot()}`
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'lib', 'routes', 'migrations'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim() !== ''
    return dirty ? `${head}+uncommitted` : head
  } catch {
    return 'unknown'
  }
}

export function nproc (): number {
  try {
    return Number(execFileSync('nproc', { encoding: 'utf8' }).trim())
  } catch {
    return os.availableParallelism()
  }
}

export function fmt (n: number, digits = 0): string {
  if (!Number.isFinite(n)) return '-'
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

export const round = (x: number, d: number): number => Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : x

export function percentile (sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN
  const rank = Math.ceil(p * sorted.length) - 1
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))]!
}

/** A markdown table; the first column left-aligned, the others right-aligned. */
/** Run op(i) for i = 0..n-1 with c loops in flight; the first failure stops every loop and is thrown. */
export async function drive (c: number, n: number, op: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  let failure: Error | undefined
  const loop = async (): Promise<void> => {
    while (failure === undefined) {
      const i = next++
      if (i >= n) return
      try {
        await op(i)
      } catch (err) {
        failure ??= err as Error
      }
    }
  }
  await Promise.all(Array.from({ length: c }, loop))
  if (failure !== undefined) throw failure
}

export function table (head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map(row => row[i]!.length)))
  const line = (cells: string[]): string => '| ' + cells.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join(' | ') + ' |'
  return [
    line(head),
    '|' + widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|',
    ...rows.map(line)
  ]
}
