// Input is taken as sent, or refused with a 400 that names the field; nothing is stored from a refused
// request. Bodies are validated without type coercion (the one allowance, for pg-hooks clients: an
// integer field takes a canonical decimal string such as "3"); the querystring and params are text by
// nature and are coerced, but only from a plain decimal integer. Values PostgreSQL cannot store (a NUL in
// text, a year 0, an offset past ±15:59) and dates that do not exist (February 30, 24:00) are refused
// before any SQL runs.
import t from 'tap'
import type { InjectOptions } from 'fastify'
import { translateDbError } from '../lib/db/translate.js'
import { post, testApp, testPool } from './helpers.js'

const URL = 'http://127.0.0.1:9/x'

/** JSON text as sent, for what JSON.stringify cannot write (1e400) */
function rawJson (method: 'POST' | 'PUT', url: string, text: string): InjectOptions {
  return { method, url, headers: { 'content-type': 'application/json' }, payload: text }
}

async function counts (pool: ReturnType<typeof testPool>): Promise<string> {
  const { rows } = await pool.query(`SELECT (SELECT count(*) FROM hookpost.queues) AS q,
    (SELECT count(*) FROM hookpost.messages) AS m, (SELECT count(*) FROM hookpost.crons) AS c,
    (SELECT string_agg(q::text, ',' ORDER BY id) FROM hookpost.queues q) AS qs,
    (SELECT string_agg(m::text, ',' ORDER BY id) FROM hookpost.messages m) AS ms,
    (SELECT string_agg(c::text, ',' ORDER BY id) FROM hookpost.crons c) AS cs`)
  return JSON.stringify(rows[0])
}

t.test('REST bodies: no type coercion; a 400 naming the field, nothing stored', async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  const q = await post(app, '/queues', { name: 'strict', callbackUrl: URL })
  const m = await post(app, '/messages', { queueId: q.id, when: '2030-01-01T00:00:00Z' })
  const c = await post(app, '/crons', { queueId: q.id, schedule: '0 0 * * *' })
  const before = await counts(pool)

  const junkInts: unknown[] = [null, ' ', '\r\n', '', true, false, [1], [], {}, '0x10', '0b11', '0o7', '1e1', '1.0', ' 1', '1 ',
    '+1', 'Infinity', '-Infinity', 'NaN', '1e400', '١']
  const cases: Array<[string, InjectOptions, RegExp]> = []
  for (const v of junkInts) {
    cases.push(
      [`POST /queues maxRetries=${JSON.stringify(v)}`,
        { method: 'POST', url: '/queues', payload: { name: 'n1', callbackUrl: URL, maxRetries: v } }, /body\/maxRetries/],
      [`PUT /queues maxRetries=${JSON.stringify(v)}`,
        { method: 'PUT', url: `/queues/${q.id}`, payload: { maxRetries: v } }, /body\/maxRetries/],
      [`POST /messages queueId=${JSON.stringify(v)}`,
        { method: 'POST', url: '/messages', payload: { queueId: v } }, /body\/queueId/],
      [`PUT /crons queueId=${JSON.stringify(v)}`,
        { method: 'PUT', url: `/crons/${c.id}`, payload: { queueId: v } }, /body\/queueId/]
    )
    if (v !== null) {
      cases.push([`POST /queues deadLetterQueueId=${JSON.stringify(v)}`,
        { method: 'POST', url: '/queues', payload: { name: 'n2', callbackUrl: URL, deadLetterQueueId: v } },
        /body\/deadLetterQueueId/])
    }
  }
  for (const v of [[1], [true], 0, 1, 'true', 'false', '', null, {}]) {
    cases.push([`POST /crons paused=${JSON.stringify(v)}`,
      { method: 'POST', url: '/crons', payload: { queueId: q.id, schedule: '* * * * *', paused: v } }, /body\/paused/])
  }
  for (const v of [1, true, null, ['a'], {}]) {
    cases.push([`POST /queues name=${JSON.stringify(v)}`,
      { method: 'POST', url: '/queues', payload: { name: v, callbackUrl: URL } }, /body\/name/])
  }
  cases.push(
    ['POST /queues maxRetries=1e400 (a JSON number)',
      rawJson('POST', '/queues', `{"name":"n3","callbackUrl":"${URL}","maxRetries":1e400}`), /body\/maxRetries/],
    ['POST /messages queueId=-1e400 (a JSON number)', rawJson('POST', '/messages', '{"queueId":-1e400}'), /body\/queueId/],
    ['PUT /messages when=null', { method: 'PUT', url: `/messages/${m.id}`, payload: { when: null } }, /body\/when/],
    ['POST /queues/:id/signing-secret graceSeconds="0x10"',
      { method: 'POST', url: `/queues/${q.id}/signing-secret`, payload: { graceSeconds: '0x10' } }, /body\/graceSeconds/]
  )
  for (const [name, req, field] of cases) {
    const res = await app.inject(req)
    t.equal(res.statusCode, 400, `${name}: ${res.body.slice(0, 200)}`)
    t.match(res.json().message, field, `${name}: names the field`)
  }
  t.equal(await counts(pool), before, 'nothing was stored or changed')
})

