// GraphQL against a hostile client: analysis linear in the document, every list bounded, bulk inputs
// and root fields capped, and the estimate an upper bound on the rows that come back.
import t from 'tap'
import { getIntrospectionQuery, parse, buildSchema } from 'graphql'
import type { FastifyInstance } from 'fastify'
import { MAX_QUERY_COST, MAX_QUERY_TOKENS, MAX_ROOT_FIELDS, measure } from '../lib/graphql/cost.js'
import { schema as sdl } from '../lib/graphql/schema.js'
import { MAX_BULK_INPUTS } from '../lib/store/list.js'
import { testApp, testPool } from './helpers.js'

async function gql (
  app: FastifyInstance, query: string, variables?: object
): Promise<{ status: number, data: any, errors?: any[] }> {
  const res = await app.inject({ method: 'POST', url: '/graphql', payload: { query, variables } })
  const body = res.json()
  return { status: res.statusCode, data: body.data, errors: body.errors }
}

/** Fragments F0 { ...F1 ...F1 } ... F(n-1) { id }: 2^n fields when expanded, n fragments to analyse. */
function doublingFragments (n: number): string {
  const frags = []
  for (let i = 0; i < n - 1; i++) frags.push(`fragment F${i} on Queue { id ...F${i + 1} ...F${i + 1} }`)
  frags.push(`fragment F${n - 1} on Queue { id name }`)
  return `{ queues(limit: 1) { ...F0 } }\n${frags.join('\n')}`
}

t.test('analysis is linear: doubling fragments 22 and 40 deep are answered at once (issue 10.3)', async (t) => {
  const { app } = await testApp(t)
  // 2^22 fields took the old rule 7 s; 2^40 would never end, so an answer at all is the proof (no clock:
  // a loaded machine would make a time limit flaky; bench-free, the 40-level refusal takes a few ms)
  for (const n of [22, 40]) {
    const r = await gql(app, doublingFragments(n))
    t.equal(r.status, 400, `${n} levels: refused`)
    t.match(r.errors?.[0]?.message, /too expensive/)
  }
  const schema = buildSchema(sdl)
  const [op] = measure(schema, parse(doublingFragments(30)).definitions)
  t.ok(op!.m.cost > 2 ** 30, `the estimate still counts what expansion would run (${op!.m.cost})`)
})

t.test('GraphiQL\'s own introspection query passes; deep data queries do not', async (t) => {
  const { app } = await testApp(t)
  const r = await gql(app, getIntrospectionQuery())
  t.equal(r.errors, undefined, 'getIntrospectionQuery() validates')
  t.ok(r.data.__schema.types.length > 10, 'and returns the schema')
  // with every option, as GraphiQL, codegen and Apollo may send it: never refused, however wide the schema grows
  const options = ['descriptions', 'specifiedByUrl', 'directiveIsRepeatable', 'schemaDescription', 'inputValueDeprecation', 'oneOf']
  const all = getIntrospectionQuery(Object.fromEntries(options.map(o => [o, true])))
  const full = await gql(app, all)
  t.equal(full.errors, undefined, `getIntrospectionQuery() with every option validates: ${JSON.stringify(full.errors)}`)
  let deep = 'id'
  for (let i = 0; i < 6; i++) deep = `queue { crons(limit: 1) { ${deep} } }`
  const d = await gql(app, `{ messages(limit: 1) { ${deep} } }`)
  t.equal(d.status, 400)
  t.match(d.errors?.[0]?.message, /deep/, 'a 13-deep data query is refused for depth')
  // introspection is bounded by cost: lists nested inside lists grow with the schema's width
  const wide = await gql(app, '{ __schema { types { fields { type { fields { type { fields { type { fields { name } } } } } } } } } }')
  t.equal(wide.status, 400, 'nested introspection lists are refused for cost')
  t.match(wide.errors?.[0]?.message, /introspection is too expensive/)
})

