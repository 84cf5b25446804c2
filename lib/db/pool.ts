import pg from 'pg'
import type { BaseLogger } from 'pino'
import { dbFailure } from './translate.js'
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
export function createPool (connectionString: string, opts: {
  max: number, log: Pick<BaseLogger, 'warn'>, statementTimeoutMs: number, name?: string, options?: string
}): pg.Pool {
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
  pool.on('error', (err) =>
    opts.log.warn({ err: { message: err.message, code: (err as any).code } }, 'idle database connection lost'))
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