t.test('REST bodies: a canonical decimal string is taken for an integer field (pg-hooks clients)', async (t) => {
  const { app } = await testApp(t)
  const q = await post(app, '/queues', { name: 'dec', callbackUrl: URL, maxRetries: '3', timeoutMs: '1000' })
  t.equal(q.maxRetries, 3)
  t.equal(q.timeoutMs, 1000)
  const m = await post(app, '/messages', { queueId: String(q.id) })
  t.equal(m.queueId, q.id)
  const c = await post(app, '/crons', { queueId: String(q.id), schedule: '0 0 * * *' })
  t.equal(c.queueId, q.id)
  const q2 = await post(app, '/queues', { name: 'dec2', callbackUrl: URL, deadLetterQueueId: String(q.id) })
  t.equal(q2.deadLetterQueueId, q.id)
  t.equal((await post(app, `/queues/${q2.id}`, { deadLetterQueueId: null }, 'PUT')).deadLetterQueueId, null,
    'null stays null where the schema allows it')
  // still bounded as a number
  const res = await app.inject({ method: 'POST', url: '/queues', payload: { name: 'dec3', callbackUrl: URL, maxRetries: '101' } })
  t.equal(res.statusCode, 400, res.body)
  t.match(res.json().message, /body\/maxRetries/)
})

t.test('querystring and params: coerced only from a plain decimal integer', async (t) => {
  const { app } = await testApp(t)
  const q = await post(app, '/queues', { name: 'qs', callbackUrl: URL })
  const cases: Array<[string, RegExp]> = []
  for (const v of ['0x10', '0b11', '0o7', '%20', '%0D%0A', '', '1e1', '1.0', '+1', 'Infinity', '-Infinity', 'NaN', '1e400',
    'true', 'null', '%201', '1%20', '%D9%A1']) {
    cases.push([`/queues?limit=${v}`, /querystring\/limit/], [`/messages?offset=${v}`, /querystring\/offset/],
      [`/queues/${q.id}/messages?limit=${v}`, /querystring\/limit/])
    if (v !== '') cases.push([`/queues/${v}`, /params\/id/], [`/queues/${v}/messages`, /params\/id/])
  }
  for (const v of ['1', 'yes', '%20', '0', '']) cases.push([`/queues?totalCount=${v}`, /querystring\/totalCount/])
  for (const [url, field] of cases) {
    const res = await app.inject({ url })
    t.equal(res.statusCode, 400, `${url}: ${res.body.slice(0, 200)}`)
    t.match(res.json().message, field, `${url}: names the field`)
  }
  // what a querystring is for still works
  const ok = await app.inject({ url: '/queues?limit=5&offset=0&totalCount=true' })
  t.equal(ok.statusCode, 200, ok.body)
  t.equal(ok.headers['x-total-count'], '1')
  t.equal((await app.inject({ url: `/queues/${q.id}` })).statusCode, 200)
  const del = await app.inject({ method: 'DELETE', url: `/queues/${q.id}?force=1` })
  t.equal(del.statusCode, 400, `force=1 is not a boolean: ${del.body}`)
  t.equal((await app.inject({ url: `/queues/${q.id}` })).statusCode, 200, 'nothing deleted')
})

