import pg from 'pg'
import type { Logger } from 'pino'
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
/** no statement of ours needs longer; a hung connection must fail, not stall a loop or a request */
export const QUERY_TIMEOUT_MS = 30_000

export function createPool (connectionString: string, opts: { max: number, log: Logger, name?: string, options?: string }): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max: opts.max,
    types: types as any,
    application_name: opts.name ?? 'hookpost',
    options: `${SERVER_KEEPALIVES}${opts.options !== undefined ? ' ' + opts.options : ''}`,
    keepAlive: true,
    query_timeout: QUERY_TIMEOUT_MS,
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
  try {
    await client.query('BEGIN')
    const out = await fn(client)
    await client.query('COMMIT')
    return out
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    client.removeListener('error', ignore)
    client.release()
  }
}
