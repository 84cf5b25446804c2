// `hookpost import-pg-hooks`: moves a @platformatic/pg-hooks database into hookpost's schema, in the
// same database. pg-hooks keeps queues, messages and crons in a schema of their own (public, by
// default), with SERIAL ids, TIMESTAMP without time zone and JSON headers. Everything is copied in one
// transaction, ids kept and the sequences moved past them, so links, logs and scripts that name an id
// stay true. Pending messages fall due as they were; crons go on from their schedule; a failed message
// is dead here, with its dead letter. Run twice, it does nothing the second time; it refuses an import
// whose ids are already taken by other rows. The pg-hooks tables are read, never changed.
import type { Pool, PoolClient } from 'pg'
import { CHANNELS, notify } from '../db/channels.js'
import { headersProblem } from '../domain/headers.js'
import { isValidTimezone, nextTick, validateSchedule } from '../domain/schedule.js'

export interface ImportOptions {
  /** the schema pg-hooks' tables are in */
  schema: string
  /** the time zone pg-hooks' TIMESTAMP values were written in, and its crons ran in */
  timezone: string
  /** for the crons' next tick */
  now?: Date
}

export interface ImportResult {
  /** already: every row was imported before, so nothing was done */
  status: 'imported' | 'already'
  queues: number
  messages: number
  crons: number
  /** pending messages among them: due as they were */
  pending: number
  /** failed ones: dead here, each with a dead letter */
  dead: number
}

export class ImportError extends Error {}

const IDENT = /^[a-z_][a-z0-9_]*$/

// jsonb from pg-hooks' json headers: an object as is; a JSON text of an object (pg-hooks accepts a
// string literal for its JSON scalar) parsed; anything else (null, a number) as no headers
const headersSql = (col: string): string => `CASE
  WHEN jsonb_typeof(${col}::jsonb) = 'object' THEN ${col}::jsonb
  WHEN jsonb_typeof(${col}::jsonb) = 'string' AND (${col}::jsonb #>> '{}') ~ '^\\s*\\{'
    THEN (${col}::jsonb #>> '{}')::jsonb
  ELSE '{}'::jsonb END`

