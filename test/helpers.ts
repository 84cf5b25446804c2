// Test helpers: a real database per test file (cloned from a migrated template) and real HTTP receivers.
import { createHash, randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import pino from 'pino'
import tap from 'tap'
import type { FastifyInstance } from 'fastify'
import { build, type BuildOptions } from '../lib/app.js'
import { DEFAULTS, makeConfig, type Config } from '../lib/config.js'
import { loadMigrations, migrate } from '../lib/db/migrate.js'
import { createPool } from '../lib/db/pool.js'

type T = { teardown: (fn: () => unknown) => void }

/** tsx's loader by absolute URL, so child processes can run TypeScript from any cwd */
export const TSX = import.meta.resolve('tsx')

/**
 * node's arguments for the real server, in the suite's own form: `npm test` runs the suite compiled
 * (dist/test, test/run.ts), and then the server is dist/lib/server.js; a .ts suite runs lib/server.ts.
 */
export const SERVER_ARGS = import.meta.url.endsWith('.js')
  ? [fileURLToPath(new URL('../lib/server.js', import.meta.url))]
  : ['--import', TSX, fileURLToPath(new URL('../lib/server.ts', import.meta.url))]

export const silentLog = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' })

export function serverUrl (): string {
  const url = process.env.DATABASE_URL
  if (url === undefined || url === '') throw new Error('DATABASE_URL is not set: run the tests with `npm test`, which starts an embedded PostgreSQL when needed')
  return url
}

export function urlForDatabase (name: string): string {
  const u = new URL(serverUrl())
  u.pathname = '/' + name
  return u.toString()
}

async function withAdmin<R> (fn: (c: pg.Client) => Promise<R>): Promise<R> {
  const c = new pg.Client({ connectionString: serverUrl() })
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end()
  }
}

let templateName: Promise<string> | undefined

/** A migrated template database, made once per schema version and shared by every test file. */
async function template (): Promise<string> {
  templateName ??= (async () => {
    const hash = createHash('sha256')
    for (const m of await loadMigrations()) hash.update(m.sql)
    const name = `hookpost_tpl_${hash.digest('hex').slice(0, 12)}`
    await withAdmin(async (c) => {
      await c.query('SELECT pg_advisory_lock(7411001)')
      try {
        const exists = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])
        if (exists.rowCount === 0) {
          const tmp = `${name}_build_${randomBytes(3).toString('hex')}`
          await c.query(`CREATE DATABASE ${tmp}`)
          const pool = new pg.Pool({ connectionString: urlForDatabase(tmp), max: 1 })
          await migrate(pool)
          await pool.end()
          // renamed only when complete, so a crash mid-build never leaves a half-made template
          await c.query(`ALTER DATABASE ${tmp} RENAME TO ${name}`)
        }
      } finally {
        await c.query('SELECT pg_advisory_unlock(7411001)')
      }
    })
    return name
  })()
  return await templateName
}

async function createDatabase (tpl: string): Promise<string> {
  const name = `hookpost_t_${process.pid}_${randomBytes(4).toString('hex')}`
  // concurrent clones of one template are safe (CREATE DATABASE takes a share lock on it), and overlap
  // their WAL writes and fsyncs: no lock around them
  await withAdmin(async (c) => { await c.query(`CREATE DATABASE ${name} TEMPLATE ${tpl}`) })
  return name
}

// Every database this process made, dropped once its last test has ended, a few at a time: a DROP
// DATABASE waits for a checkpoint, and at each test's teardown it held up the next test. Teardowns
// close every connection first; WITH (FORCE) ends any a killed server process left behind.
const made: Array<Promise<string>> = []
function dropAtExit (name: Promise<string>): void {
  if (made.push(name) > 1) return
  tap.teardown(async () => {
    const names = (await Promise.allSettled(made)).flatMap(r => r.status === 'fulfilled' ? [r.value] : [])
    const next = async (): Promise<void> => {
      for (let n = names.pop(); n !== undefined; n = names.pop()) {
        await withAdmin(async (c) => { await c.query(`DROP DATABASE IF EXISTS ${n} WITH (FORCE)`) })
      }
    }
    await Promise.all([next(), next(), next()])
  })
}

