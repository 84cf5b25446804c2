// The only module that reads process.env, .env and platformatic.json.
// Everything else receives the frozen Config built here.
import { existsSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseEnv } from 'node:util'
import { parseCidr } from './domain/ssrf.js'
import { DEFAULT_LEADER_LOCK } from './db/locks.js'

export interface Config {
  readonly server: {
    readonly hostname: string
    readonly port: number
    readonly logLevel: string
    readonly prettyLogs: boolean
    /** a request's headers and body must arrive within this; slower sockets are closed (408) */
    readonly requestTimeoutMs: number
    /** a GraphQL WebSocket without connection_init by then is closed (4408) */
    readonly wsInitTimeoutMs: number
  }
  readonly db: {
    /** null: start the embedded PostgreSQL under dataDir */
    readonly connectionString: string | null
    readonly dataDir: string
    readonly poolSize: number
    /** PostgreSQL cancels (and rolls back) any statement of ours past this; 0: never (migrations use 0) */
    readonly statementTimeoutMs: number
    readonly autoMigrate: boolean
  }
  readonly adminSecret: string | null
  /**
   * OpenTelemetry traces (lib/delivery/tracing.ts), from the OTEL_* variables the SDKs read; null when no
   * OTLP endpoint is set (or OTEL_SDK_DISABLED, or OTEL_TRACES_EXPORTER without otlp): nothing is loaded
   */
  readonly tracing: {
    /** where spans are POSTed (OTLP/HTTP, JSON) */
    readonly url: string
    /** sent with each export (an API key, say): never logged */
    readonly headers: Readonly<Record<string, string>>
    readonly serviceName: string
    /** spans wait at most this long before they are exported, in batches (OTEL_BSP_SCHEDULE_DELAY) */
    readonly exportDelayMs: number
  } | null
  readonly hooks: {
    /** advisory lock id the leader holds (pg-hooks: hooks.lock, default 42) */
    readonly lock: number
    /** how often a follower tries for the lock (pg-hooks: hooks.leaderPoll) */
    readonly leaderPollMs: number
    /** every process delivers, not only the leader: the way to scale out */
    readonly allProcessesDeliver: boolean
    readonly concurrency: number
    /** calls in flight at most for one queue; the rest of the slots stay for the other queues */
    readonly queueConcurrency: number
    readonly batchSize: number
    /**
     * bytes of claimed messages (bodies, headers and an estimate of each row's overhead) a process holds
     * at once, waiting for a slot or being sent; one queue at most half of them
     */
    readonly bufferBytes: number
    /** a claimed message is invisible to other workers this long; must exceed the longest queue timeout */
    readonly leaseMs: number
    /**
     * a process's claims go back once the leader has seen it without its worker lock this long (its LISTEN
     * may be reconnecting); claims younger than this are left alone too
     */
    readonly reapGraceMs: number
    /** backstop poll when no NOTIFY arrives */
    readonly pollMs: number
    readonly shutdownGraceMs: number
    /** turn the delivery engine off in this process (API-only nodes) */
    readonly enabled: boolean
    /**
     * SSRF policy (lib/domain/ssrf.ts): targets may be on private networks (loopback, RFC 1918, unique-
     * and site-local, CGNAT, benchmarking)
     */
    readonly allowPrivateNetworks: boolean
    /** CIDRs or addresses always allowed as targets, over every SSRF block */
    readonly ssrfAllow: readonly string[]
    /**
     * a publish of a type not in the catalogue (/event-types) is accepted (true, the default) or refused
     * with a 400 naming `type`
     */
    readonly acceptUnknownEventTypes: boolean
    /**
     * the leader deletes delivered messages and dead letters older than this many hours; 0: keep them.
     * Events go once they are older than deliveredHours and none of their messages is left
     */
    readonly retention: {
      readonly deliveredHours: number
      readonly deadHours: number
    }
  }
}

export class ConfigError extends Error {
  constructor (readonly setting: string, message: string) {
    super(`invalid config: ${setting}: ${message}`)
    this.name = 'ConfigError'
  }
}

