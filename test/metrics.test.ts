import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { deliveringApp, eventually, post, receiver, testApp, testPool } from './helpers.js'

interface Sample { name: string, labels: Record<string, string>, value: number }

/** The Prometheus text format, enough of it for these tests: `name{a="x",b="y"} value` lines. */
function parse (text: string): Sample[] {
  const out: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (m === null) throw new Error(`not a sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!.replace(/\\(.)/g, '$1')
    out.push({ name: m[1]!, labels, value: Number(m[3]) })
  }
  return out
}

/** Sum of the samples named `name` whose labels include `match`; undefined when there are none. */
function value (samples: Sample[], name: string, match: Record<string, string> = {}): number | undefined {
  const hits = samples.filter(s => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
  return hits.length === 0 ? undefined : hits.reduce((sum, s) => sum + s.value, 0)
}

async function scrape (app: FastifyInstance): Promise<Sample[]> {
  const res = await app.inject({ url: '/metrics' })
  if (res.statusCode !== 200) throw new Error(`/metrics: ${res.statusCode} ${res.body}`)
  return parse(res.body)
}

/** Scrape until ok(samples) holds; the samples that passed. */
async function scrapeUntil (app: FastifyInstance, ok: (s: Sample[]) => boolean, ms?: number): Promise<Sample[]> {
  let last: Sample[] = []
  await eventually(async () => { last = await scrape(app); return ok(last) }, ms)
  return last
}

t.test('counters and histograms move with deliveries; leader is 1 on the delivering app', async (t) => {
  const okTarget = await receiver(t)
  const failing = await receiver(t, (_r, res) => { res.statusCode = 500; res.end() })
  const { app } = await deliveringApp(t)
  const a = await post(app, '/queues', { name: 'a', callbackUrl: okTarget.url })
  const b = await post(app, '/queues', { name: 'b', callbackUrl: failing.url, maxRetries: 0 })
  const A = { queue: String(a.id) }
  const B = { queue: String(b.id) }
  for (let i = 0; i < 3; i++) await post(app, '/messages', { queueId: a.id, body: { i } })
  await post(app, '/messages', { queueId: b.id, body: 'x' })
  await okTarget.waitFor(3)

  const s = await scrapeUntil(app, s => value(s, 'hookpost_messages_delivered_total', A) === 3 && value(s, 'hookpost_messages_dead_lettered_total', B) === 1)
  t.equal(value(s, 'hookpost_messages_enqueued_total'), 4, 'four messages enqueued in all')
  t.equal(value(s, 'hookpost_messages_enqueued_total', { ...A, source: 'api' }), 3)
  t.equal(value(s, 'hookpost_messages_enqueued_total', { ...B, source: 'api' }), 1)
  t.equal(value(s, 'hookpost_messages_delivered_total', A), 3)
  t.equal(value(s, 'hookpost_messages_delivered_total', B), undefined, 'nothing delivered on the failing queue')
  t.ok(value(s, 'hookpost_delivery_failures_total', B)! >= 1, 'the failed attempt is counted')
  t.equal(value(s, 'hookpost_delivery_failures_total', A), undefined)
  t.equal(value(s, 'hookpost_messages_dead_lettered_total', B), 1)

  t.equal(value(s, 'hookpost_delivery_latency_seconds_count', A), 3, 'one latency per delivery')
  t.ok(value(s, 'hookpost_delivery_latency_seconds_sum', A)! > 0)
  t.equal(value(s, 'hookpost_delivery_latency_seconds_bucket', { ...A, le: '+Inf' }), 3)
  t.equal(value(s, 'hookpost_attempt_duration_seconds_count', A), 3)
  t.equal(value(s, 'hookpost_attempt_duration_seconds_count', B), 1, 'failed attempts are timed too')

  t.equal(value(s, 'hookpost_leader'), 1, 'this app holds the leader lock')
  t.equal(value(s, 'hookpost_deliveries_in_flight'), 0, 'nothing in flight once done')
  t.equal(value(s, 'hookpost_backlog_due_messages'), 0)

  // HTTP metrics: the route pattern, never the raw URL
  await app.inject({ url: `/messages/${a.id}` })
  await app.inject({ url: '/no/such/path/12345' })
  const h = await scrape(app)
  t.equal(value(h, 'hookpost_http_requests_total', { method: 'POST', route: '/messages', status_code: '200' }), 4)
  t.equal(value(h, 'hookpost_http_requests_total', { method: 'GET', route: '/messages/:id', status_code: '200' }), 1)
  t.equal(value(h, 'hookpost_http_requests_total', { method: 'GET', route: 'unmatched', status_code: '404' }), 1)
  t.notOk(h.some(x => x.labels.route?.includes('12345')), 'no raw URL in a label')
  t.equal(value(h, 'hookpost_http_request_duration_seconds_count', { method: 'POST', route: '/messages' }), 4)
  t.ok(value(h, 'hookpost_http_requests_total', { route: '/metrics' })! >= 1, '/metrics counts itself')

  // prom-client's default process metrics
  t.ok(value(h, 'process_cpu_user_seconds_total')! > 0)
  t.ok(value(h, 'nodejs_heap_size_used_bytes')! > 0)
  t.ok(value(h, 'process_start_time_seconds')! > 0)
})

t.test('enqueued counts every source: REST, GraphQL, idempotent repeats once, cron ticks, dead-letter copies', async (t) => {
  const okTarget = await receiver(t)
  const failing = await receiver(t, (_r, res) => { res.statusCode = 503; res.end() })
  const { app, pool } = await deliveringApp(t)
  const dlq = await post(app, '/queues', { name: 'dlq', callbackUrl: okTarget.url })
  const flaky = await post(app, '/queues', { name: 'flaky', callbackUrl: failing.url, maxRetries: 0, deadLetterQueueId: dlq.id })
  const gql = async (query: string): Promise<void> => {
    const res = await app.inject({ method: 'POST', url: '/graphql', payload: { query } })
    t.notOk(res.json().errors, query)
  }
  await gql(`mutation { saveMessage(input: { queueId: ${flaky.id}, body: "dies" }) { id } }`)
  await gql(`mutation { insertMessages(inputs: [{ queueId: ${dlq.id}, body: "1" }, { queueId: ${dlq.id}, body: "2" }]) { id } }`)
  await post(app, '/messages', { queueId: dlq.id, body: 'k', idempotencyKey: 'once' })
  t.equal((await app.inject({ method: 'POST', url: '/messages', payload: { queueId: dlq.id, body: 'k', idempotencyKey: 'once' } })).statusCode, 200, 'a repeat')
  const cron = await post(app, '/crons', { queueId: dlq.id, schedule: '* * * * * *', body: 'tick' })
  await scrapeUntil(app, s => (value(s, 'hookpost_messages_enqueued_total', { source: 'cron' }) ?? 0) >= 1, 5000)
  await post(app, `/crons/${cron.id}`, { paused: true }, 'PUT')

  const s = await scrapeUntil(app, s => value(s, 'hookpost_messages_enqueued_total', { source: 'dead_letter' }) === 1)
  t.equal(value(s, 'hookpost_messages_enqueued_total', { queue: String(dlq.id), source: 'dead_letter' }), 1, 'the copy counts on the dead-letter queue')
  t.equal(value(s, 'hookpost_messages_enqueued_total', { queue: String(flaky.id), source: 'api' }), 1)
  t.equal(value(s, 'hookpost_messages_enqueued_total', { queue: String(dlq.id), source: 'api' }), 3, 'two from insertMessages, one keyed; the repeat is not counted')
  // the counters agree with the table, source by source
  const { rows: [db] } = await pool.query(`SELECT
      count(*) FILTER (WHERE cron_id IS NULL AND dead_letter_of IS NULL) AS api,
      count(*) FILTER (WHERE cron_id IS NOT NULL) AS cron,
      count(*) FILTER (WHERE dead_letter_of IS NOT NULL) AS dead_letter
    FROM hookpost.messages`)
  t.equal(value(s, 'hookpost_messages_enqueued_total', { source: 'api' }), db.api)
  t.equal(value(s, 'hookpost_messages_enqueued_total', { source: 'cron' }), db.cron)
  t.equal(value(s, 'hookpost_messages_enqueued_total', { source: 'dead_letter' }), db.dead_letter)
})

t.test('backlog gauges count due pending messages; /metrics is open when the API needs the secret', async (t) => {
  // delivery off: inserted rows stay exactly as written
  const { app, url } = await testApp(t, { adminSecret: 'a-long-admin-secret' })
  const pool = testPool(t, url)
  const { rows: [q] } = await pool.query("INSERT INTO hookpost.queues (name, callback_url) VALUES ('q', 'http://127.0.0.1:9/') RETURNING id")
  const empty = await scrape(app)
  t.equal(value(empty, 'hookpost_backlog_due_messages'), 0)
  t.equal(value(empty, 'hookpost_backlog_oldest_due_age_seconds'), 0, 'no backlog: age 0')

  await pool.query(`INSERT INTO hookpost.messages (queue_id, body, "when") VALUES
    ($1, 'due 1', now() - interval '90 seconds'), ($1, 'due 2', now() - interval '10 seconds'), ($1, 'due 3', now()),
    ($1, 'future', now() + interval '1 hour')`, [q.id])
  await pool.query('INSERT INTO hookpost.messages (queue_id, body, "when", sent_at) VALUES ($1, \'sent\', now() - interval \'1 day\', now())', [q.id])
  await pool.query('INSERT INTO hookpost.messages (queue_id, body, "when", failed) VALUES ($1, \'failed\', now() - interval \'1 day\', true)', [q.id])

  const res = await app.inject({ url: '/metrics' })
  t.equal(res.statusCode, 200, 'no secret needed')
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  t.equal((await app.inject({ url: '/queues' })).statusCode, 401, 'while the API does need it')
  const s = parse(res.body)
  t.equal(value(s, 'hookpost_backlog_due_messages'), 3, 'due and pending only: not future, sent or failed')
  const age = value(s, 'hookpost_backlog_oldest_due_age_seconds')!
  t.ok(age >= 90 && age < 120, `the oldest due message has waited ${age} s`)
  t.equal(value(s, 'hookpost_leader'), 0, 'delivery off: not the leader')
  t.equal(value(s, 'hookpost_deliveries_in_flight'), 0)
  t.equal(value(s, 'hookpost_messages_enqueued_total'), undefined, 'rows inserted with plain SQL are not counted as enqueued by hookpost')
  t.notOk(res.body.includes('a-long-admin-secret'))
})

t.test('every app has its own registry', async (t) => {
  const one = await testApp(t)
  const two = await testApp(t, { url: one.url })
  const q = await post(one.app, '/queues', { name: 'q', callbackUrl: 'http://127.0.0.1:9/' })
  await post(one.app, '/messages', { queueId: q.id, body: 'x' })
  t.equal(value(await scrape(one.app), 'hookpost_messages_enqueued_total'), 1)
  t.equal(value(await scrape(two.app), 'hookpost_messages_enqueued_total'), undefined)
})

t.test('delivery log lines carry messageId, queueId and attempt', async (t) => {
  const { Writable } = await import('node:stream')
  const pino = (await import('pino')).default
  const { build } = await import('../lib/app.js')
  const { makeConfig } = await import('../lib/config.js')
  const { loggerOptions } = await import('../lib/logger.js')
  const { testDatabase } = await import('./helpers.js')
  const lines: Array<Record<string, any>> = []
  const sink = new Writable({ write (chunk, _enc, cb) { for (const l of String(chunk).split('\n')) if (l !== '') lines.push(JSON.parse(l)); cb() } })
  const config = makeConfig({ server: { logLevel: 'debug' }, db: { connectionString: await testDatabase(t) }, hooks: { enabled: true, leaderPollMs: 100, pollMs: 60_000 } })
  const app = await build(config, { logger: pino({ ...loggerOptions(config), transport: undefined }, sink) })
  t.teardown(async () => { await app.close() })
  await app.ready()
  await eventually(async () => app.delivery!.worker.active)

  const okTarget = await receiver(t)
  const failing = await receiver(t, (_r, res) => { res.statusCode = 500; res.end() })
  const a = await post(app, '/queues', { name: 'a', callbackUrl: okTarget.url })
  const b = await post(app, '/queues', { name: 'b', callbackUrl: failing.url, maxRetries: 0 })
  const ma = await post(app, '/messages', { queueId: a.id, body: 'x' })
  const mb = await post(app, '/messages', { queueId: b.id, body: 'y' })

  const delivered = await eventually(async () => lines.find(l => l.msg === 'delivered' && l.messageId === ma.id))
  t.match(delivered, { level: 20, component: 'delivery', messageId: ma.id, queueId: a.id, attempt: 1, status: 200 })
  t.type(delivered!.durationMs, 'number')
  const failed = await eventually(async () => lines.find(l => l.msg === 'delivery failed; retries exhausted' && l.messageId === mb.id))
  t.match(failed, { messageId: mb.id, queueId: b.id, attempt: 1, status: 500, errorKind: 'http' })
})
