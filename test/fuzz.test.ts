// Fuzz: 2,500 malformed or random requests against every REST route, generated from a seeded PRNG.
// Every request is built to be rejected (each carries at least one "poison": a value that is invalid
// whatever the rest of the request holds), so the assertions are exact:
//   - no response is a 5xx, and none is a 2xx/3xx;
//   - every rejection is a JSON body with statusCode, code and a non-empty message;
//   - the rows of hookpost.queues, hookpost.messages and hookpost.crons are byte-for-byte unchanged.
// Replay another sequence with FUZZ_SEED=<n>.
import t from 'tap'
import type { InjectOptions } from 'fastify'
import { FILTER_OPS, filterableFields, sortableFields, type Entity, type FieldType } from '../lib/store/list.js'
import { cronEntity } from '../lib/store/crons.js'
import { messageEntity } from '../lib/store/messages.js'
import { queueEntity } from '../lib/store/queues.js'
import { testApp, testPool } from './helpers.js'

const SEED = process.env.FUZZ_SEED !== undefined && process.env.FUZZ_SEED !== '' ? Number(process.env.FUZZ_SEED) >>> 0 : 0x5eedf00d
const PER_ROUTE = 100

// ---------------------------------------------------------------------------------------------
// PRNG (mulberry32) and the helpers on top of it

class Rng {
  private a: number
  constructor (seed: number) { this.a = seed >>> 0 }
  next (): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0
    let x = this.a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }

  int (n: number): number { return Math.floor(this.next() * n) }
  chance (p: number): boolean { return this.next() < p }
  pick<T> (arr: readonly T[]): T { return arr[this.int(arr.length)]! }
  /** up to n distinct elements */
  some<T> (arr: readonly T[], n: number): T[] {
    const copy = [...arr]
    const out: T[] = []
    for (let i = 0; i < n && copy.length > 0; i++) out.push(copy.splice(this.int(copy.length), 1)[0]!)
    return out
  }
}

const rng = new Rng(SEED)

/** JSON text spliced in verbatim where JSON.stringify cannot produce it (1e400, 100k-deep nesting). */
class Raw { constructor (readonly text: string) {} }
const raw = (text: string): Raw => new Raw(text)
const deepArray = (n: number): Raw => raw('['.repeat(n) + ']'.repeat(n))
const deepObject = (n: number): Raw => raw('{"a":'.repeat(n) + '1' + '}'.repeat(n))
// deeper than any JSON a webhook body needs; 100k levels overflow a recursive JSON.stringify
const DEEP_BODIES = [deepArray(5000), deepArray(100_000), deepObject(5000), deepObject(50_000)]

function toJsonText (value: unknown): string {
  const raws: string[] = []
  const nonce = `@@raw${SEED}`
  const text = JSON.stringify(value, (_k, v) => {
    if (v instanceof Raw) { raws.push(v.text); return `${nonce}#${raws.length - 1}@@` }
    return v
  })
  return raws.length === 0 ? text : text.replace(new RegExp(`"${nonce}#(\\d+)@@"`, 'g'), (_m, i: string) => raws[Number(i)]!)
}

// pieces of hostile text: unicode, NUL, CR/LF, lone surrogates, bidi overrides, quoting, SQL, templates
const ATOMS = ['a', 'Z', '0', '9', ' ', '\t', '\r', '\n', '\r\n', '\u0000', '\u0001', '\u007f', 'é', 'ß', '中文', '😀',
  '👩‍👩‍👧', '\u202e', '\u200b', '\ufeff', '\ud800', '\udfff', '\uffff', '"', "'", '\\', '%', '%00', '&', '=', '?', '/', '#',
  // eslint-disable-next-line no-template-curly-in-string -- a literal ${x} is the hostile text: no template meant
  '..', '<script>', "' OR 1=1 --", '${x}', '{{x}}', '\\u0000', 'null', '-1', '1e400']

function chaosString (): string {
  if (rng.chance(0.04)) return rng.pick(['x', 'é', '\u0000', '😀']).repeat(rng.pick([256, 2049, 10_001, 70_000]))
  let s = ''
  const n = 1 + rng.int(10)
  for (let i = 0; i < n; i++) s += rng.pick(ATOMS)
  return s
}

/** Any JSON value, valid or not for whatever field it lands in: used as noise, never as the poison. */
function chaosValue (depth = 0): unknown {
  switch (rng.int(depth > 1 ? 8 : 11)) {
    case 0: return null
    case 1: return rng.chance(0.5)
    case 2: return rng.pick([0, -1, 1, 1.5, -0.5, 2 ** 31, 2 ** 53, -(2 ** 63), 1e308, Number.MIN_VALUE])
    case 3: return rng.int(1000)
    case 4: case 5: case 6: return chaosString()
    case 7: return ''
    case 8: return Array.from({ length: rng.int(4) }, () => chaosValue(depth + 1))
    case 9: return Object.fromEntries(Array.from({ length: rng.int(4) }, () => [chaosString(), chaosValue(depth + 1)]))
    default: return rng.chance(0.5) ? {} : []
  }
}

// ---------------------------------------------------------------------------------------------
// what is invalid, field by field. Values here must be rejected whatever the rest of the request is.
// Bodies are validated without coercion (lib/api/validate.ts), except that a plain decimal string is
// read as its integer, as pg-hooks did: so "5" is never a poison for an integer.

interface Seeds { a: number, b: number, m: number, m2: number, c: number }
const NONEXISTENT = 987_654_321

