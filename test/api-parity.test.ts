// The same bad input gets the same error code over REST and over GraphQL, and a 4xx, never a 500:
// one table of bad inputs, each sent both ways.
import t from 'tap'
import type { InjectOptions } from 'fastify'
import { errors } from '../lib/errors.js'
import { post, testApp } from './helpers.js'

type Code = keyof typeof errors
interface Gql { query: string, variables?: Record<string, unknown> }
/** field: what both messages must name (the field or filter), where the row says */
interface Row { name: string, code: Code, rest: InjectOptions, graphql: Gql | InjectOptions, field?: RegExp }

const BIG = 'x'.repeat(1024 * 1024 + 10)
const deep = (n: number): unknown => n === 0 ? 1 : [deep(n - 1)]

function table (queueId: number): Row[] {
  const get = (url: string): InjectOptions => ({ method: 'GET', url })
  const gql = (query: string): Gql => ({ query })
  const raw = (url: string, type: string, payload: string): InjectOptions =>
    ({ method: 'POST', url, headers: { 'content-type': type }, payload })
  const send = (method: 'POST' | 'PUT', url: string, payload: object): InjectOptions => ({ method, url, payload })
  const save = (type: string) => (input: object): Gql =>
    ({ query: `mutation ($i: ${type}Input!) { save${type}(input: $i) { id } }`, variables: { i: input } })
  const saveQueue = save('Queue')
  const saveMessage = save('Message')
  const saveCron = save('Cron')
  const url = 'http://127.0.0.1:9/x'
  return [
    {
      name: 'a filter date-time PostgreSQL cannot store (year 0)',
      code: 'HOOKPOST_ERR_INVALID_FIELD',
      rest: get('/messages?where.when.gt=0000-01-01T00:00:00Z'),
      graphql: { query: '{ messages(where: { when: { gt: "0000-01-01T00:00:00Z" } }) { id } }' },
      field: /"where\.when\.gt"/
    },
    {
      name: 'a filter date-only PostgreSQL cannot store (year 0)',
      code: 'HOOKPOST_ERR_INVALID_FIELD',
      rest: get('/queues?where.createdAt.gt=0000-01-01'),
      graphql: { query: '{ queues(where: { createdAt: { gt: "0000-01-01" } }) { id } }' },
      field: /"where\.createdAt\.gt"/
    },
    {
      // JS's Date would roll it over to March 1
      name: 'a filter date that does not exist (February 30)',
      code: 'HOOKPOST_ERR_INVALID_FIELD',
      rest: get('/queues?where.createdAt.eq=2024-02-30'),
      graphql: { query: '{ queues(where: { createdAt: { eq: "2024-02-30" } }) { id } }' },
      field: /"where\.createdAt\.eq"/
    },
    {
      name: 'a filter time of 24:00',
      code: 'HOOKPOST_ERR_INVALID_FIELD',
      rest: get('/queues?where.createdAt.eq=2024-01-01T24:00'),
      graphql: { query: '{ queues(where: { createdAt: { eq: "2024-01-01T24:00" } }) { id } }' },
      field: /"where\.createdAt\.eq"/
    },
    {
      // refused before SQL: PostgreSQL's own error (SQLSTATE 22021) cannot name the filter
      name: 'a NUL in a text filter',
      code: 'HOOKPOST_ERR_INVALID_FIELD',
      rest: get('/queues?where.name.eq=a%00b'),
      graphql: { query: '{ queues(where: { name: { eq: "a\\u0000b" } }) { id } }' },
      field: /"where\.name\.eq"/
    },
    {
      name: 'a NUL in a text field',
      code: 'HOOKPOST_ERR_BAD_REQUEST',
      rest: send('POST', '/queues', { name: 'a\u0000b', callbackUrl: url }),
      graphql: saveQueue({ name: 'a\u0000b', callbackUrl: url }),
      field: /(body|input)\/name /
    },
    {
      name: 'a NUL in a string message body',
      code: 'HOOKPOST_ERR_BAD_REQUEST',
      rest: send('POST', '/messages', { queueId, body: 'a\u0000b' }),
      graphql: saveMessage({ queueId, body: 'a\u0000b' }),
      field: /(body|input)\/body /
    },
    {
      name: 'a when PostgreSQL cannot store (year 0)',
      code: 'HOOKPOST_ERR_BAD_REQUEST',
      rest: send('POST', '/messages', { queueId, when: '0000-01-01T00:00:00Z' }),
      graphql: saveMessage({ queueId, when: '0000-01-01T00:00:00Z' }),
      field: /(body|input)\/when /
    },
    {
      name: 'a when with an offset PostgreSQL cannot store (+23:59)',
      code: 'HOOKPOST_ERR_BAD_REQUEST',
      rest: send('POST', '/messages', { queueId, when: '2024-01-01T00:00:00+23:59' }),
      graphql: saveMessage({ queueId, when: '2024-01-01T00:00:00+23:59' }),
      field: /(body|input)\/when /
    },
    {
      name: 'a when that does not exist (February 30)',
      code: 'HOOKPOST_ERR_BAD_REQUEST',
      rest: send('POST', '/messages', { queueId, when: '2024-02-30T00:00:00Z' }),
      graphql: saveMessage({ queueId, when: '2024-02-30T00:00:00Z' }),
      field: /(body|input)\/when /
    },
    {
      // REST no longer coerces it to 16; a GraphQL ID is checked the same way
      name: 'a hex string for an id',
      code: 'HOOKPOST_ERR_BAD_REQUEST',
      rest: send('POST', '/messages', { queueId: '0x10' }),
      graphql: saveMessage({ queueId: '0x10' }),
      field: /(body|input)\/queueId /
    },
    {
      name: 'Infinity for an id',
      code: 'HOOKPOST_ERR_BAD_REQUEST',
      rest: send('POST', '/queues', { name: 'p4', callbackUrl: url, deadLetterQueueId: 'Infinity' }),
      graphql: saveQueue({ name: 'p4', callbackUrl: url, deadLetterQueueId: 'Infinity' }),
      field: /(body|input)\/deadLetterQueueId /
    },
    {
      name: 'a filter id that is not a number',
      code: 'HOOKPOST_ERR_INVALID_FIELD',
      rest: get('/messages?where.queueId.eq=abc'),
      graphql: { query: '{ messages(where: { queueId: { eq: "abc" } }) { id } }' }
    },
    {
      name: 'an id that is not a number',
      code: 'HOOKPOST_ERR_BAD_REQUEST',
      rest: get('/queues/abc'),
      graphql: { query: '{ getQueueById(id: "abc") { id } }' }
    },
    { name: 'id 0', code: 'HOOKPOST_ERR_BAD_REQUEST', rest: get('/queues/0'), graphql: gql('{ getQueueById(id: 0) { id } }') },
    { name: 'limit over 100', code: 'HOOKPOST_ERR_BAD_REQUEST', rest: get('/queues?limit=101'), graphql: gql('{ queues(limit: 101) { id } }') },
    { name: 'a negative offset', code: 'HOOKPOST_ERR_BAD_REQUEST', rest: get('/queues?offset=-1'), graphql: gql('{ queues(offset: -1) { id } }') },
    {
      name: 'an unknown sort direction',
      code: 'HOOKPOST_ERR_BAD_REQUEST',
      rest: get('/queues?orderby.id=sideways'),
      graphql: { query: '{ queues(orderBy: [{ field: id, direction: SIDEWAYS }]) { id } }' }
    },
    {
      name: 'a callbackUrl that is not a URL',
      code: 'HOOKPOST_ERR_BAD_REQUEST',
      rest: send('POST', '/queues', { name: 'p1', callbackUrl: 'nope' }),
      graphql: saveQueue({ name: 'p1', callbackUrl: 'nope' })
    },
    {
      name: 'a callbackUrl to the cloud metadata service',
      code: 'HOOKPOST_ERR_BLOCKED_TARGET',
      rest: send('POST', '/queues', { name: 'p2', callbackUrl: 'http://169.254.169.254/latest' }),
      graphql: saveQueue({ name: 'p2', callbackUrl: 'http://169.254.169.254/latest' })
    },
    {
      name: 'a cron schedule that does not parse',
      code: 'HOOKPOST_ERR_INVALID_CRON',
      rest: send('POST', '/crons', { queueId, schedule: 'not a cron' }),
      graphql: saveCron({ queueId, schedule: 'not a cron' })
    },
    {
      name: 'an unknown time zone',
      code: 'HOOKPOST_ERR_INVALID_CRON',
      rest: send('POST', '/crons', { queueId, schedule: '* * * * *', timezone: 'Mars/Olympus' }),
      graphql: saveCron({ queueId, schedule: '* * * * *', timezone: 'Mars/Olympus' })
    },
    {
      name: 'a header hookpost sets itself',
      code: 'HOOKPOST_ERR_INVALID_FIELD',
      rest: send('POST', '/messages', { queueId, headers: { Host: 'evil' } }),
      graphql: saveMessage({ queueId, headers: { Host: 'evil' } })
    },
    {
      name: 'a header value with CR LF',
      code: 'HOOKPOST_ERR_BAD_REQUEST',
      rest: send('POST', '/messages', { queueId, headers: { 'x-a': 'a\r\nx-b: 1' } }),
      graphql: saveMessage({ queueId, headers: { 'x-a': 'a\r\nx-b: 1' } })
    },
    {
      name: 'a missing required field',
      code: 'HOOKPOST_ERR_BAD_REQUEST',
      rest: send('POST', '/queues', { callbackUrl: url }),
      graphql: saveQueue({ callbackUrl: url })
    },
    {
      name: 'a date-time that is not one',
      code: 'HOOKPOST_ERR_BAD_REQUEST',
      rest: send('POST', '/messages', { queueId, when: 'tomorrow' }),
      graphql: saveMessage({ queueId, when: 'tomorrow' })
    },
    {
      name: 'an idempotency key no header can carry',
      code: 'HOOKPOST_ERR_BAD_REQUEST',
      rest: send('POST', '/messages', { queueId, idempotencyKey: 'ключ' }),
      graphql: saveMessage({ queueId, idempotencyKey: 'ключ' })
    },
    {
      name: 'a body nested too deep',
      code: 'HOOKPOST_ERR_INVALID_FIELD',
      rest: send('POST', '/messages', { queueId, body: deep(300) as object }),
      graphql: saveMessage({ queueId, bodyJson: deep(300) })
    },
    {
      name: 'a request body over 1 MiB',
      code: 'HOOKPOST_ERR_PAYLOAD_TOO_LARGE',
      rest: send('POST', '/messages', { queueId, body: BIG }),
      graphql: saveMessage({ queueId, body: BIG })
    },
    {
      name: 'an unknown queue id (foreign key)',
      code: 'HOOKPOST_ERR_UNKNOWN_REFERENCE',
      rest: send('POST', '/messages', { queueId: 4242 }),
      graphql: saveMessage({ queueId: 4242 })
    },
    {
      name: 'an unknown dead-letter queue id (foreign key)',
      code: 'HOOKPOST_ERR_UNKNOWN_REFERENCE',
      rest: send('POST', '/queues', { name: 'p3', callbackUrl: url, deadLetterQueueId: 4242 }),
      graphql: saveQueue({ name: 'p3', callbackUrl: url, deadLetterQueueId: 4242 })
    },
    {
      name: 'an update of a missing row',
      code: 'HOOKPOST_ERR_NOT_FOUND',
      rest: send('PUT', '/queues/4242', { maxRetries: 1 }),
      graphql: saveQueue({ id: 4242, maxRetries: 1 })
    },
    {
      name: 'a grace period out of bounds',
      code: 'HOOKPOST_ERR_BAD_REQUEST',
      rest: send('POST', `/queues/${queueId}/signing-secret`, { graceSeconds: -1 }),
      graphql: { query: `mutation { rotateSigningSecret(queueId: ${queueId}, graceSeconds: -1) { queueId } }` }
    },
    {
      name: 'a signing secret that is not one',
      code: 'HOOKPOST_ERR_INVALID_FIELD',
      rest: send('POST', `/queues/${queueId}/signing-secret`, { secret: 'nope' }),
      graphql: { query: `mutation { rotateSigningSecret(queueId: ${queueId}, secret: "nope") { queueId } }` }
    },
    {
      name: 'a body that is not JSON',
      code: 'HOOKPOST_ERR_BAD_REQUEST',
      rest: raw('/queues', 'application/json', '{"name":'),
      graphql: raw('/graphql', 'application/json', '{"query":')
    },
    {
      name: 'a content type the API does not read',
      code: 'HOOKPOST_ERR_UNSUPPORTED_MEDIA_TYPE',
      rest: raw('/queues', 'application/x-www-form-urlencoded', 'a=b'),
      graphql: raw('/graphql', 'application/xml', '<q/>')
    }
  ]
}

