// Writing a row from an API input: the fields a client may write mapped to their columns, in one
// INSERT or UPDATE whose parameters are named after the fields, so a value PostgreSQL refuses is a 400
// that names the field (lib/db/translate.ts). Shared by the stores whose rows are written as given.
import type { QueryResultRow } from 'pg'
import type { Queryable } from '../db/pool.js'
import { write } from '../db/query.js'
import type { Entity } from './list.js'

/** A resource's writable fields: API field -> column, and which columns take JSON (sent as its text). */
export interface Writable {
  columns: Readonly<Record<string, string>>
  /** fields whose value is JSON: sent as JSON text so jsonb is exact; null stays SQL NULL */
  json: ReadonlySet<string>
}

function columnsOf (w: Writable, input: object): { cols: string[], values: unknown[], fields: string[] } {
  const cols: string[] = []
  const values: unknown[] = []
  const fields: string[] = []
  for (const [field, col] of Object.entries(w.columns)) {
    const v = (input as Record<string, unknown>)[field]
    if (v === undefined) continue
    cols.push(col)
    fields.push(field)
    values.push(w.json.has(field) && v !== null ? JSON.stringify(v) : v)
  }
  return { cols, values, fields }
}

/** INSERT the given fields; the row as the entity selects it. */
export async function insertRow<T extends QueryResultRow> (db: Queryable, entity: Entity, w: Writable,
  input: object): Promise<T> {
  const { cols, values, fields } = columnsOf(w, input)
  const { rows } = await write<T>(db, {
    text: `INSERT INTO ${entity.table} (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})
      RETURNING ${entity.select}`,
    values,
    params: fields
  })
  return rows[0]!
}

/**
 * UPDATE the given fields (and updated_at) of row id; undefined when there is no such row. `then`: more
 * data-modifying CTEs of the same statement (so, atomic with it), which see the updated row as `row`.
 */
export async function updateRow<T extends QueryResultRow> (db: Queryable, entity: Entity, w: Writable, id: number,
  input: object, then = ''): Promise<T | undefined> {
  const { cols, values, fields } = columnsOf(w, input)
  const sets = [...cols.map((c, i) => `${c} = $${i + 2}`), 'updated_at = now()']
  const { rows } = await write<T>(db, {
    text: `WITH row AS (UPDATE ${entity.table} SET ${sets.join(', ')} WHERE id = $1 RETURNING ${entity.select})
      ${then} SELECT * FROM row`,
    values: [id, ...values],
    params: ['id', ...fields]
  })
  return rows[0]
}