// objects and arrays (other than one-element arrays of scalars) are never coerced to a scalar
const NOT_SCALAR = [{}, [], [1, 2], { a: 1 }, [[]], [{}]]

const HEADER_POISONS: unknown[] = [
  'X-A: b', '', 0, true, [], [['X-A', 'b']], null, [1, 2], [[]], [{}],
  { 'Bad Name': 'x' }, { '': 'x' }, { 'x\u0000y': 'v' }, { Ünïcode: 'v' }, { 'x:y': 'v' }, { 'x\r\ny': 'v' }, { '(x)': 'v' },
  { 'x-😀': 'v' }, { ['h'.repeat(257)]: 'v' },
  { 'X-A': 'a\r\nb' }, { 'X-A': 'a\nX-Injected: 1' }, { 'X-A': 'a\rb' }, { 'X-A': 'a\u0000b' }, { 'X-A': '\u0000' },
  { 'X-A': 'v'.repeat(8193) }, { 'X-A': {} }, { 'X-A': [] }, { 'X-A': ['a', 'b'] }, { 'X-A': { b: 'c' } },
  Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`X-H${i}`, 'v'])),
  // accepted by the schema, refused by jsonb: a lone surrogate escape
  { 'X-A': '\ud800' }
]

const QUEUE_ID_POISONS = (s: Seeds): unknown[] => [0, -1, 1.5, 2 ** 53, -(2 ** 53), 'abc', '', '1abc', null, false, NONEXISTENT, String(NONEXISTENT),
  raw('1e400'), raw('-1e400'), raw('1.0000000001'), ...NOT_SCALAR, [s.a, s.b]]

// schema-valid but refused by PostgreSQL: year 0, offsets beyond ±15:59
const WHEN_POISONS: unknown[] = ['', 'tomorrow', 'now', '2024-13-45T00:00:00Z', '99999-01-01T00:00:00Z', '+099999-01-01T00:00:00Z',
  '2024-01-01', '2024-02-30T00:00:00Z', '2023-02-29T00:00:00Z', '2024-01-01T24:00:00Z', '2024-01-01T00:60:00Z', '2024-01-01T00:00:00+25:00',
  '2024-01-01T00:00:00', '1704067200000', 1_704_067_200_000, '2024-01-01T00:00:00Z\u0000', '2024\u00a0-01-01T00:00:00Z', null,
  '0000-01-01T00:00:00Z', '2024-01-01T00:00:00+23:59', '2024-06-01T12:00:00-20:00', ...NOT_SCALAR]

const SCHEDULE_POISONS: unknown[] = ['', 's'.repeat(256), null, 5, 'not a cron', '* * * *', '* * * * * * *', '61 * * * *', '* 24 * * *',
  '* * 32 * *', '* * * 13 *', '* * * * 8', '*/0 * * * *', '0 0 30 2 *', '0 0 31 2 *', '@reboot', '@every 5m', '@', '@@daily', '@daily daily',
  '* * * * *\u0000', '\u0000', '1-99999 * * * *', '-1 * * * *', 'a b c d e', '* * * * MON-XYZ', '99999999999999999999 * * * *',
  '* * * * * 😀', ' ', '\t\n', '*/-5 * * * *', '5-1/0 * * * *', '* * * * * *\r\n* * * * *', ...NOT_SCALAR]

const TIMEZONE_POISONS: unknown[] = ['', null, 0, 'Mars/Olympus_Mons', 'UTC+25', 'GMT+99', 'Europe/Paris\u0000', '../../etc/passwd',
  'z'.repeat(65), 'Europe/Pariss', 'America/New York', 'Etc/GMT+15', '\u202eUTC', 'UTC\r\n', ...NOT_SCALAR]

const STRING_NUL = 'fuzz\u0000nul' // the schema allows it, text columns do not

interface Poison {
  label: string
  /** fields set by the poison (noise never touches them) */
  set?: Record<string, unknown>
  /** fields removed (a required one) */
  drop?: string[]
}

type Kind = 'queue' | 'message' | 'cron'
type Op = 'post' | 'put'