t.test('every list field has a limit, and the estimate bounds the rows returned (issue 10.4)', async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  await pool.query("INSERT INTO hookpost.queues (name, callback_url) SELECT 'q' || g, 'http://127.0.0.1:9/' || g FROM generate_series(1, 3) g")
  await pool.query("INSERT INTO hookpost.crons (queue_id, schedule) SELECT 1 + g % 3, '0 * * * *' FROM generate_series(1, 450) g")
  await pool.query("INSERT INTO hookpost.messages (queue_id, body) SELECT 1 + g % 3, 'x' FROM generate_series(1, 450) g")
  await pool.query('INSERT INTO hookpost.attempts (message_id, attempt, started_at, duration_ms, status_code) SELECT 1, g, now(), 1, 500 FROM generate_series(1, 150) g')

  const query = '{ queues(limit: 1) { crons { id queue { crons { id } } } } }'
  const r = await gql(app, query)
  t.equal(r.errors, undefined)
  const rows = 1 + r.data.queues[0].crons.length * (1 + r.data.queues[0].crons[0].queue.crons.length)
  t.equal(r.data.queues[0].crons.length, 100, 'Queue.crons returns at most 100 (was every cron)')
  const [op] = measure(buildSchema(sdl), parse(query).definitions)
  t.ok(op!.m.cost >= rows, `the estimate (${op!.m.cost}) bounds the rows returned (${rows})`)

  const small = await gql(app, '{ queues(limit: 2) { crons(limit: 3) { id } messages(limit: 4) { id attempts(limit: 5) { id } } } }')
  t.equal(small.errors, undefined)
  t.same(small.data.queues.map((q: any) => q.crons.length), [3, 3], 'crons(limit) per queue')
  t.same(small.data.queues.map((q: any) => q.messages.length), [4, 4], 'messages(limit) per queue')
  const all = await gql(app, '{ getMessageById(id: 1) { attempts { id } } }')
  t.equal(all.data.getMessageById.attempts.length, 100, 'Message.attempts returns at most 100 by default')
  for (const field of ['crons(limit: 101) { id }', 'messages(limit: 101) { id }', 'messages(limit: 1) { attempts(limit: 101) { id } }']) {
    const over = await gql(app, `{ queues(limit: 1) { ${field} } }`)
    // the bound of REST's ?limit=, with its schema error
    const refused = { extensions: { code: 'HOOKPOST_ERR_BAD_REQUEST' }, message: /limit/ }
    t.match(over.errors?.[0], refused, `${field}: over the maximum is refused`)
  }
})

t.test('bulk inputs and deletes are capped at 1,000, naming the field, and nothing is written', async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  await pool.query("INSERT INTO hookpost.queues (name, callback_url) VALUES ('q', 'http://127.0.0.1:9/')")
  const over = MAX_BULK_INPUTS + 1
  const cases = [
    ['insertMessages', 'MessageInput', { queueId: 1, body: 'x' }],
    ['insertCrons', 'CronInput', { queueId: 1, schedule: '0 * * * *' }],
    ['insertQueues', 'QueueInput', { name: 'n', callbackUrl: 'http://127.0.0.1:9/' }]
  ] as const
  for (const [field, type, input] of cases) {
    const r = await gql(app, `mutation ($i: [${type}!]!) { ${field}(inputs: $i) { id } }`, { i: Array.from({ length: over }, () => input) })
    t.match(r.errors?.[0], { message: /"inputs".*at most 1000/, extensions: { code: 'HOOKPOST_ERR_INVALID_FIELD', statusCode: 400 } }, `${field} with ${over} inputs is refused`)
  }
  const counts = await pool.query('SELECT (SELECT count(*) FROM hookpost.messages)::int AS m, (SELECT count(*) FROM hookpost.crons)::int AS c, (SELECT count(*) FROM hookpost.queues)::int AS q')
  t.same(counts.rows[0], { m: 0, c: 0, q: 1 }, 'nothing was written')

  const ok = await gql(app, 'mutation ($i: [MessageInput!]!) { insertMessages(inputs: $i) { id } }', { i: Array.from({ length: MAX_BULK_INPUTS }, () => ({ queueId: 1, body: 'x' })) })
  t.equal(ok.data?.insertMessages?.length, MAX_BULK_INPUTS, 'exactly the cap is accepted')
  await pool.query("INSERT INTO hookpost.messages (queue_id, body) VALUES (1, 'y')")
  const del = await gql(app, 'mutation { deleteMessages(where: { queueId: { eq: 1 } }) { id } }')
  t.match(del.errors?.[0], { message: /"where".*more than 1000/, extensions: { code: 'HOOKPOST_ERR_INVALID_FIELD' } }, 'a delete matching 1,001 rows is refused')
  t.equal((await pool.query('SELECT count(*)::int AS n FROM hookpost.messages')).rows[0].n, MAX_BULK_INPUTS + 1, 'and deletes nothing')
})