t.test('each bad input: the same code over REST and GraphQL, a 4xx, never a 500', async (t) => {
  const { app } = await testApp(t)
  const q = await post(app, '/queues', { name: 'taken', callbackUrl: 'http://127.0.0.1:9/t' })
  for (const row of table(q.id)) {
    const status = new errors[row.code]().statusCode
    const rest = await app.inject(row.rest)
    t.equal(rest.statusCode, status, `REST, ${row.name}: ${rest.body.slice(0, 200)}`)
    t.equal(rest.json().code, row.code, `REST, ${row.name}`)
    if (row.field !== undefined) t.match(rest.json().message, row.field, `REST, ${row.name}: names the field`)

    const g = 'query' in row.graphql
      ? { method: 'POST' as const, url: '/graphql', payload: row.graphql }
      : row.graphql
    const res = await app.inject(g)
    const e = res.json().errors?.[0]
    t.equal(e?.extensions?.code, row.code, `GraphQL, ${row.name}: ${res.body.slice(0, 200)}`)
    t.equal(e?.extensions?.statusCode, status, `GraphQL, ${row.name}: the same status in extensions`)
    if (row.field !== undefined) t.match(e?.message, row.field, `GraphQL, ${row.name}: names the field`)
    t.ok(res.statusCode === 200 || res.statusCode === status, `GraphQL, ${row.name}: HTTP ${res.statusCode}`)
  }
})