function fieldPoisons (kind: Kind, op: Op, s: Seeds, target: number | null): Poison[] {
  const p: Poison[] = []
  const each = (field: string, values: unknown[], label = field): void => {
    for (const v of values) p.push({ label: `${label}=${preview(v)}`, set: { [field]: v } })
  }
  if (kind === 'queue') {
    each('name', [...NOT_SCALAR, '', 'n'.repeat(256), null, STRING_NUL])
    each('callbackUrl', [...NOT_SCALAR, null, 123, true, '', 'ftp://example.com/x', 'file:///etc/passwd', 'javascript:alert(1)',
      'mailto:a@b.example', 'gopher://127.0.0.1:70/', 'http:/x.example', '//x.example/hook', 'http://', 'https://', 'http:// x',
      ' http://x.example', 'httpx://x.example', 'http://?x=1', 'http://#frag', 'http://' + 'a'.repeat(2050), 'http://\u0000x',
      'h\u0000ttp://x.example', '\u202ehttp://x.example', 'ｈttp://x.example', 'data:text/plain,x', 'ws://127.0.0.1/x'])
    each('method', [...NOT_SCALAR, null, 0, '', 'get', 'post', 'CONNECT', 'TRACE', 'POST ', ' POST', 'PO\u0000ST', 'ＰＯＳＴ'])
    each('headers', HEADER_POISONS)
    each('maxRetries', [-1, 101, 1.5, 'many', '', 2 ** 31, -(2 ** 31), raw('1e400'), raw('-1e400'), '1e400', ...NOT_SCALAR])
    each('timeoutMs', [99, 0, -1, 300_001, 1e12, 'fast', 100.5, null, ...NOT_SCALAR])
    each('backoffBaseMs', [-1, 86_400_001, 'x', 0.1, ...NOT_SCALAR])
    each('backoffMaxMs', [-1, 604_800_001, 'x', ...NOT_SCALAR])
    each('backoffJitter', ['', 'FULL', 'random', 'full ', 0, null, ...NOT_SCALAR])
    each('deadLetterQueueId', [0, -1, 1.5, 2 ** 53, 'abc', NONEXISTENT, ...NOT_SCALAR])
    p.push({ label: 'backoffBaseMs > backoffMaxMs', set: { backoffBaseMs: 60_000, backoffMaxMs: 1000 } })
    if (op === 'post') {
      p.push({ label: 'missing name', drop: ['name'] }, { label: 'missing callbackUrl', drop: ['callbackUrl'] })
    } else if (target === s.a || target === s.b) {
      p.push({ label: 'own dead-letter queue', set: { deadLetterQueueId: target } })
    }
  } else {
    if (op === 'post') p.push({ label: 'missing queueId', drop: ['queueId'] })
    each('queueId', QUEUE_ID_POISONS(s))
    each('headers', HEADER_POISONS)
    each('body', [STRING_NUL, ...DEEP_BODIES])
    if (kind === 'message') {
      each('when', WHEN_POISONS)
      if (op === 'post') each('idempotencyKey', ['', 'k'.repeat(256), null, STRING_NUL, ...NOT_SCALAR])
    } else {
      if (op === 'post') p.push({ label: 'missing schedule', drop: ['schedule'] })
      each('schedule', SCHEDULE_POISONS)
      each('timezone', TIMEZONE_POISONS)
      each('paused', ['yes', 'TRUE', 'True', '1', '0', '', 2, -1, 0.5, [true, false], ...NOT_SCALAR.slice(0, 4)])
      each('missedTicks', ['', 'ONCE', 'always', 'never', 0, null, ...NOT_SCALAR])
    }
  }
  // read-only and unknown fields are no poison: they are dropped, as Platformatic drops them (GET-then-PUT);
  // test/api-relations.test.ts shows it
  return p
}