export async function importPgHooks (pool: Pool, o: ImportOptions): Promise<ImportResult> {
  if (!IDENT.test(o.schema)) throw new ImportError(`--schema: not a plain schema name: ${o.schema}`)
  if (!isValidTimezone(o.timezone)) throw new ImportError(`--timezone: unknown time zone ${o.timezone}`)
  const src = (table: string): string => `"${o.schema}"."${table}"`
  const client = await pool.connect()
  // see withTransaction: a lost connection must fail the next query, not crash the process
  const ignore = (): void => {}
  client.on('error', ignore)
  try {
    await client.query('BEGIN')
    // hookpost may be running: its writes to these tables wait for the import, and nobody sees half of it
    await client.query('LOCK TABLE hookpost.queues, hookpost.crons, hookpost.messages IN SHARE ROW EXCLUSIVE MODE')
    await requireTables(client, o.schema)
    const state = await collisions(client, src)
    if (state === 'already') {
      const counts = await sourceCounts(client, src)
      await client.query('ROLLBACK')
      return { status: 'already', ...counts }
    }
    if (state !== 'none') throw new ImportError(state)

    const queues = (await client.query(`INSERT INTO hookpost.queues
        (id, name, callback_url, method, headers, max_retries, dead_letter_queue_id, created_at, updated_at)
      SELECT id, name, callback_url, upper(coalesce(method, 'POST')), ${headersSql('headers')},
        least(100, greatest(0, coalesce(max_retries, 5))), dead_letter_queue_id,
        coalesce(created_at AT TIME ZONE $1, now()), coalesce(updated_at AT TIME ZONE $1, now())
      FROM ${src('queues')}`, [o.timezone])).rowCount ?? 0

    const crons = await client.query<{ id: number, schedule: string }>(`SELECT id, schedule FROM ${src('crons')}`)
    const now = o.now ?? new Date()
    const next: string[] = []
    for (const c of crons.rows) {
      try {
        validateSchedule(c.schedule, o.timezone)
      } catch (err) {
        throw new ImportError(`cron ${c.id}: ${(err as Error).message}`)
      }
      next.push(nextTick(c.schedule, o.timezone, now).toISOString())
    }
    await client.query(`INSERT INTO hookpost.crons
        (id, queue_id, schedule, timezone, body, headers, next_tick_at, created_at, updated_at)
      SELECT c.id, c.queue_id, c.schedule, $1, c.body, ${headersSql('c.headers')}, n.next_tick_at,
        coalesce(c.created_at AT TIME ZONE $1, now()), coalesce(c.updated_at AT TIME ZONE $1, now())
      FROM ${src('crons')} c JOIN unnest($2::bigint[], $3::timestamptz[]) AS n(id, next_tick_at) ON n.id = c.id`,
    [o.timezone, crons.rows.map(c => c.id), next])

    const messages = await client.query<{ pending: boolean, failed: boolean }>(`INSERT INTO hookpost.messages
        (id, queue_id, body, headers, "when", sent_at, failed, retries, attempts, last_error, cron_id, created_at,
         updated_at)
      SELECT id, queue_id, body, ${headersSql('headers')},
        coalesce("when" AT TIME ZONE $1, created_at AT TIME ZONE $1, now()),
        sent_at AT TIME ZONE $1, coalesce(failed, false), coalesce(retries, 0),
        coalesce(retries, 0) + CASE WHEN sent_at IS NOT NULL THEN 1 ELSE 0 END,
        CASE WHEN failed THEN 'failed in pg-hooks before the import' END, cron_id,
        coalesce(created_at AT TIME ZONE $1, now()), coalesce(updated_at AT TIME ZONE $1, now())
      FROM ${src('messages')}
      RETURNING sent_at IS NULL AND NOT failed AS pending, failed`, [o.timezone])
    // rows that never passed the API: their headers are held to its rules, or the import refused
    for (const table of ['queues', 'crons', 'messages']) {
      const { rows } = await client.query<{ id: string, headers: Record<string, unknown> }>(
        `SELECT h.id, h.headers FROM hookpost.${table} h JOIN ${src(table)} s ON s.id = h.id WHERE h.headers <> '{}'`)
      for (const r of rows) {
        const problem = headersProblem(r.headers)
        if (problem !== undefined) {
          throw new ImportError(`${table.slice(0, -1)} ${r.id}: headers: ${problem}; fix it in pg-hooks' table first`)
        }
      }
    }
    // a dead message has a dead letter here: redrive and retention find it by that
    await client.query(`INSERT INTO hookpost.dead_letters (message_id, queue_id, attempts, last_error, created_at)
      SELECT m.id, m.queue_id, m.attempts, m.last_error, m.updated_at
      FROM hookpost.messages m JOIN ${src('messages')} s ON s.id = m.id WHERE m.failed`)

    // ids made here from now on follow the imported ones, and never go back: ids hookpost gave rows
    // since deleted were seen by receivers (attack round: a sequence set to max(id) reused them)
    for (const table of ['queues', 'crons', 'messages']) {
      const seq = (await client.query<{ seq: string }>(
        `SELECT pg_get_serial_sequence('hookpost.${table}', 'id') AS seq`)).rows[0]!.seq
      // seq is the sequence's name as PostgreSQL quotes it
      const { rows: [s] } = await client.query<{ last: string, called: boolean }>(
        `SELECT last_value AS last, is_called AS called FROM ${seq}`)
      const top = (await client.query<{ top: string | null }>(
        `SELECT max(id) AS top FROM hookpost.${table}`)).rows[0]!.top
      const used = s!.called ? BigInt(s!.last) : 0n
      if (top !== null && BigInt(top) > used) await client.query('SELECT setval($1, $2, true)', [seq, top])
    }
    await client.query(notify(CHANNELS.messages))
    await client.query(notify(CHANNELS.crons))
    await client.query('COMMIT')
    return {
      status: 'imported',
      queues,
      messages: messages.rowCount ?? 0,
      crons: crons.rows.length,
      pending: messages.rows.filter(m => m.pending).length,
      dead: messages.rows.filter(m => m.failed).length
    }
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    // a row PostgreSQL refuses (a constraint of hookpost's schema pg-hooks did not have): said with its row
    const e = err as { code?: string, table?: string, detail?: string, message?: string }
    if (!(err instanceof ImportError) && typeof e.code === 'string' && /^2[23]/.test(e.code)) {
      const detail = e.detail !== undefined ? ` (${e.detail})` : ''
      throw new ImportError(`${e.table ?? 'a row'}: ${e.message ?? ''}${detail}; fix it in pg-hooks' table first`)
    }
    throw err
  } finally {
    client.removeListener('error', ignore)
    client.release()
  }
}