t.test('root fields, aliases included, are capped: each runs its own statement', async (t) => {
  const { app } = await testApp(t)
  const aliases = (n: number): string => '{ ' + Array.from({ length: n }, (_, i) => `c${i}: countMessages { total }`).join(' ') + ' }'
  const ok = await gql(app, aliases(MAX_ROOT_FIELDS))
  t.equal(ok.errors, undefined, `${MAX_ROOT_FIELDS} root fields pass`)
  // (3,000 aliases, 18,000 tokens, are now refused by the token limit before this rule sees them)
  const r = await gql(app, aliases(1500))
  t.equal(r.status, 400)
  t.match(r.errors?.[0]?.message, /1500 root fields/, '1,500 aliases are refused before any runs')
  // through a fragment at the root, the same count
  const viaFragment = await gql(app, `query { ...R } fragment R on Query { ${Array.from({ length: MAX_ROOT_FIELDS + 1 }, (_, i) => `c${i}: countQueues { total }`).join(' ')} }`)
  t.match(viaFragment.errors?.[0]?.message, /root fields/, 'fragments at the root count too')
  t.ok(MAX_QUERY_COST > 0)
})

t.test('bodies are costed by their size: a page of them passes, eight pages do not (attack finding)', async (t) => {
  const { app } = await testApp(t)
  const page = await gql(app, '{ messages(limit: 100) { id queueId body headers when createdAt } }')
  t.equal(page.errors, undefined, 'one page of messages with their bodies, as REST gives')
  const crons = await gql(app, '{ crons(limit: 100) { id body headers schedule } }')
  t.equal(crons.errors, undefined, 'one page of crons with their bodies')
  // 8 x 100 bodies of 1 MiB were 800 MiB: a 500 from a string past V8's limit, and a frozen process
  const eight = Array.from({ length: 8 }, (_, i) => `a${i}: messages(limit: 100) { body }`).join(' ')
  const r = await gql(app, `{ ${eight} }`)
  t.equal(r.status, 400, 'refused before anything runs')
  t.match(r.errors?.[0]?.message, /too expensive/)
  const two = await gql(app, '{ a: messages(limit: 100) { body } b: messages(limit: 100) { body } }')
  t.equal(two.status, 400, 'two pages of bodies are refused too')
})

t.test('a document longer than the token limit is refused before it is parsed (attack finding)', async (t) => {
  const { app } = await testApp(t)
  // 30,000 one-field operations, 740 KB: a second of parsing and validation per request
  const many = Array.from({ length: 30_000 }, (_, i) => `query Q${i} { __typename }`).join('\n')
  const r = await gql(app, many)
  t.equal(r.status, 400)
  t.match(JSON.stringify(r.errors), new RegExp(`more than ${MAX_QUERY_TOKENS} tokens`), 'the limit is named')
  // as a JSON-encoded AST, which mercurius tries when graphql-js cannot parse the text
  const ast = JSON.stringify(parse(Array.from({ length: 1000 }, (_, i) => `query Q${i} { __typename }`).join('\n')))
  const viaAst = await gql(app, ast)
  t.equal(viaAst.status, 400, 'a JSON AST is bounded too')
  const get = await app.inject({ url: '/graphql?query=' + encodeURIComponent(many.slice(0, 200_000)) })
  t.equal(get.statusCode, 400, 'over GET too')
  t.equal((await gql(app, getIntrospectionQuery())).errors, undefined, 'GraphiQL\'s introspection is far below it')
})

