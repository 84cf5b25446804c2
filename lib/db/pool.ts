import pg from 'pg'
import type { Logger } from 'pino'
import { errors, translatePgError } from '../errors.js'
import { parseTimestamptz } from './timestamptz.js'

// bigint ids and counts come back as strings by default; ours stay far below 2^53.
// timestamptz (1184) through our own parser: same Dates, a fraction of the CPU
const types = {
  getTypeParser (oid: number, format?: any) {
    if (oid === 20) return (v: string) => Number(v)
    if (oid === 1184 && format !== 'binary') return parseTimestamptz
    return pg.types.getTypeParser(oid, format)
  }
}

/**
 * Server-side TCP keepalives: when a client host dies without a FIN, the server notices within ~20 s
 * and ends the session, releasing its advisory locks (the leader's, a worker's), instead of in ~2 h.
 */
export const SERVER_KEEPALIVES = '-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=3 -c tcp_keepalives_count=3'
/**
 * The client's backstop, for a server or network that stopped answering at all. When it fires the
 * statement may still commit later, so it must come after the server's own timeout would have.
 */
export const QUERY_TIMEOUT_MARGIN_MS = 10_000

/** A positive ?statement_timeout= (ms) in the connection string: pg sends it in place of ours. */
function statementTimeoutOf (connectionString: string): number | undefined {
  try {
    const ms = Number(new URL(connectionString).searchParams.get('statement_timeout') ?? NaN)
    return Number.isInteger(ms) && ms > 0 ? ms : undefined
  } catch {
    return undefined
  }
}

/**
 * statementTimeoutMs (config db.statementTimeoutMs) is sent at connect: PostgreSQL itself cancels a
 * statement past it and rolls it back, so a timed-out write is known not to be committed. A connection
 * string's own ?statement_timeout= (ms) wins: pg reads it from the URL. 0 turns both timeouts off.
 */
export function createPool (connectionString: string, opts: { max: number, log: Logger, statementTimeoutMs: number, name?: string, options?: string }): pg.Pool {
  // the backstop follows whichever timeout the server will apply
  const statementTimeoutMs = statementTimeoutOf(connectionString) ?? opts.statementTimeoutMs
  const pool = new pg.Pool({
    connectionString,
    max: opts.max,
    types: types as any,
    application_name: opts.name ?? 'hookpost',
    options: `${SERVER_KEEPALIVES}${opts.options !== undefined ? ' ' + opts.options : ''}`,
    keepAlive: true,
    statement_timeout: statementTimeoutMs,
    query_timeout: statementTimeoutMs === 0 ? undefined : statementTimeoutMs + QUERY_TIMEOUT_MARGIN_MS,
    // a dead server must fail a request, not hang it
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000
  })
  // an idle client losing its connection (server restart) must not crash the process
  pool.on('error', (err) => opts.log.warn({ err: { message: err.message, code: (err as any).code } }, 'idle database connection lost'))
  return pool
}

/** Connection string with the password masked, for logs. */
export function redactUrl (url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    if (u.searchParams.has('password')) u.searchParams.set('password', '***')
    return u.toString()
  } catch {
    return '<unparseable url>'
  }
}

/** A pool or a client inside a transaction: what the store's statements need. */
export type Queryable = Pick<pg.Pool, 'query'>

/** Run fn inside a transaction on one client. */
export async function withTransaction<T> (pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect()
  // a connection lost between two statements emits 'error' on the checked-out client, which the pool
  // does not listen to then: unheard, it would crash the process. The next query fails and says so.
  const ignore = (): void => {}
  client.on('error', ignore)
  let broken: unknown
  try {
    await client.query('BEGIN')
    const out = await fn(client)
    await client.query('COMMIT')
    return out
  } catch (err) {
    // after a client timeout the server may still be running the statement: a ROLLBACK would queue
    // behind it, and the connection must not go back to the pool. Closing it ends the transaction.
    // (a store's translated error keeps the pg error as its cause)
    if (dbFailure((err as { cause?: unknown } | null)?.cause ?? err) === 'unknown') broken = err
    else await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    client.removeListener('error', ignore)
    client.release(broken as Error | undefined)
  }
}

/**
 * What a failed statement tells about what it wrote:
 *  - 'canceled': PostgreSQL canceled it (its statement_timeout, or an operator) and rolled it back;
 *  - 'refused': any other error PostgreSQL answered while the session lived: rolled back too;
 *  - 'not-sent': no connection was made, so nothing reached the server;
 *  - 'unknown': the connection broke, or the client stopped waiting, while it ran: it may still commit;
 *  - null: not a database failure at all (a bug, or our own validation).
 */
export type DbFailure = 'canceled' | 'refused' | 'not-sent' | 'unknown' | null

// sent only while a session is being set up: too many connections, starting up, auth, no such database
const REFUSED_AT_CONNECT = new Set(['08001', '08004', '28000', '28P01', '3D000', '53300', '57P03'])
const QUERY_CANCELED = '57014'

export function dbFailure (err: unknown): DbFailure {
  const e = err as { code?: unknown, message?: unknown, severity?: unknown } | null
  if (e === null || typeof e !== 'object') return null
  const code = String(e.code ?? '')
  // an ErrorResponse from the server: it alone carries a severity (localized, so only a hint here)
  if (typeof e.severity === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
    if (code === QUERY_CANCELED) return 'canceled'
    if (REFUSED_AT_CONNECT.has(code)) return 'not-sent'
    // the session ended (shutdown, crash, lost link) or failed inside: that may have come after the commit
    if (['08', '57', 'XX'].includes(code.slice(0, 2)) || e.severity === 'FATAL' || e.severity === 'PANIC') return 'unknown'
    return 'refused'
  }
  const message = String(e.message ?? '')
  if (['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN'].includes(code) ||
    /timeout exceeded when trying to connect|terminated due to connection timeout|is not queryable|after calling end on the pool/i.test(message)) return 'not-sent'
  if (['ECONNRESET', 'EPIPE', 'ETIMEDOUT'].includes(code) || /^Query read timeout$|Connection terminated/i.test(message)) return 'unknown'
  return null
}

/**
 * A database error as the API says it: translatePgError (SQLSTATE to a 4xx), plus what a failed
 * statement left behind. Canceled: 503 HOOKPOST_ERR_DB_TIMEOUT, nothing written. Broken mid-statement:
 * for a write, 503 HOOKPOST_ERR_OUTCOME_UNKNOWN (it may have committed); for a read, 503 unavailable.
 */
export function translateDbError (err: unknown, opts: { write: boolean }): unknown {
  if ((err as { statusCode?: unknown } | null)?.statusCode !== undefined) return err
  const reason = String((err as { code?: unknown, message?: unknown } | null)?.message ?? '')
  let out: Error
  switch (dbFailure(err)) {
    case 'canceled': out = new errors.DbTimeout(); break
    case 'unknown': out = opts.write ? new errors.OutcomeUnknown(reason) : new errors.Unavailable(reason); break
    case 'not-sent': out = new errors.Unavailable(reason); break
    default: return translatePgError(err)
  }
  return Object.assign(out, { cause: err })
}
