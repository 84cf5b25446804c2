// The one way the store's statements reach PostgreSQL. read() and write() run a statement and turn its
// failure into a catalogue error (lib/db/translate.ts), the pg error kept as `cause`: the transports
// above only format what comes out. A write that breaks mid-statement is "outcome unknown"; a read, only
// "unavailable".
import type pg from 'pg'
import { withTransaction, type Queryable } from './pool.js'
import { translateDbError } from './translate.js'

/**
 * SQL with $n parameters. A name makes pg prepare it once per connection (for hot statements). params
 * names the API field each $n carries, so that a value PostgreSQL refuses is a 400 naming the field.
 */
export interface Statement { text: string, values: unknown[], name?: string, params?: readonly string[] }

type Row = pg.QueryResultRow

async function run<R extends Row> (db: Queryable, s: Statement, write: boolean): Promise<pg.QueryResult<R>> {
  try {
    return await db.query<R>(s)
  } catch (err) {
    throw translateDbError(err, { write, params: s.params })
  }
}

function statement (text: string | Statement, values: unknown[]): Statement {
  return typeof text === 'string' ? { text, values } : text
}

/** A statement that changes nothing. */
export async function read<R extends Row = any> (db: Queryable, text: string | Statement, values: unknown[] = []):
Promise<pg.QueryResult<R>> {
  return await run<R>(db, statement(text, values), false)
}

/** A statement that may change rows. */
export async function write<R extends Row = any> (db: Queryable, text: string | Statement, values: unknown[] = []):
Promise<pg.QueryResult<R>> {
  return await run<R>(db, statement(text, values), true)
}

/** fn in one transaction; its statements go through read()/write(), and a failed BEGIN or COMMIT is a write's. */
export async function transaction<T> (pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  try {
    return await withTransaction(pool, fn)
  } catch (err) {
    throw translateDbError(err, { write: true })
  }
}
