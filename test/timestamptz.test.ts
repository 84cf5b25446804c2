// lib/db/timestamptz.ts against pg's own parser, on text PostgreSQL itself wrote.
import pg from 'pg'
import t from 'tap'
import { parseTimestamptz } from '../lib/db/timestamptz.js'
import { testDatabase } from './helpers.js'

const pgParse = pg.types.getTypeParser(1184, 'text') as (text: string) => Date | number

const same = (a: Date | number, b: Date | number): boolean =>
  (a instanceof Date ? a.getTime() : a) === (b instanceof Date ? b.getTime() : b) ||
  (Number.isNaN(a instanceof Date ? a.getTime() : a) && Number.isNaN(b instanceof Date ? b.getTime() : b))

t.test('the same instant as pg reads, for every form PostgreSQL writes', async (t) => {
  const url = await testDatabase(t, { migrated: false })
  // a raw client: the text as PostgreSQL wrote it, nothing parsed
  const c = new pg.Client({ connectionString: url, types: { getTypeParser: () => (v: string) => v } as any })
  await c.connect()
  t.teardown(async () => await c.end())

  // offsets of whole hours, half and quarter hours, negative ones, and local mean time (+hh:mm:ss)
  const zones = ['UTC', 'Asia/Kolkata', 'America/St_Johns', 'Pacific/Chatham', 'America/Los_Angeles', 'Europe/Amsterdam', 'Africa/Monrovia']
  const fixed = ['2026-11-23 20:38:05.429123', '2026-11-23 20:38:05', '2026-11-23 20:38:05.1', '2026-11-23 20:38:05.999999',
    '1970-01-01 00:00:00', '1969-12-31 23:59:59.999', '1900-01-01 00:00:00', '1887-06-30 12:00:00.5', '0100-03-01 00:00:00',
    '0099-12-31 23:59:59', '0001-01-01 00:00:00', '9999-12-31 23:59:59.999999', '2024-02-29 12:00:00', '2026-03-29 02:30:00',
    '2026-10-25 02:30:00', 'infinity', '-infinity', '0044-03-15 12:00:00 BC', '12345-06-07 08:09:10']
  let checked = 0
  for (const zone of zones) {
    await c.query(`SET TIME ZONE '${zone}'`)
    const { rows } = await c.query<{ v: string }>(`
      SELECT v::timestamptz::text AS v FROM unnest($1::text[]) AS v
      UNION ALL
      -- random instants, microseconds included, over three millennia
      SELECT (timestamptz '1000-01-01 00:00:00+00' + random() * interval '3000 years')::text FROM generate_series(1, 400)`, [fixed])
    for (const { v } of rows) {
      const ours = parseTimestamptz(v)
      const theirs = pgParse(v)
      if (!same(ours, theirs)) t.fail(`${zone}: ${v} -> ${String(ours)} but pg reads ${String(theirs)}`)
      checked++
    }
  }
  t.equal(checked, zones.length * (fixed.length + 400), `${checked} values, all read as pg reads them`)
  t.equal(parseTimestamptz('2026-11-23 20:38:05.429123+00').toISOString(), '2026-11-23T20:38:05.429Z', 'microseconds truncated, not rounded')
  t.equal(parseTimestamptz('2026-11-23 20:38:05.4+05:30').toISOString(), '2026-11-23T15:08:05.400Z')
  t.equal(parseTimestamptz('2026-11-23 20:38:05-03:30').toISOString(), '2026-11-24T00:08:05.000Z')
  t.equal(parseTimestamptz('1900-01-01 00:00:00+00:19:32').toISOString(), '1899-12-31T23:40:28.000Z')
})