type Env = Record<string, string | undefined>

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
// ten years: beyond that, 0 (keep forever) says it better
const RETENTION_MAX_HOURS = 87_600
// bounds of the worker's claim buffer, bytes: 64 KiB still holds dozens of ordinary messages
const BUFFER_BYTES_MIN = 64 * 1024
const BUFFER_BYTES_MAX = 64 * 1024 ** 3

export const DEFAULTS = {
  port: 3042,
  // a 1 MiB body at 35 KB/s still arrives; a client that trickles bytes to hold a socket does not
  requestTimeoutMs: 30_000,
  wsInitTimeoutMs: 10_000,
  hostname: '127.0.0.1',
  logLevel: 'info',
  dataDir: './data',
  poolSize: 10,
  // no statement of ours needs longer; past it the server cancels it, so a timed-out write is known not committed
  statementTimeoutMs: 30_000,
  lock: DEFAULT_LEADER_LOCK,
  leaderPollMs: 1000,
  // 64 in flight: undici reaches its ceiling on a 2-vCPU machine there (about 31,000 req/s to a loopback
  // receiver, against 19,000 at 16), and more calls in flight only add latency
  concurrency: 64,
  // claims of 100-500 amortise the commit; 200 keeps a claim well under a millisecond of lock time
  batchSize: 200,
  // 64 MiB: ordinary (1 KB) payloads never reach it; of the API's largest (1 MiB) bodies, 64 at once,
  // as many as the default concurrency, and a queue half of that
  bufferBytes: 64 * 1024 * 1024,
  // 30 s default timeout + slack: a lease shorter than the timeout would hand a live call to another worker
  leaseMs: 60_000,
  // a LISTEN connection reconnects within a few seconds; a dead process's claims come back after about
  // this long once the leader sees it gone (plus one reaper pass)
  reapGraceMs: 10_000,
  pollMs: 2000,
  shutdownGraceMs: 10_000,
  // a week of delivered history answers "did it arrive?"; dead letters wait a month for a redrive
  retentionDeliveredHours: 168,
  retentionDeadHours: 720
} as const

/**
 * hooks.queueConcurrency when not set: one queue may take all but an eighth of the slots, so a hot
 * queue runs nearly flat out and a slow one still leaves room for the others.
 */
export function defaultQueueConcurrency (concurrency: number): number {
  return Math.max(1, concurrency - Math.max(1, Math.floor(concurrency / 8)))
}

/** Replace {NAME} placeholders as Platformatic does; unknown names become ''. */
export function substitutePlaceholders (text: string, env: Env): string {
  return text.replace(/\{([A-Z_][A-Z0-9_]*)\}/g, (_, name: string) => {
    const value = env[name] ?? ''
    // the value lands inside a JSON string literal
    return JSON.stringify(value).slice(1, -1)
  })
}

function readEnvFile (cwd: string): Env {
  const path = resolve(cwd, '.env')
  if (!existsSync(path)) return {}
  return parseEnv(readFileSync(path, 'utf8'))
}

function readConfigFile (path: string, env: Env): Record<string, any> {
  if (!existsSync(path)) return {}
  const raw = substitutePlaceholders(readFileSync(path, 'utf8'), env)
  try {
    const parsed = JSON.parse(raw)
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new Error('not an object')
    }
    return parsed
  } catch (err) {
    throw new ConfigError(path, `cannot parse: ${(err as Error).message}`)
  }
}

function pick (...values: unknown[]): unknown {
  for (const v of values) {
    if (v !== undefined && v !== null && v !== '') return v
  }
  return undefined
}

function int (setting: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback
  const n = typeof value === 'number' ? value : Number(String(value).trim())
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(setting, `expected an integer between ${min} and ${max}, got ${JSON.stringify(value)}`)
  }
  return n
}

function bool (setting: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value === 'boolean') return value
  const s = String(value).trim().toLowerCase()
  if (['1', 'true', 'yes', 'on'].includes(s)) return true
  if (['0', 'false', 'no', 'off'].includes(s)) return false
  throw new ConfigError(setting, `expected true or false, got ${JSON.stringify(value)}`)
}