// the next migrated database, cloned while the current test runs: a test starts on a fresh database
// without waiting for the clone
let spare: Promise<string> | undefined

/** A fresh database for this test; { migrated: false } gives an empty one. Dropped after the last test. */
export async function testDatabase (_t: T, opts: { migrated?: boolean } = {}): Promise<string> {
  if (opts.migrated === false) {
    const name = createDatabase('template1')
    dropAtExit(name)
    return urlForDatabase(await name)
  }
  const tpl = await template()
  let name = spare
  if (name === undefined) {
    name = createDatabase(tpl)
    dropAtExit(name)
  }
  spare = createDatabase(tpl)
  spare.catch(() => {}) // a failed clone fails the test that takes it
  dropAtExit(spare)
  return urlForDatabase(await name)
}

export function testPool (t: T, url: string, max = 4): pg.Pool {
  const pool = createPool(url, { max, log: silentLog, statementTimeoutMs: DEFAULTS.statementTimeoutMs })
  t.teardown(async () => { await pool.end() })
  return pool
}

export type ConfigOverrides = Parameters<typeof makeConfig>[0]

/** url: an existing database; cronClock: the cron scheduler's time (BuildOptions) */
export type AppOverrides = ConfigOverrides & { url?: string, cronClock?: BuildOptions['cronClock'] }

export async function testApp (t: T, over: AppOverrides = {}):
Promise<{ app: FastifyInstance, url: string, config: Config }> {
  const url = over.url ?? await testDatabase(t)
  // the engine is off unless a test asks for it, so API tests see rows exactly as they wrote them
  const config = makeConfig({
    ...over,
    db: { connectionString: url, ...over.db },
    hooks: { enabled: false, ...over.hooks }
  })
  const app = await build(config, { logger: silentLog, cronClock: over.cronClock })
  t.teardown(async () => { await app.close() })
  return { app, url, config }
}

/** An app whose engine runs and leads: leader elected, worker started. */
export async function deliveringApp (t: T, over: AppOverrides = {}):
Promise<{ app: FastifyInstance, url: string, config: Config, pool: pg.Pool }> {
  const ctx = await testApp(t, { ...over, hooks: { enabled: true, leaderPollMs: 100, pollMs: 60_000, ...over.hooks } })
  await ctx.app.ready()
  await eventually(async () => ctx.app.delivery!.leader.isLeader && ctx.app.delivery!.worker.active)
  return { ...ctx, pool: testPool(t, ctx.url) }
}

/**
 * An application's role on the test database, with exactly the grants the README documents for the
 * outbox functions given (signatures), plus an orders table of its own; dropped at teardown.
 */
export async function applicationRole (t: T, admin: pg.Pool, url: string, functions: string[]): Promise<pg.Pool> {
  const role = `hp_app_${randomBytes(4).toString('hex')}`
  const password = randomBytes(12).toString('hex')
  await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`)
  await admin.query(`GRANT USAGE ON SCHEMA hookpost TO ${role}`)
  for (const f of functions) await admin.query(`GRANT EXECUTE ON FUNCTION ${f} TO ${role}`)
  await admin.query('CREATE TABLE public.orders (id serial PRIMARY KEY, item text NOT NULL)')
  await admin.query(`GRANT SELECT, INSERT ON public.orders TO ${role}; GRANT USAGE ON SEQUENCE public.orders_id_seq TO ${role}`)
  const u = new URL(url)
  u.username = role
  u.password = password
  const pool = new pg.Pool({ connectionString: u.toString(), max: 6 })
  t.teardown(async () => {
    await pool.end()
    // the test database is dropped after this; the role is cluster-wide and goes now
    await admin.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`).catch(() => {})
  })
  return pool
}