t.test('values PostgreSQL cannot store: refused before SQL, naming the field (REST and GraphQL)', async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  const q = await post(app, '/queues', { name: 'nul', callbackUrl: URL })
  const m = await post(app, '/messages', { queueId: q.id, when: '2030-01-01T00:00:00Z' })
  const c = await post(app, '/crons', { queueId: q.id, schedule: '0 0 * * *' })
  const before = await counts(pool)
  const gqlSave = (type: string, input: object): InjectOptions => ({
    method: 'POST',
    url: '/graphql',
    payload: { query: `mutation ($i: ${type}Input!) { save${type}(input: $i) { id } }`, variables: { i: input } }
  })
  const NUL = 'a\u0000b'
  const cases: Array<[string, InjectOptions, RegExp, string]> = [
    ['queue name with NUL', { method: 'POST', url: '/queues', payload: { name: NUL, callbackUrl: URL } }, /body\/name/,
      'HOOKPOST_ERR_BAD_REQUEST'],
    ['queue name with NUL (PUT)', { method: 'PUT', url: `/queues/${q.id}`, payload: { name: NUL } }, /body\/name/,
      'HOOKPOST_ERR_BAD_REQUEST'],
    ['callbackUrl with NUL', { method: 'POST', url: '/queues', payload: { name: 'n', callbackUrl: URL + '\u0000' } },
      /body\/callbackUrl/, 'HOOKPOST_ERR_BAD_REQUEST'],
    ['message body with NUL', { method: 'POST', url: '/messages', payload: { queueId: q.id, body: NUL } },
      /body\/body/, 'HOOKPOST_ERR_BAD_REQUEST'],
    ['message body with NUL (PUT)', { method: 'PUT', url: `/messages/${m.id}`, payload: { body: NUL } },
      /body\/body/, 'HOOKPOST_ERR_BAD_REQUEST'],
    ['cron body with NUL', { method: 'PUT', url: `/crons/${c.id}`, payload: { body: NUL } }, /body\/body/,
      'HOOKPOST_ERR_BAD_REQUEST'],
    ['cron schedule with NUL', { method: 'PUT', url: `/crons/${c.id}`, payload: { schedule: '0 0 * * *\u0000' } },
      /body\/schedule/, 'HOOKPOST_ERR_BAD_REQUEST'],
    ['cron timezone with NUL', { method: 'PUT', url: `/crons/${c.id}`, payload: { timezone: 'UTC\u0000' } },
      /body\/timezone/, 'HOOKPOST_ERR_BAD_REQUEST'],
    ['GraphQL queue name with NUL', gqlSave('Queue', { name: NUL, callbackUrl: URL }), /input\/name/,
      'HOOKPOST_ERR_BAD_REQUEST'],
    ['GraphQL message body with NUL', gqlSave('Message', { queueId: q.id, body: NUL }), /input\/body/,
      'HOOKPOST_ERR_BAD_REQUEST'],
    ['GraphQL cron body with NUL', gqlSave('Cron', { id: c.id, body: NUL }), /input\/body/, 'HOOKPOST_ERR_BAD_REQUEST'],
    ['maxRetries "Infinity"', { method: 'POST', url: '/queues', payload: { name: 'n', callbackUrl: URL, maxRetries: 'Infinity' } },
      /body\/maxRetries/, 'HOOKPOST_ERR_BAD_REQUEST'],
    ['queueId "Infinity"', { method: 'POST', url: '/messages', payload: { queueId: 'Infinity' } }, /body\/queueId/,
      'HOOKPOST_ERR_BAD_REQUEST'],
    ['GraphQL queueId "Infinity"', gqlSave('Message', { queueId: 'Infinity' }), /input\/queueId/,
      'HOOKPOST_ERR_BAD_REQUEST']
  ]
  for (const when of ['0000-01-01T00:00:00Z', '2024-01-01T00:00:00+23:59', '2024-01-01T00:00:00-16:00',
    '2024-02-30T00:00:00Z', '2023-02-29T00:00:00Z', '2024-01-01T24:00:00Z', '2024-04-31T00:00:00Z',
    // a leap second: PostgreSQL would store the next minute, and a filter refuses it (attack finding)
    '2099-01-01T23:59:60Z']) {
    cases.push(
      [`when ${when}`, { method: 'POST', url: '/messages', payload: { queueId: q.id, when } }, /body\/when/,
        'HOOKPOST_ERR_BAD_REQUEST'],
      [`when ${when} (PUT)`, { method: 'PUT', url: `/messages/${m.id}`, payload: { when } }, /body\/when/,
        'HOOKPOST_ERR_BAD_REQUEST'],
      [`GraphQL when ${when}`, gqlSave('Message', { queueId: q.id, when }), /input\/when/, 'HOOKPOST_ERR_BAD_REQUEST']
    )
  }
  for (const [name, req, field, code] of cases) {
    const res = await app.inject(req)
    const isGql = req.url === '/graphql'
    const e = isGql ? res.json().errors?.[0] : res.json()
    t.equal(isGql ? e?.extensions?.statusCode : res.statusCode, 400, `${name}: ${res.body.slice(0, 200)}`)
    t.equal(isGql ? e?.extensions?.code : e?.code, code, `${name}: ${res.body.slice(0, 200)}`)
    t.match(e?.message, field, `${name}: names the field`)
    t.notMatch(e?.message, /"input"/, `${name}: not the database's nameless message`)
  }
  t.equal(await counts(pool), before, 'nothing was stored or changed')

  // the edges PostgreSQL does take are still taken
  for (const when of ['0001-01-01T00:00:00Z', '9999-12-31T23:59:59.999Z', '2024-01-01T00:00:00+15:59',
    '2024-02-29T00:00:00-15:59', '2024-01-01 12:00:00z']) {
    const res = await app.inject({ method: 'POST', url: '/messages', payload: { queueId: q.id, when } })
    t.equal(res.statusCode, 200, `when ${when}: ${res.body}`)
  }
})

