// Entry point: load config -> (embedded PostgreSQL) -> build -> listen. The only place that listens.
import { ConfigError, loadConfig, withConnectionString, type Config } from './config.js'
import { startEmbedded, type Embedded } from './db/embedded.js'
import { migrate } from './db/migrate.js'
import { createPool, redactUrl } from './db/pool.js'
import { createLogger } from './logger.js'
import { build } from './app.js'
import { ImportError, importPgHooks } from './store/import-pg-hooks.js'

/** `--name=value` or `--name value` from the command line, else the default */
function option (args: string[], name: string, fallback: string): string {
  const i = args.findIndex(a => a === `--${name}` || a.startsWith(`--${name}=`))
  if (i < 0) return fallback
  const a = args[i]!
  return a.includes('=') ? a.slice(a.indexOf('=') + 1) : (args[i + 1] ?? fallback)
}

async function main (): Promise<void> {
  let config: Config
  try {
    config = loadConfig()
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`hookpost: ${err.message}\n`)
      process.exit(1)
    }
    throw err
  }
  const log = createLogger(config)
  let embedded: Embedded | undefined
  if (config.db.connectionString === null) {
    embedded = await startEmbedded(config.db.dataDir, log)
    config = withConnectionString(config, embedded.connectionString)
  } else {
    log.info({ database: redactUrl(config.db.connectionString) }, 'using DATABASE_URL')
  }

  const command = process.argv[2]
  if (command === 'migrate' || command === 'import-pg-hooks') {
    const pool = createPool(config.db.connectionString!, { max: 1, log, statementTimeoutMs: 0 })
    try {
      const applied = await migrate(pool)
      log.info({ applied }, applied.length > 0 ? 'migrations applied' : 'schema is up to date')
      if (command === 'import-pg-hooks') {
        const args = process.argv.slice(3)
        const result = await importPgHooks(pool, {
          schema: option(args, 'schema', 'public'), timezone: option(args, 'timezone', 'UTC')
        })
        log.info(result, result.status === 'already'
          ? 'pg-hooks import: every row is already here; nothing done'
          : 'pg-hooks import: done')
      }
    } catch (err) {
      if (!(err instanceof ImportError)) throw err
      log.error(`pg-hooks import: ${err.message}`)
      process.exitCode = 1
    } finally {
      await pool.end()
      await embedded?.stop()
    }
    return
  }

  const app = await build(config, { logger: log })
  let closing = false
  const close = async (signal: string): Promise<void> => {
    if (closing) return
    closing = true
    log.info({ signal }, 'shutting down')
    // a second signal while draining means "now"
    process.once(signal as NodeJS.Signals, () => process.exit(1))
    try {
      await app.close()
      await embedded?.stop()
    } catch (err) {
      log.error({ err }, 'error while shutting down')
      process.exitCode = 1
    }
  }
  // close() logs its own failures: only a failing log call could reject it
  const onSignal = (signal: string): void => {
    close(signal).catch((err: Error) => process.stderr.write(`hookpost: ${err.stack ?? String(err)}\n`))
  }
  process.once('SIGTERM', () => onSignal('SIGTERM'))
  process.once('SIGINT', () => onSignal('SIGINT'))

  try {
    await app.listen({ port: config.server.port, host: config.server.hostname })
  } catch (err) {
    log.fatal({ err }, 'cannot listen')
    await app.close().catch(() => {})
    await embedded?.stop()
    process.exit(1)
  }
}

main().catch((err) => {
  process.stderr.write(`hookpost: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