/** A write through the API that must succeed; its JSON reply. */
export async function post (app: FastifyInstance, url: string, payload: object, method: 'POST' | 'PUT' = 'POST'): Promise<any> {
  const res = await app.inject({ method, url, payload })
  if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`)
  return res.json()
}

export interface Received {
  method: string
  url: string
  headers: IncomingMessage['headers']
  body: string
  at: number
}

export interface Receiver {
  url: string
  requests: Received[]
  /** resolves when n requests have arrived; rejects after ms */
  waitFor: (n: number, ms?: number) => Promise<Received[]>
  close: () => Promise<void>
}

type Handler = (req: Received, res: ServerResponse) => unknown

/** A real HTTP server on 127.0.0.1 that records every request. By default it answers 200. */
export async function receiver (t: T, handler?: Handler): Promise<Receiver> {
  const requests: Received[] = []
  const waiters: Array<{ n: number, resolve: () => void }> = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const r: Received = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() }
      requests.push(r)
      for (const w of waiters.filter(w => requests.length >= w.n)) w.resolve()
      Promise.resolve(handler !== undefined ? handler(r, res) : res.end('ok')).catch(() => res.destroy())
    })
  })
  server.keepAliveTimeout = 5000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const close = async (): Promise<void> => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  t.teardown(close)
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close,
    waitFor: async (n, ms = 10_000) => {
      if (requests.length >= n) return requests
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`receiver got ${requests.length} of ${n} requests in ${ms} ms`)), ms)
        waiters.push({ n, resolve: () => { clearTimeout(timer); resolve() } })
      })
      return requests
    }
  }
}

export async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

/** Poll fn until it returns a truthy value or ms passes. */
export async function eventually<R> (fn: () => Promise<R>, ms = 10_000, every = 50): Promise<R> {
  const deadline = Date.now() + ms
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const v = await fn()
      if (v) return v
    } catch (err) {
      last = err
    }
    await sleep(every)
  }
  throw new Error(`condition not met in ${ms} ms${last !== undefined ? ': ' + String(last) : ''}`)
}

export interface ServerProcess {
  url: string
  proc: import('node:child_process').ChildProcess
  /** every log line printed so far, parsed */
  logs: Array<Record<string, any>>
  /** resolves with the exit code */
  exited: Promise<number | null>
  /** SIGTERM, then SIGKILL after ms */
  stop: (ms?: number) => Promise<number | null>
}

/** The real server, as a separate process (SERVER_ARGS), on a free port. */
export async function spawnServer (
  t: T, env: Record<string, string | undefined>, opts: { cwd?: string, startMs?: number } = {}
): Promise<ServerProcess> {
  const { spawn } = await import('node:child_process')
  const { freePort } = await import('../lib/db/embedded.js')
  const port = await freePort()
  const proc = spawn(process.execPath, SERVER_ARGS, {
    cwd: opts.cwd ?? process.cwd(),
    env: { PATH: process.env.PATH, PORT: String(port), PLT_SERVER_HOSTNAME: '127.0.0.1', PLT_SERVER_LOGGER_LEVEL: 'info', HOOKPOST_PRETTY_LOGS: 'false', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const logs: Array<Record<string, any>> = []
  let stderr = ''
  let buf = ''
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString()
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      try { logs.push(JSON.parse(line)) } catch { logs.push({ msg: line }) }
    }
  })
  proc.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)))
  const stop = async (ms = 15_000): Promise<number | null> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode
    proc.kill('SIGTERM')
    const timer = setTimeout(() => proc.kill('SIGKILL'), ms)
    const code = await exited
    clearTimeout(timer)
    return code
  }
  t.teardown(async () => { await stop(5000) })
  const url = `http://127.0.0.1:${port}`
  await eventually(async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`server exited with ${proc.exitCode ?? proc.signalCode}: ${stderr}`)
    }
    return logs.some(l => /Server listening/.test(l.msg ?? ''))
  }, opts.startMs ?? 30_000).catch((err) => { throw new Error(`${(err as Error).message}\nstderr: ${stderr}\nlogs: ${JSON.stringify(logs.slice(-5))}`) })
  return { url, proc, logs, exited, stop }
}

/** Whether a spawned server currently leads, from its own log lines. */
export function isLeader (s: ServerProcess): boolean {
  const elected = s.logs.filter(l => l.msg === 'elected leader').length
  const demoted = s.logs.filter(l => /demoted|left leadership/.test(l.msg ?? '')).length
  return elected > demoted
}
