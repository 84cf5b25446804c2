// The hot paths' own array parameter encoding (lib/db/arrays.ts), read back by PostgreSQL.
import t from 'tap'
import { arrayLiteral } from '../lib/db/arrays.js'
import { testDatabase, testPool } from './helpers.js'

t.test('arrayLiteral: PostgreSQL reads back exactly what was given', async (t) => {
  const pool = testPool(t, await testDatabase(t, { migrated: false }))
  const texts = ['', 'plain', 'NULL', 'null', 'a,b', '{x}', 'say "hi"', 'back\\slash', '\\"', '"', '\\', ' lead and trail ',
    'tab\tnew\nline\r', 'é中文😀', "it's", '{"json": [1, "two"]}', null, 'x'.repeat(5000)]
  const { rows: [text] } = await pool.query('SELECT $1::text[] AS v', [arrayLiteral(texts)])
  t.same(text.v, texts, 'text, with quotes, backslashes, separators, braces, NULL-like words and nulls')

  const numbers = [0, 1, -1, 2147483647, 9007199254740991, null, 1732390000123.5]
  const { rows: [num] } = await pool.query('SELECT $1::float8[] AS v', [arrayLiteral(numbers)])
  t.same(num.v, numbers, 'numbers and nulls')

  const { rows: [big] } = await pool.query('SELECT $1::bigint[]::text[] AS v', [arrayLiteral([1, 9007199254740991])])
  t.same(big.v, ['1', '9007199254740991'], 'bigint ids')

  const { rows: [bools] } = await pool.query('SELECT $1::boolean[] AS v', [arrayLiteral([true, false, null])])
  t.same(bools.v, [true, false, null], 'booleans')

  const { rows: [empty] } = await pool.query('SELECT cardinality($1::text[]) AS n', [arrayLiteral([])])
  t.equal(empty.n, 0, 'an empty array')

  t.throws(() => arrayLiteral([Number.NaN]), /not a finite number/, 'NaN is refused, not sent as text PostgreSQL would misread')
  t.throws(() => arrayLiteral([Infinity]), /not a finite number/)
})