async function requireTables (client: PoolClient, schema: string): Promise<void> {
  const { rows } = await client.query<{ table_name: string }>(`SELECT table_name FROM information_schema.tables
    WHERE table_schema = $1 AND table_name IN ('queues', 'messages', 'crons')`, [schema])
  const found = new Set(rows.map(r => r.table_name))
  const missing = ['queues', 'messages', 'crons'].filter(t => !found.has(t))
  if (missing.length > 0) {
    throw new ImportError(`no pg-hooks tables in schema ${schema}: ${missing.join(', ')} missing (--schema names it)`)
  }
}

/**
 * 'none': no id of the source is taken here; 'already': every source row is here, as imported; else
 * what collides, as the refusal says it.
 */
async function collisions (client: PoolClient, src: (t: string) => string): Promise<string> {
  const { rows: [r] } = await client.query<Record<string, number>>(`SELECT
      (SELECT count(*) FROM ${src('queues')})::int AS queues,
      (SELECT count(*) FROM ${src('queues')} s JOIN hookpost.queues h ON h.id = s.id)::int AS queues_taken,
      (SELECT count(*) FROM ${src('queues')} s JOIN hookpost.queues h ON h.id = s.id
        AND h.name = s.name AND h.callback_url = s.callback_url)::int AS queues_same,
      (SELECT count(*) FROM ${src('crons')})::int AS crons,
      (SELECT count(*) FROM ${src('crons')} s JOIN hookpost.crons h ON h.id = s.id)::int AS crons_taken,
      (SELECT count(*) FROM ${src('crons')} s JOIN hookpost.crons h ON h.id = s.id
        AND h.queue_id = s.queue_id AND h.schedule = s.schedule)::int AS crons_same,
      (SELECT count(*) FROM ${src('messages')})::int AS messages,
      (SELECT count(*) FROM ${src('messages')} s JOIN hookpost.messages h ON h.id = s.id)::int AS messages_taken,
      (SELECT count(*) FROM ${src('messages')} s JOIN hookpost.messages h ON h.id = s.id
        AND h.queue_id = s.queue_id AND h.body IS NOT DISTINCT FROM s.body)::int AS messages_same`)
  const tables = ['queues', 'crons', 'messages'] as const
  if (tables.every(t => r![`${t}_taken`] === 0)) return 'none'
  const total = tables.reduce((n, t) => n + r![t]!, 0)
  if (total > 0 && tables.every(t => r![`${t}_same`] === r![t])) return 'already'
  return 'refused: ids of the pg-hooks tables are already taken in hookpost by other rows (' +
    tables.map(t => `${t} ${r![`${t}_taken`]} of ${r![t]}`).join(', ') +
    '); import into a hookpost schema that does not hold them'
}

async function sourceCounts (client: PoolClient, src: (t: string) => string):
Promise<Omit<ImportResult, 'status'>> {
  const { rows: [r] } = await client.query<Omit<ImportResult, 'status'>>(`SELECT
      (SELECT count(*) FROM ${src('queues')})::int AS queues,
      (SELECT count(*) FROM ${src('messages')})::int AS messages,
      (SELECT count(*) FROM ${src('crons')})::int AS crons,
      (SELECT count(*) FROM ${src('messages')} WHERE sent_at IS NULL AND NOT coalesce(failed, false))::int AS pending,
      (SELECT count(*) FROM ${src('messages')} WHERE failed)::int AS dead`)
  return r!
}