t.test('list filters: impossible or unstorable dates and NUL refused, naming the filter (REST and GraphQL)', async (t) => {
  const { app } = await testApp(t)
  await post(app, '/queues', { name: 'filters', callbackUrl: URL })
  const rest: string[] = []
  const gql: Array<[string, string]> = []
  for (const v of ['2024-02-30', '2023-02-29', '2024-04-31T00:00:00Z', '2024-01-01T24:00', '2024-01-01T24:00:00Z',
    '2024-01-01T23:60', '2024-01-01T23:59:60Z', '2024-13-01', '2024-00-10', '2024-01-00', '0000-01-01',
    '0000-01-01T00:00:00Z', '2024-01-01T00:00:00+16:00', '2024-01-01T00:00:00+23:59', '2024-01-01T00:00:00+1560']) {
    rest.push(`/queues?where.createdAt.eq=${encodeURIComponent(v)}`, `/queues?where.createdAt.gt=${encodeURIComponent(v)}`,
      `/messages?where.when.in=2024-01-01,${encodeURIComponent(v)}`)
    gql.push([`{ queues(where: { createdAt: { eq: ${JSON.stringify(v)} } }) { id } }`, 'where.createdAt.eq'],
      [`{ countMessages(where: { when: { in: ["2024-01-01", ${JSON.stringify(v)}] } }) { total } }`, 'where.when.in'])
  }
  for (const v of ['%00', 'a%00b', 'a,b%00']) rest.push(`/queues?where.name.eq=${v}`, `/queues?where.name.in=${v}`)
  gql.push(['{ queues(where: { name: { eq: "\\u0000" } }) { id } }', 'where.name.eq'],
    ['{ queues(where: { name: { in: ["a", "b\\u0000"] } }) { id } }', 'where.name.in'],
    ['{ crons(where: { schedule: { neq: "x\\u0000" } }) { id } }', 'where.schedule.neq'])
  for (const url of rest) {
    const res = await app.inject({ url })
    t.equal(res.statusCode, 400, `${url}: ${res.body.slice(0, 200)}`)
    t.equal(res.json().code, 'HOOKPOST_ERR_INVALID_FIELD', url)
    const param = decodeURIComponent(url.split('?')[1]!.split('=')[0]!)
    t.match(res.json().message, `"${param}"`, `${url}: names the filter`)
  }
  for (const [query, param] of gql) {
    const res = await app.inject({ method: 'POST', url: '/graphql', payload: { query } })
    const e = res.json().errors?.[0]
    t.equal(e?.extensions?.code, 'HOOKPOST_ERR_INVALID_FIELD', `${query}: ${res.body.slice(0, 200)}`)
    t.match(e?.message, `"${param}"`, `${query}: names the filter`)
  }
  // real dates, in every form a filter takes
  for (const v of ['2024-02-29', '2024-01-01T23:59', '2024-01-01T23:59:59.999999Z', '2024-01-01 00:00:00+15:59',
    '2024-01-01T00:00:00-0530', '0001-01-01']) {
    const res = await app.inject({ url: `/queues?where.createdAt.gt=${encodeURIComponent(v)}` })
    t.equal(res.statusCode, 200, `${v}: ${res.body}`)
  }
})