/** A comma-separated string (env) or an array (platformatic.json) of CIDRs or addresses. */
function cidrList (setting: string, value: unknown): string[] {
  if (value === undefined) return []
  const items = Array.isArray(value) ? value.map(String) : String(value).split(',')
  const out = items.map(s => s.trim()).filter(s => s !== '')
  for (const s of out) {
    if (parseCidr(s) === null) {
      throw new ConfigError(setting, `expected IP addresses or CIDRs (10.0.0.0/8, fd00::/8), got ${JSON.stringify(s)}`)
    }
  }
  return out
}

/** The OTEL_* variables, as the OpenTelemetry SDKs read them, for traces over OTLP/HTTP. */
function tracing (env: Env): Config['tracing'] {
  if (bool('OTEL_SDK_DISABLED', pick(env.OTEL_SDK_DISABLED), false)) return null
  const exporters = pick(env.OTEL_TRACES_EXPORTER)
  if (exporters !== undefined && !String(exporters).split(',').map(s => s.trim()).includes('otlp')) return null
  const signal = pick(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
  const base = pick(env.OTEL_EXPORTER_OTLP_ENDPOINT)
  if (signal === undefined && base === undefined) return null
  // the signal's own endpoint is used as it is; the general one gets the traces path appended
  const setting = signal !== undefined ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_ENDPOINT'
  const url = signal !== undefined ? String(signal) : `${String(base).replace(/\/+$/, '')}/v1/traces`
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new ConfigError(setting, 'not a valid URL')
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ConfigError(setting, `expected http:// or https://, got ${parsed.protocol}//`)
  }
  const headersSetting = pick(env.OTEL_EXPORTER_OTLP_TRACES_HEADERS) !== undefined
    ? 'OTEL_EXPORTER_OTLP_TRACES_HEADERS'
    : 'OTEL_EXPORTER_OTLP_HEADERS'
  const headers: Record<string, string> = {}
  for (const pair of String(pick(env[headersSetting]) ?? '').split(',')) {
    if (pair.trim() === '') continue
    const at = pair.indexOf('=')
    if (at <= 0) throw new ConfigError(headersSetting, 'expected key=value pairs separated by commas')
    try {
      headers[decodeURIComponent(pair.slice(0, at).trim())] = decodeURIComponent(pair.slice(at + 1).trim())
    } catch {
      throw new ConfigError(headersSetting, 'a key or value is not valid percent-encoding')
    }
  }
  return {
    url,
    headers,
    serviceName: String(pick(env.OTEL_SERVICE_NAME) ?? 'hookpost'),
    // the SDK's default, 5 s
    exportDelayMs: int('OTEL_BSP_SCHEDULE_DELAY', pick(env.OTEL_BSP_SCHEDULE_DELAY), 5000, 1, 600_000)
  }
}

function connectionString (value: unknown): string | null {
  if (value === undefined) return null
  const s = String(value)
  let url: URL
  try {
    url = new URL(s)
  } catch {
    throw new ConfigError('DATABASE_URL', 'not a valid URL')
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new ConfigError('DATABASE_URL', `expected postgres:// or postgresql://, got ${url.protocol}//`)
  }
  return s
}

export interface LoadOptions {
  env?: Env
  cwd?: string
  /** path of platformatic.json; default <cwd>/platformatic.json or $HOOKPOST_CONFIG */
  file?: string
}