// valid values, used as noise around a poison (and as the whole body where the path is the poison)
function validFields (kind: Kind, s: Seeds): Record<string, () => unknown> {
  const headers = (): unknown => rng.pick([{}, { 'X-Ok': '1' }, { 'Content-Type': 'text/plain', 'X-Unicode': 'héllo 😀' }])
  const body = (): unknown => rng.pick([null, 'plain text', { a: 1, b: [true, null] }, [1, 2, 3], 42, '😀 \u202e', { nested: { deep: 'x' } }])
  if (kind === 'queue') {
    return {
      name: () => `fz-${rng.int(1e9)}`,
      callbackUrl: () => rng.pick(['http://127.0.0.1:9/hook', 'https://127.0.0.1:9/x?y=1', 'HTTP://127.0.0.1']),
      method: () => rng.pick(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']),
      headers,
      maxRetries: () => rng.int(101),
      timeoutMs: () => 100 + rng.int(1000),
      backoffBaseMs: () => rng.int(100),
      backoffMaxMs: () => 1000 + rng.int(1000),
      backoffJitter: () => rng.pick(['full', 'equal', 'none']),
      deadLetterQueueId: () => rng.pick([null, s.b])
    }
  }
  const common = { queueId: () => s.a, headers, body }
  if (kind === 'message') return { ...common, when: () => rng.pick(['2030-01-01T00:00:00Z', '2030-06-01T12:00:00.123+02:00']) }
  return {
    ...common,
    schedule: () => rng.pick(['*/5 * * * *', '0 0 * * *', '0 */10 * * * *', '@daily']),
    timezone: () => rng.pick(['UTC', 'Europe/Paris', 'America/New_York', 'Asia/Kolkata']),
    paused: () => rng.chance(0.5),
    missedTicks: () => rng.pick(['once', 'skip'])
  }
}

function required (kind: Kind): Record<string, unknown> {
  if (kind === 'queue') return { name: `fz-${rng.int(1e9)}`, callbackUrl: 'http://127.0.0.1:9/hook' }
  if (kind === 'message') return { queueId: 0 /* replaced */ }
  return { queueId: 0, schedule: '*/5 * * * *' }
}

// ---------------------------------------------------------------------------------------------
// whole-body and transport-level poisons

const INVALID_JSON = ['{', '}', '{"a":}', "{'name':'x'}", '{"a":1,}', '{"a" 1}', 'NaN', 'undefined', '{"a":NaN}', '{"a":Infinity}',
  '{"a":01}', '{"a":"\u0000"}', '{"a":"\n"}', '{"a":"\\x41"}', '{"a":"\\u12"}', '\u0000', '{"a":1}{"b":2}', '/* c */ {"a":1}', '{"a":1} trailing',
  '[', '"unterminated', '{"a":"\ud800"', '\u202e{}', 'true false', '{"a":1e}', '{"a":-}', '{"a":.5}', '{,}', ' ']
const NOT_OBJECT_JSON = ['null', '[]', '[{}]', '"x"', '0', '-1', '1.5', 'true', 'false', '""', '[null]', '[[]]']
const UNPARSEABLE_TYPES = ['application/xml', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=----x', 'application/octet-stream',
  'image/png', 'json', 'application/jsonx', 'application', '*/*', 'text/html', 'application/json\r\nX-Injected: 1', 'text/json']
// the content-type parser may accept these: used only together with a body that is invalid anyway
const JSONISH_TYPES = ['application/json', 'Application/JSON', 'application/json; charset=utf-8', 'application/json;charset=latin1',
  'application/json; charset=utf-16', 'application/json; foo=bar', 'application/json\u0000', 'application/vnd.api+json', 'text/plain']

// HTTP-level noise: odd values and names in request headers, never the reason a request fails
function noiseHeaders (): Record<string, string> {
  const h: Record<string, string> = {}
  const n = rng.chance(0.35) ? 1 + rng.int(3) : 0
  for (let i = 0; i < n; i++) {
    const [k, v] = rng.pick<[string, () => string]>([
      ['x-fuzz', chaosString],
      ['x-fuzz-crlf', () => 'a\r\nX-Injected: 1'],
      ['x-fuzz-nul', () => 'a\u0000b'],
      ['x-fuzz-unicode', () => 'héllo 😀 \u202e'],
      ['bad header name', () => 'x'],
      ['x\u0000nul', () => 'y'],
      ['x-😀', () => 'y'],
      ['x-platformatic-admin-secret', chaosString],
      ['accept', () => rng.pick(['application/xml', '*/*;q=0', 'text/html', '\u0000'])],
      ['x-forwarded-for', () => '127.0.0.1, \u0000, ::1']
    ])
    h[k] = v()
  }
  return h
}

// ---------------------------------------------------------------------------------------------
// path ids

// every one is refused by the id schema (integer 1..2^53-1, coercion included), by the URL parser,
// or names no route; none normalises to another route ("%2e" would become the list route)
const INVALID_IDS = ['-1', '0', '-0', '1.5', '0.5', '99999999999999999999', '9007199254740992', '18446744073709551616', 'abc', '1abc',
  'abc1', '%00', '1%00', '%20', '%09', 'NaN', 'Infinity', '-Infinity', '1e400', 'null', 'true', 'undefined', '%5B1%5D', '%7B%7D',
  "1'%20OR%20'1'%3D'1", '1%3B%20DROP%20TABLE%20hookpost.queues', 'a%2e%2e', '%F0%9F%98%80', '%D9%A1', '%EF%BC%91', '%E2%80%AE1',
  '1,2', '1;2', '*', '$', '~', '%25', '%', '%zz', '%C0%AF', '%E0%A4%A', 'x'.repeat(201), '9'.repeat(250), '-9007199254740991', '1-1', '0b1x', '0x']
// well-formed ids of rows that do not exist (-> 404)
const MISSING_IDS = [String(NONEXISTENT), '2147483647', '2147483648', '9007199254740991', '1e6', '0x7fffffff', '%2B424242', '4242.0']

function badId (): string {
  return rng.chance(0.7) ? rng.pick(INVALID_IDS) : rng.pick(MISSING_IDS)
}

// ---------------------------------------------------------------------------------------------
// list querystrings

const INT4_FIELDS = new Set(['maxRetries', 'timeoutMs', 'retries', 'attempts'])
const UNKNOWN_QUERY_KEYS = ['foo', 'where', 'where.', 'where.id', 'where.id.', 'where..eq', 'where.id.eq.x', 'where.id.like', 'where.id.EQ',
  'where.ID.eq', 'where.nope.eq', 'where.__proto__.eq', '__proto__', 'constructor', 'toString', 'limit[]', 'limit[0]', 'orderby',
  'orderby.', 'orderby.nope', 'orderby.id.asc', 'orderBy.id', 'Limit', 'LIMIT', 'offset ', ' limit', '\u0000', '😀', 'q'.repeat(1000),
  'where.body.eq', 'where.headers.eq', 'force', '', 'totalcount', 'page', 'sort']

function whereValues (field: string, type: FieldType, op: string): string[] {
  const listOp = op === 'in' || op === 'nin'
  const notNullOp = op !== 'eq' && op !== 'neq'
  switch (type) {
    case 'integer': {
      if (listOp) return ['1,,2', '1,abc', ',', '1,', ',1', 'abc', '1.5,2', '1, 2', '0x1', '1e3', '١']
      const v = ['abc', '1.5', '1e3', '0x10', '', ' 1', '1 ', '+1', '--1', '-', '9999999999999999999', '١', '\u0000', '1,2', '1\u0000', 'Infinity']
      if (notNullOp) v.push('null')
      if (INT4_FIELDS.has(field)) v.push('999999999999999999', '-999999999999999999') // past int4: refused by PostgreSQL
      return v
    }
    case 'boolean': {
      if (listOp) return ['true,maybe', 'yes', ',', 'true,', 'TRUE', '1,0']
      const v = ['yes', 'TRUE', 'True', '1', '0', '', 't', 'on', 'true\u0000']
      if (notNullOp) v.push('null')
      return v
    }
    case 'date-time': {
      if (listOp) return ['2024-01-01,nope', ',', '0000-01-01', '2024-13-45T00:00:00Z', 'yesterday']
      const v = ['', 'yesterday', 'now', '2024-13-45T00:00:00Z', '99999-01-01', '+099999-01-01', '1704067200000', '24-01-01',
        '2024-01-01T25:00:00Z', '2024-01-01garbage', '0000-01-01', '0000-01-01T00:00:00Z']
      if (notNullOp) v.push('null')
      return v
    }
    default:
      return listOp ? ['a,b\u0000', STRING_NUL, 's'.repeat(10_001)] : [STRING_NUL, 's'.repeat(10_001), '\u0000']
  }
}

function validQueryPair (entity: Entity): [string, string] {
  const fields = filterableFields(entity)
  switch (rng.int(5)) {
    case 0: return ['limit', String(rng.int(101))]
    case 1: return ['offset', String(rng.int(1000))]
    case 2: return ['totalCount', rng.pick(['true', 'false'])]
    case 3: {
      const [field, def] = rng.pick(fields)
      const op = rng.pick(FILTER_OPS)
      // eslint-disable-next-line no-control-regex -- NUL is matched on purpose: the filter value is cleaned of it
      const v = def.type === 'integer' ? String(1 + rng.int(5)) : def.type === 'boolean' ? 'true' : def.type === 'date-time' ? '2024-01-01T00:00:00Z' : chaosString().replace(/\u0000/g, '')
      return [`where.${field}.${op}`, v]
    }
    default: return [`orderby.${rng.pick(sortableFields(entity))}`, rng.pick(['asc', 'desc'])]
  }
}

function poisonQueryPair (entity: Entity): { label: string, pair: [string, string], dup?: boolean } {
  switch (rng.int(7)) {
    case 0: {
      const nonFilterable = Object.entries(entity.fields).filter(([, d]) => d.filter !== true).map(([f]) => `where.${f}.eq`)
      const nonSortable = Object.entries(entity.fields).filter(([, d]) => d.sort !== true).map(([f]) => `orderby.${f}`)
      const key = rng.pick([...UNKNOWN_QUERY_KEYS, ...nonFilterable, ...nonSortable])
      return { label: `unknown parameter ${JSON.stringify(key)}`, pair: [key, rng.chance(0.5) ? 'asc' : chaosString()] }
    }
    case 1: {
      const v = rng.pick(['-1', '101', '1000', '1.5', 'abc', '', 'null', 'true', '1e400', '99999999999999999999', 'Infinity', '\u0000', '1,2', '[1]', '-0.5'])
      return { label: `limit=${JSON.stringify(v)}`, pair: ['limit', v] }
    }
    case 2: {
      const v = rng.pick(['-1', '2147483648', '1.5', 'abc', '', 'NaN', '1e10', '-2147483648', '\u00001'])
      return { label: `offset=${JSON.stringify(v)}`, pair: ['offset', v] }
    }
    case 3: {
      const v = rng.pick(['yes', '1', '0', 'TRUE', '', 'null', 'on', 'truee'])
      return { label: `totalCount=${JSON.stringify(v)}`, pair: ['totalCount', v] }
    }
    case 4: case 5: {
      const [field, def] = rng.pick(filterableFields(entity))
      const op = rng.pick(FILTER_OPS)
      const v = rng.pick(whereValues(field, def.type, op))
      return { label: `where.${field}.${op}=${preview(v)}`, pair: [`where.${field}.${op}`, v] }
    }
    default: {
      if (rng.chance(0.3)) {
        // a valid parameter given twice becomes an array, which no list parameter accepts
        const pair = validQueryPair(entity)
        return { label: `${pair[0]} given twice`, pair, dup: true }
      }
      const v = rng.pick(['', 'ASC', 'DESC', 'up', 'down', 'asc,desc', 'asc ', 'random()', '1', 'asc; DROP TABLE x', '\u0000', 'désc'])
      const field = rng.pick(sortableFields(entity))
      return { label: `orderby.${field}=${JSON.stringify(v)}`, pair: [`orderby.${field}`, v] }
    }
  }
}

// raw querystring fragments appended as noise: broken escapes, empty pairs (never '#', which would cut the rest)
const RAW_QUERY_NOISE = ['&&', '&=&', 'a=%', '%zz=1', 'x=%E0%A4%A', '=', 'limit', 'x=1=2', '%00=%00', 'x=%ff%fe', '+=+', 'a[b]=c', 'a.b.c.d=e']

function listQuery (entity: Entity): { qs: string, label: string } {
  const poison = poisonQueryPair(entity)
  const pairs: Array<[string, string]> = [poison.pair]
  if (poison.dup === true) pairs.push(poison.pair)
  const noise = rng.int(4)
  for (let i = 0; i < noise; i++) pairs.push(validQueryPair(entity))
  const enc = (s: string): string => encodeURIComponent(s.replace(/[\ud800-\udfff]/g, '\ufffd'))
  let qs = pairs.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&')
  if (rng.chance(0.2)) qs += '&' + rng.pick(RAW_QUERY_NOISE)
  return { qs, label: poison.label }
}

// ---------------------------------------------------------------------------------------------
// requests

interface FuzzRequest { route: string, label: string, opts: InjectOptions }

const RESOURCES: Array<{ prefix: string, kind: Kind, entity: Entity }> = [
  { prefix: '/queues', kind: 'queue', entity: queueEntity },
  { prefix: '/messages', kind: 'message', entity: messageEntity },
  { prefix: '/crons', kind: 'cron', entity: cronEntity },
  { prefix: '/cron', kind: 'cron', entity: cronEntity }
]

type RouteSpec = { key: string, make: (s: Seeds) => FuzzRequest }

function existingIds (kind: Kind, s: Seeds): number[] {
  return kind === 'queue' ? [s.a, s.b] : kind === 'message' ? [s.m, s.m2] : [s.c]
}

function preview (v: unknown): string {
  const text = v instanceof Raw ? v.text : v === undefined ? 'undefined' : JSON.stringify(v)
  return text.length > 60 ? `${text.slice(0, 40)}…(${text.length} chars)` : text
}

/** A JSON body for POST or PUT that is rejected: one poison, plus noise in the other fields. */
function poisonedBody (
  kind: Kind, op: Op, s: Seeds, target: number | null
): { body: Record<string, unknown>, label: string } {
  const poison = rng.pick(fieldPoisons(kind, op, s, target))
  const body: Record<string, unknown> = op === 'post' ? required(kind) : {}
  if ('queueId' in body) body.queueId = s.a
  const touched = new Set([...Object.keys(poison.set ?? {}), ...(poison.drop ?? [])])
  const valid = validFields(kind, s)
  for (const field of rng.some(Object.keys(valid), rng.int(4))) {
    if (touched.has(field)) continue
    body[field] = rng.chance(0.7) ? valid[field]!() : chaosValue()
  }
  if (rng.chance(0.15)) body[rng.pick(['extra', 'x-y', 'ÿ'])] = chaosValue()
  for (const f of poison.drop ?? []) delete body[f]
  Object.assign(body, poison.set ?? {})
  return { body, label: poison.label }
}

/** A body that may well be valid: for requests whose path already makes them fail. */
function anyBody (kind: Kind, s: Seeds): Record<string, unknown> {
  const valid = validFields(kind, s)
  const body: Record<string, unknown> = {}
  for (const field of rng.some(Object.keys(valid), 1 + rng.int(3))) {
    body[field] = rng.chance(0.8) ? valid[field]!() : chaosValue()
  }
  return body
}

/**
 * The transport for a body: usually JSON, sometimes a body that is not an object, not JSON, too
 * large, poisoned with __proto__, or sent with a content type no parser takes.
 */
function bodyRequest (method: 'POST' | 'PUT', url: string, body: Record<string, unknown>, bodyIsPoisoned: boolean): { opts: InjectOptions, label?: string } {
  const headers = noiseHeaders()
  const json = toJsonText(body)
  const roll = rng.int(100)
  if (roll < 8) {
    return { opts: { method, url, headers: { ...headers, 'content-type': 'application/json' }, payload: rng.pick(NOT_OBJECT_JSON) }, label: 'body is not an object' }
  }
  if (roll < 16) {
    return { opts: { method, url, headers: { ...headers, 'content-type': rng.pick(JSONISH_TYPES.slice(0, 5)) }, payload: rng.pick(INVALID_JSON) }, label: 'invalid JSON' }
  }
  if (roll < 19) {
    const inner = json === '{}' ? '' : ',' + json.slice(1, -1)
    const payload = rng.chance(0.5) ? `{"__proto__":{"polluted":true}${inner}}` : `{"constructor":{"prototype":{"polluted":true}}${inner}}`
    return { opts: { method, url, headers: { ...headers, 'content-type': 'application/json' }, payload }, label: 'prototype poisoning' }
  }
  if (roll < 25) {
    return { opts: { method, url, headers: { ...headers, 'content-type': rng.pick(UNPARSEABLE_TYPES) }, payload: json }, label: 'unsupported content type' }
  }
  if (roll < 27) {
    return { opts: { method, url, headers, payload: json }, label: 'no content type' }
  }
  if (roll < 29) {
    return { opts: { method, url, headers: { ...headers, 'content-type': 'application/json' }, payload: '' }, label: 'empty body' }
  }
  if (roll < 31) {
    const big = toJsonText({ ...body, pad: 'x'.repeat(1024 * 1024 + rng.int(1000)) })
    return { opts: { method, url, headers: { ...headers, 'content-type': 'application/json' }, payload: big }, label: 'body over 1 MiB' }
  }
  // a plain JSON body; a JSON-ish content type only when the body itself is already rejected
  const type = bodyIsPoisoned && rng.chance(0.2) ? rng.pick(JSONISH_TYPES) : 'application/json'
  return { opts: { method, url, headers: { ...headers, 'content-type': type }, payload: json } }
}

function routes (): RouteSpec[] {
  const out: RouteSpec[] = []
  for (const { prefix, kind, entity } of RESOURCES) {
    out.push({
      key: `GET ${prefix}`,
      make: () => {
        const { qs, label } = listQuery(entity)
        return { route: `GET ${prefix}`, label, opts: { method: 'GET', url: `${prefix}${rng.chance(0.1) ? '/' : ''}?${qs}`, headers: noiseHeaders() } }
      }
    })
    out.push({
      key: `GET ${prefix}/:id`,
      make: () => {
        const id = badId()
        // GET /:id has no querystring schema: the query is pure noise here
        const qs = rng.chance(0.3) ? '?' + listQuery(entity).qs : ''
        return { route: `GET ${prefix}/:id`, label: `id ${id}`, opts: { method: 'GET', url: `${prefix}/${id}${qs}`, headers: noiseHeaders() } }
      }
    })
    out.push({
      key: `POST ${prefix}`,
      make: (s) => {
        const { body, label } = poisonedBody(kind, 'post', s, null)
        const req = bodyRequest('POST', prefix, body, true)
        return { route: `POST ${prefix}`, label: req.label ?? label, opts: req.opts }
      }
    })
    out.push({
      key: `PUT ${prefix}/:id`,
      make: (s) => {
        if (rng.chance(0.3)) {
          // the path is the poison; the body may be valid
          const id = badId()
          const req = bodyRequest('PUT', `${prefix}/${id}`, anyBody(kind, s), false)
          return { route: `PUT ${prefix}/:id`, label: req.label ?? `id ${id}`, opts: req.opts }
        }
        const target = rng.pick(existingIds(kind, s))
        if (kind === 'message' && target === s.m2 && rng.chance(0.5)) {
          // a delivered message cannot be changed: any update is a 409 (or a 400 if the body is also bad)
          const req = bodyRequest('PUT', `${prefix}/${target}`, anyBody(kind, s), false)
          return { route: `PUT ${prefix}/:id`, label: req.label ?? 'update of a delivered message', opts: req.opts }
        }
        const { body, label } = rng.chance(0.05) ? { body: {}, label: 'empty object' } : poisonedBody(kind, 'put', s, target)
        const req = bodyRequest('PUT', `${prefix}/${target}${rng.chance(0.1) ? '/' : ''}`, body, true)
        return { route: `PUT ${prefix}/:id`, label: req.label ?? label, opts: req.opts }
      }
    })
    out.push({
      key: `DELETE ${prefix}/:id`,
      make: (s) => {
        const headers = noiseHeaders()
        const roll = rng.int(10)
        if (roll < 4) {
          const id = badId()
          const qs = rng.chance(0.3) ? '?' + listQuery(entity).qs : ''
          return { route: `DELETE ${prefix}/:id`, label: `id ${id}`, opts: { method: 'DELETE', url: `${prefix}/${id}${qs}`, headers } }
        }
        const target = rng.pick(existingIds(kind, s))
        if (roll < 6) {
          // a body that cannot be parsed: refused before the handler runs
          return {
            route: `DELETE ${prefix}/:id`,
            label: 'invalid JSON body',
            opts: { method: 'DELETE', url: `${prefix}/${target}`, headers: { ...headers, 'content-type': 'application/json' }, payload: rng.pick(INVALID_JSON.filter(j => j.trim() !== '')) }
          }
        }
        if (kind === 'queue' && roll < 8) {
          // queue a has an undelivered message (409 without force);
          // queue b is a's dead-letter queue (409 even with force)
          const force = target === s.b ? rng.pick(['', '?force=true', '?force=false']) : rng.pick(['', '?force=false'])
          return { route: `DELETE ${prefix}/:id`, label: target === s.a ? 'queue with pending messages' : 'dead-letter target', opts: { method: 'DELETE', url: `${prefix}/${target}${force}`, headers } }
        }
        // DELETE takes no query parameters, except force on queues
        const key = rng.pick(kind === 'queue' ? ['foo', 'Force', 'force[]', 'cascade', '__proto__', '', '\u0000'] : ['force', 'foo', 'cascade', '__proto__', '', 'id', '\u0000'])
        let qs = `${encodeURIComponent(key)}=${encodeURIComponent(chaosString().replace(/[\ud800-\udfff]/g, ''))}`
        if (kind === 'queue' && rng.chance(0.5)) qs = `force=${encodeURIComponent(rng.pick(['maybe', '1', 'yes', '', 'TRUE', 'null', '\u0000']))}`
        return { route: `DELETE ${prefix}/:id`, label: `query ${qs}`, opts: { method: 'DELETE', url: `${prefix}/${target}?${qs}`, headers } }
      }
    })
  }
  for (const [rel, entity] of [['messages', messageEntity], ['crons', cronEntity]] as const) {
    out.push({
      key: `GET /queues/:id/${rel}`,
      make: (s) => {
        const key = `GET /queues/:id/${rel}`
        if (rng.chance(0.35)) {
          const id = badId()
          const qs = rng.chance(0.5) ? '?' + listQuery(entity).qs : ''
          return { route: key, label: `id ${id}`, opts: { method: 'GET', url: `/queues/${id}/${rel}${qs}`, headers: noiseHeaders() } }
        }
        const { qs, label } = listQuery(entity)
        return { route: key, label, opts: { method: 'GET', url: `/queues/${rng.pick([s.a, s.b])}/${rel}?${qs}`, headers: noiseHeaders() } }
      }
    })
  }
  // the operations on one row: bad ids, missing rows, and rows in the wrong state (a retry of a
  // message that has not failed); a redrive of a real queue succeeds, so it only gets bad ids
  out.push({
    key: 'GET /messages/:id/attempts',
    make: () => ({ route: 'GET /messages/:id/attempts', label: 'bad id', opts: { method: 'GET', url: `/messages/${rng.chance(0.2) ? NONEXISTENT : badId()}/attempts`, headers: noiseHeaders() } })
  })
  out.push({
    key: 'POST /messages/:id/retry',
    make: (s) => {
      const id = rng.pick([String(s.m), String(s.m2), String(NONEXISTENT), badId()])
      return { route: 'POST /messages/:id/retry', label: `id ${id}`, opts: { method: 'POST', url: `/messages/${id}/retry`, headers: noiseHeaders() } }
    }
  })
  out.push({
    key: 'POST /queues/:id/redrive',
    make: () => ({ route: 'POST /queues/:id/redrive', label: 'bad id', opts: { method: 'POST', url: `/queues/${rng.chance(0.2) ? NONEXISTENT : badId()}/redrive`, headers: noiseHeaders() } })
  })
  return out
}

// ---------------------------------------------------------------------------------------------

interface Failure { n: number, route: string, label: string, request: string, status: number | string, body: string }

function describe (opts: InjectOptions): string {
  const payload = typeof opts.payload === 'string' ? opts.payload : ''
  return JSON.stringify({
    method: opts.method,
    url: String(opts.url).length > 300 ? String(opts.url).slice(0, 300) + '…' : opts.url,
    headers: opts.headers,
    payload: payload.length > 400 ? `${payload.slice(0, 400)}…(${payload.length} chars)` : payload
  })
}

async function snapshot (pool: import('pg').Pool): Promise<unknown> {
  const out: Record<string, unknown> = {}
  for (const table of ['queues', 'messages', 'crons']) {
    out[table] = (await pool.query(`SELECT * FROM hookpost.${table} ORDER BY id`)).rows
  }
  return JSON.parse(JSON.stringify(out))
}

t.test('fuzz: malformed requests on every REST route are rejected cleanly and change nothing', async (t) => {
  t.comment(`fuzz seed ${SEED} (0x${SEED.toString(16)}); replay another with FUZZ_SEED=<n>`)
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)

  // seed rows so that existing ids can be targeted: queue a (dead-letter queue b), a pending and a
  // delivered message on a, and a cron on a
  const ok = async (opts: InjectOptions, status: number): Promise<any> => {
    const res = await app.inject(opts)
    t.equal(res.statusCode, status, `seed ${opts.method} ${opts.url}: ${res.body}`)
    return res.json()
  }
  const b = await ok({ method: 'POST', url: '/queues', payload: { name: 'fuzz-b', callbackUrl: 'http://127.0.0.1:9/dlq' } }, 200)
  const a = await ok({ method: 'POST', url: '/queues', payload: { name: 'fuzz-a', callbackUrl: 'http://127.0.0.1:9/hook', headers: { 'X-Seed': '1' }, deadLetterQueueId: b.id } }, 200)
  const m = await ok({ method: 'POST', url: '/messages', payload: { queueId: a.id, body: { hello: 'world' }, when: '2099-01-01T00:00:00Z' } }, 200)
  const m2 = await ok({ method: 'POST', url: '/messages', payload: { queueId: a.id, body: 'delivered', when: '2099-01-01T00:00:00Z' } }, 200)
  await pool.query('UPDATE hookpost.messages SET sent_at = now(), attempts = 1, last_status = 200 WHERE id = $1', [m2.id])
  const c = await ok({ method: 'POST', url: '/crons', payload: { queueId: a.id, schedule: '0 0 * * *', timezone: 'Europe/Paris', body: { tick: true } } }, 200)
  const seeds: Seeds = { a: a.id, b: b.id, m: m.id, m2: m2.id, c: c.id }

  const before = await snapshot(pool) as Record<string, unknown[]>
  t.same([before.queues!.length, before.messages!.length, before.crons!.length], [2, 2, 1], 'seed rows present')

  const specs = routes()
  const hit = new Map<string, number>()
  const statuses = new Map<number, number>()
  const codes = new Map<string, number>()
  const serverErrors: Failure[] = []
  const accepted: Failure[] = []
  const badBodies: Failure[] = []
  let sent = 0
  const started = Date.now()

  for (let round = 0; round < PER_ROUTE; round++) {
    for (const spec of specs) {
      const req = spec.make(seeds)
      sent++
      hit.set(req.route, (hit.get(req.route) ?? 0) + 1)
      let res
      try {
        res = await app.inject(req.opts)
      } catch (err) {
        serverErrors.push({ n: sent, route: req.route, label: req.label, request: describe(req.opts), status: 'inject threw', body: String(err) })
        continue
      }
      const status = res.statusCode
      statuses.set(status, (statuses.get(status) ?? 0) + 1)
      const failure = (): Failure => ({
        n: sent, route: req.route, label: req.label, request: describe(req.opts), status, body: res.body.slice(0, 500)
      })
      if (status >= 500) {
        serverErrors.push(failure())
        continue
      }
      if (status < 400) {
        accepted.push(failure())
        continue
      }
      let parsed: any
      try {
        parsed = JSON.parse(res.body)
      } catch {}
      codes.set(String(parsed?.code), (codes.get(String(parsed?.code)) ?? 0) + 1)
      if (parsed === null || typeof parsed !== 'object' || parsed.statusCode !== status ||
          typeof parsed.code !== 'string' || parsed.code === '' || typeof parsed.message !== 'string' || parsed.message === '' ||
          !String(res.headers['content-type']).startsWith('application/json')) {
        badBodies.push(failure())
      }
    }
  }
  const elapsed = Date.now() - started

  const after = await snapshot(pool)
  t.comment(`${sent} requests in ${elapsed} ms; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort((x, y) => x[0] - y[0])))}`)
  t.comment(`error codes ${JSON.stringify(Object.fromEntries([...codes].sort((x, y) => y[1] - x[1])))}`)
  const report = (name: string, list: Failure[]): void => {
    for (const f of list.slice(0, 25)) t.comment(`${name} #${f.n} ${f.route} [${f.label}] ${f.request}\n  -> ${f.status} ${f.body}`)
  }
  report('5xx', serverErrors)
  report('accepted', accepted)
  report('bad error body', badBodies)

  t.equal(serverErrors.length, 0, 'no response is a 5xx (or an inject error)')
  t.equal(accepted.length, 0, 'every request is rejected with a 4xx')
  t.equal(badBodies.length, 0, 'every 4xx body is JSON with statusCode, code and a non-empty message')
  t.same(after, before, 'queues, messages and crons are unchanged')
  t.ok(sent >= 500, `at least 500 requests sent (${sent})`)
  const expected = [
    ...RESOURCES.flatMap(r => [`GET ${r.prefix}`, `POST ${r.prefix}`, `GET ${r.prefix}/:id`, `PUT ${r.prefix}/:id`, `DELETE ${r.prefix}/:id`]),
    'GET /queues/:id/messages', 'GET /queues/:id/crons',
    'GET /messages/:id/attempts', 'POST /messages/:id/retry', 'POST /queues/:id/redrive'
  ]
  t.same(expected.filter(k => (hit.get(k) ?? 0) === 0), [], `every route hit (${expected.length} routes)`)
  t.comment(`fuzz loop took ${elapsed} ms`)
})