t.test('the data layer names the parameter PostgreSQL refused, when the statement names it', async (t) => {
  const pgError = (code: string, message: string, where?: string): Error =>
    Object.assign(new Error(message), { code, severity: 'ERROR', where })
  const nul = pgError('22021', 'invalid byte sequence for encoding "UTF8": 0x00', 'unnamed portal parameter $2')
  const named = translateDbError(nul, { write: true, params: ['queueId', 'name'] }) as Error & { code?: string }
  t.equal(named.code, 'HOOKPOST_ERR_INVALID_FIELD')
  t.match(named.message, /"name"/)
  const inf = pgError('22P02', 'invalid input syntax for type bigint: "Infinity"', "unnamed portal parameter $1 = '...'")
  t.match((translateDbError(inf, { write: false, params: ['where.id.eq'] }) as Error).message, /"where\.id\.eq"/)
  // no names: still a 400
  const anon = translateDbError(inf, { write: false }) as Error & { code?: string, statusCode?: number }
  t.equal(anon.statusCode, 400)
  t.equal(anon.code, 'HOOKPOST_ERR_INVALID_FIELD')
})

t.test('bodies JSON or UTF-8 cannot carry back are refused, not changed (attack finding)', async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  const q = await post(app, '/queues', { name: 'unsayable', callbackUrl: URL })
  const before = await counts(pool)
  // raw JSON text: 1e400 parses as Infinity, which JSON.stringify stores as null
  for (const body of ['1e400', '{"a":1e400}', '[1,-1e400]', '"\\ud800"', '"a\\udc00b"']) {
    const res = await app.inject({
      method: 'POST',
      url: '/messages',
      headers: { 'content-type': 'application/json' },
      payload: `{"queueId":${String(q.id)},"body":${body}}`
    })
    t.equal(res.statusCode, 400, `body ${body}: ${res.body.slice(0, 160)}`)
    t.match(res.json().message, /"body"/, `body ${body}: names the field`)
  }
  t.equal(await counts(pool), before, 'nothing was stored')
  const pair = await app.inject({
    method: 'POST',
    url: '/messages',
    headers: { 'content-type': 'application/json' },
    payload: `{"queueId":${String(q.id)},"body":"\\ud83d\\ude00"}`
  })
  t.equal(pair.statusCode, 200, 'a whole surrogate pair (an emoji) is text')
})