export function loadConfig (opts: LoadOptions = {}): Config {
  const cwd = opts.cwd ?? process.cwd()
  // process env wins over .env, as with dotenv
  const env: Env = { ...readEnvFile(cwd), ...(opts.env ?? process.env) }
  const file = resolve(cwd, opts.file ?? env.HOOKPOST_CONFIG ?? 'platformatic.json')
  const json = readConfigFile(file, env)

  const server = json.server ?? {}
  const db = json.db ?? {}
  const hooks = json.hooks ?? {}
  const auth = json.authorization ?? {}

  const logLevel = String(pick(env.PLT_SERVER_LOGGER_LEVEL, env.LOG_LEVEL, server.logger?.level) ?? DEFAULTS.logLevel)
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError('PLT_SERVER_LOGGER_LEVEL',
      `expected one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`)
  }

  // PLT_SERVER_HOSTNAME is pg-hooks' name; HOSTNAME is accepted too, but Docker sets it to the
  // container id, so the Platformatic name takes precedence
  const hostname = String(pick(env.PLT_SERVER_HOSTNAME, server.hostname, env.HOSTNAME) ?? DEFAULTS.hostname)

  const adminSecret = pick(env.PLT_ADMIN_SECRET, auth.adminSecret)
  if (adminSecret !== undefined && String(adminSecret).length < 8) {
    throw new ConfigError('PLT_ADMIN_SECRET', 'must be at least 8 characters')
  }

  const concurrency = int('HOOKPOST_DELIVERY_CONCURRENCY',
    pick(env.HOOKPOST_DELIVERY_CONCURRENCY, hooks.concurrency), DEFAULTS.concurrency, 1, 10_000)
  const queueConcurrency = int('HOOKPOST_QUEUE_CONCURRENCY',
    pick(env.HOOKPOST_QUEUE_CONCURRENCY, hooks.queueConcurrency), defaultQueueConcurrency(concurrency), 1, 10_000)
  const leaderPollMs = int('HOOKPOST_LEADER_POLL_MS', pick(env.HOOKPOST_LEADER_POLL_MS, hooks.leaderPoll),
    DEFAULTS.leaderPollMs, 50, 600_000)
  const config: Config = {
    server: {
      hostname,
      port: int('PORT', pick(env.PORT, server.port), DEFAULTS.port, 0, 65535),
      logLevel,
      prettyLogs: bool('HOOKPOST_PRETTY_LOGS', pick(env.HOOKPOST_PRETTY_LOGS),
        env.NODE_ENV !== 'production' && process.stdout.isTTY === true),
      requestTimeoutMs: int('HOOKPOST_REQUEST_TIMEOUT_MS', pick(env.HOOKPOST_REQUEST_TIMEOUT_MS, server.requestTimeout),
        DEFAULTS.requestTimeoutMs, 1000, 600_000),
      wsInitTimeoutMs: int('HOOKPOST_WS_INIT_TIMEOUT_MS', pick(env.HOOKPOST_WS_INIT_TIMEOUT_MS),
        DEFAULTS.wsInitTimeoutMs, 100, 600_000)
    },
    db: {
      connectionString: connectionString(pick(env.DATABASE_URL, db.connectionString)),
      dataDir: resolve(cwd, String(pick(env.HOOKPOST_DATA_DIR, db.dataDir) ?? DEFAULTS.dataDir)),
      poolSize: int('HOOKPOST_DB_POOL_SIZE', pick(env.HOOKPOST_DB_POOL_SIZE, db.poolSize), DEFAULTS.poolSize, 2, 200),
      statementTimeoutMs: int('HOOKPOST_DB_STATEMENT_TIMEOUT_MS',
        pick(env.HOOKPOST_DB_STATEMENT_TIMEOUT_MS, db.statementTimeoutMs), DEFAULTS.statementTimeoutMs, 0, 3_600_000),
      autoMigrate: bool('HOOKPOST_AUTO_MIGRATE', pick(env.HOOKPOST_AUTO_MIGRATE, json.migrations?.autoApply), true)
    },
    adminSecret: adminSecret === undefined ? null : String(adminSecret),
    tracing: tracing(env),
    hooks: {
      lock: int('HOOKPOST_LEADER_LOCK', pick(env.HOOKPOST_LEADER_LOCK, hooks.lock),
        DEFAULTS.lock, -(2 ** 31), 2 ** 31 - 1),
      leaderPollMs,
      allProcessesDeliver: bool('HOOKPOST_ALL_PROCESSES_DELIVER',
        pick(env.HOOKPOST_ALL_PROCESSES_DELIVER, hooks.allProcessesDeliver), false),
      concurrency,
      queueConcurrency,
      batchSize: int('HOOKPOST_BATCH_SIZE', pick(env.HOOKPOST_BATCH_SIZE, hooks.batchSize),
        DEFAULTS.batchSize, 1, 5000),
      bufferBytes: int('HOOKPOST_DELIVERY_BUFFER_BYTES', pick(env.HOOKPOST_DELIVERY_BUFFER_BYTES, hooks.bufferBytes),
        DEFAULTS.bufferBytes, BUFFER_BYTES_MIN, BUFFER_BYTES_MAX),
      leaseMs: int('HOOKPOST_LEASE_MS', pick(env.HOOKPOST_LEASE_MS, hooks.leaseMs), DEFAULTS.leaseMs, 1000, 3_600_000),
      reapGraceMs: int('HOOKPOST_REAP_GRACE_MS', pick(env.HOOKPOST_REAP_GRACE_MS, hooks.reapGraceMs),
        DEFAULTS.reapGraceMs, 1000, 600_000),
      pollMs: int('HOOKPOST_POLL_MS', pick(env.HOOKPOST_POLL_MS, hooks.pollMs), DEFAULTS.pollMs, 10, 600_000),
      shutdownGraceMs: int('HOOKPOST_SHUTDOWN_GRACE_MS', pick(env.HOOKPOST_SHUTDOWN_GRACE_MS, hooks.shutdownGrace),
        DEFAULTS.shutdownGraceMs, 0, 600_000),
      enabled: bool('HOOKPOST_DELIVERY', pick(env.HOOKPOST_DELIVERY, hooks.enabled), true),
      // on outside production so the tutorial's receiver on 127.0.0.1 works; off in production, where a
      // target inside the network is an SSRF hole unless listed in HOOKPOST_SSRF_ALLOW
      allowPrivateNetworks: bool('HOOKPOST_ALLOW_PRIVATE_NETWORKS',
        pick(env.HOOKPOST_ALLOW_PRIVATE_NETWORKS, hooks.allowPrivateNetworks), env.NODE_ENV !== 'production'),
      ssrfAllow: cidrList('HOOKPOST_SSRF_ALLOW', pick(env.HOOKPOST_SSRF_ALLOW, hooks.ssrfAllow)),
      acceptUnknownEventTypes: bool('HOOKPOST_ACCEPT_UNKNOWN_EVENT_TYPES',
        pick(env.HOOKPOST_ACCEPT_UNKNOWN_EVENT_TYPES, hooks.acceptUnknownEventTypes), true),
      retention: {
        deliveredHours: int('HOOKPOST_RETENTION_DELIVERED_HOURS',
          pick(env.HOOKPOST_RETENTION_DELIVERED_HOURS, hooks.retention?.deliveredHours),
          DEFAULTS.retentionDeliveredHours, 0, RETENTION_MAX_HOURS),
        deadHours: int('HOOKPOST_RETENTION_DEAD_HOURS',
          pick(env.HOOKPOST_RETENTION_DEAD_HOURS, hooks.retention?.deadHours),
          DEFAULTS.retentionDeadHours, 0, RETENTION_MAX_HOURS)
      }
    }
  }
  return deepFreeze(config)
}

/** Build a Config from parts, for tests and embedding: defaults fill the rest. */
export function makeConfig (over: {
  server?: Partial<Config['server']>
  db?: Partial<Config['db']>
  adminSecret?: string | null
  tracing?: Config['tracing']
  hooks?: Partial<Config['hooks']>
} = {}): Config {
  const base = loadConfig({ env: {}, cwd: '/nonexistent-hookpost-dir' })
  return deepFreeze({
    server: { ...base.server, prettyLogs: false, logLevel: 'silent', ...over.server },
    db: { ...base.db, ...over.db },
    adminSecret: over.adminSecret ?? null,
    tracing: over.tracing ?? null,
    hooks: {
      ...base.hooks,
      ...(over.hooks?.concurrency !== undefined
        ? { queueConcurrency: defaultQueueConcurrency(over.hooks.concurrency) }
        : {}),
      ...over.hooks
    }
  })
}

function deepFreeze<T> (o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v)
    Object.freeze(o)
  }
  return o
}

/** The same config with the embedded server's URL filled in. */
export function withConnectionString (config: Config, connectionString: string): Config {
  return deepFreeze({ ...config, db: { ...config.db, connectionString } })
}