t.test('what an insert hands back is data: a repeated idempotencyKey returns the stored body (attack finding)', async (t) => {
  const { app } = await testApp(t)
  const q = await gql(app, 'mutation { saveQueue(input: { name: "echo", callbackUrl: "http://127.0.0.1:9/" }) { id } }')
  const id = String(q.data.saveQueue.id)
  const literal = await gql(app, `mutation { insertMessages(inputs: [{ queueId: ${id}, body: "x" }]) { id body } }`)
  t.equal(literal.errors, undefined, 'a literal list of inputs counts as many rows as it has')
  // 200 inputs of one stored 1 MiB body's key were 200 copies: an out-of-memory crash from 7.5 KB
  const viaVariables = await gql(app, 'mutation ($i: [MessageInput!]!) { insertMessages(inputs: $i) { body } }',
    { i: Array.from({ length: 200 }, () => ({ queueId: id, idempotencyKey: 'big' })) })
  t.equal(viaVariables.status, 400, 'inputs as variables count 1,000 rows: their bodies are refused')
  t.match(viaVariables.errors?.[0]?.message, /too expensive/)
  const ids = await gql(app, 'mutation ($i: [MessageInput!]!) { insertMessages(inputs: $i) { id } }',
    { i: [{ queueId: id, body: 'y' }] })
  t.equal(ids.errors, undefined, 'asking for ids is fine')
  const del = await gql(app, 'mutation { deleteMessages(where: { id: { eq: 0 } }) { body } }')
  t.equal(del.status, 400, 'deleteMessages { body } can return 1,000 stored bodies: refused')
})

t.test('only GraphQL text reaches mercurius: no AST, as JSON or as an object (attack finding)', async (t) => {
  const { app } = await testApp(t)
  // a JSON AST whose IntValue reads "100x": NaN to a cost rule, 100 to graphql-js
  const deep = '{ messages(limit: 100) { queue { messages(limit: 100) { queue { messages(limit: 100) { body } } } } } }'
  const ast = JSON.stringify(parse(deep, { noLocation: true })).replaceAll('"value":"100"', '"value":"100x"')
  const r = await gql(app, ast)
  t.equal(r.status, 400, 'a JSON AST is refused')
  // and one that the lexer gives up on early, so no token count would bound it
  const surrogate = await gql(app, '{"x":"\ud800",' + ast.slice(1))
  t.equal(surrogate.status, 400, 'a JSON AST behind a lone surrogate too')
  const asObject = await app.inject({ method: 'POST', url: '/graphql', payload: { query: parse('{ queues { id } }') } })
  t.equal(asObject.statusCode, 400, 'an AST object in place of the text is refused')
  for (const q of ['1', '[]', '"x"', '{"kind":"Document"}', '{"kind":"Document","definitions":[null]}']) {
    const res = await app.inject({ url: '/graphql?query=' + encodeURIComponent(q) })
    t.equal(res.statusCode, 400, `?query=${q}: 400, not 500`)
  }
  const graphqlType = await app.inject({ method: 'POST', url: '/graphql', headers: { 'content-type': 'application/graphql' }, payload: '1' })
  t.equal(graphqlType.statusCode, 400, 'application/graphql "1": 400')
  // defence in depth: the rule itself reads a non-integer limit as the maximum, and a NaN cost fails
  const [op] = measure(buildSchema(sdl), JSON.parse(ast).definitions)
  t.ok(op!.m.cost > MAX_QUERY_COST, `the estimate of the "100x" AST is ${op!.m.cost}, over the limit`)
})

t.test('an inputs list or a limit given as a variable is costed as what it is, not as the most it could be', async (t) => {
  const { app } = await testApp(t)
  await app.inject({ method: 'POST', url: '/queues', payload: { name: 'v', callbackUrl: 'http://127.0.0.1:9/v' } })
  // pg-hooks clients pass inputs as variables and read the bodies back: 3 rows, not 1,000
  const three = await gql(app, 'mutation ($i: [MessageInput]!) { insertMessages(inputs: $i) { id body } }',
    { i: [{ queueId: 1, body: 'a' }, { queueId: 1, body: 'b' }, { queueId: 1, body: 'c' }] })
  t.equal(three.errors, undefined, JSON.stringify(three.errors))
  const many = await gql(app, 'mutation ($i: [MessageInput]!) { insertMessages(inputs: $i) { id body } }',
    { i: Array.from({ length: 200 }, () => ({ queueId: 1, body: 'x', idempotencyKey: 'same' })) })
  t.match(many.errors?.[0]?.message, /too expensive/, '200 inputs returning their bodies: still refused, before any insert')
  const limited = await gql(app, 'query ($l: LimitInt) { a: messages(limit: $l) { body } b: messages(limit: $l) { body } }', { l: 10 })
  t.equal(limited.errors, undefined, 'a small limit as a variable')
})
