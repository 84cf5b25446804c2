// Integrity of enqueues when the database stalls: an accepted message is written once, an error that
// says "nothing was written" means it, and an error that cannot know says so. And idempotency keys
// that no HTTP request can carry are refused by SQL as by REST.
import t from 'tap'
import pg from 'pg'
import type { FastifyInstance } from 'fastify'
import { eventually, post, serverUrl, silentLog, testApp, testDatabase, testPool } from './helpers.js'
import { claim, complete, unholdClosedCircuit, type ClaimResultRow, type Completion } from '../lib/delivery/sql.js'
import { completion, fail, ok } from './engine-fakes.js'

type T = Parameters<typeof testDatabase>[0]

// short, so the tests are quick; each test names which timeout its app runs with
const SHORT_TIMEOUT_MS = 1000

const dbName = (url: string): string => new URL(url).pathname.slice(1)

/** A second session holding a lock in an open transaction, as a stalled application would. */
async function holdLock (
  t: T, url: string, sql: string, values: unknown[] = []
): Promise<{ release: () => Promise<void> }> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  await c.query('BEGIN')
  await c.query(sql, values)
  let open = true
  const release = async (): Promise<void> => {
    if (!open) return
    open = false
    await c.query('COMMIT')
    await c.end()
  }
  t.teardown(release)
  return { release }
}

/** Statements of this test's database waiting for a lock, with their start, so each is told apart. */
async function lockWaiters (admin: pg.Pool, datname: string): Promise<Array<{ id: string, query: string }>> {
  const { rows } = await admin.query(
    `SELECT pid || ':' || query_start AS id, query FROM pg_stat_activity
     WHERE datname = $1 AND wait_event_type = 'Lock'`, [datname])
  return rows
}

/** No INSERT into messages still running in this test's database (abandoned ones included). */
async function insertsSettled (admin: pg.Pool, datname: string): Promise<boolean> {
  const { rows } = await admin.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity
     WHERE datname = $1 AND state = 'active' AND query LIKE 'INSERT INTO hookpost.messages%'`, [datname])
  return rows[0].n === 0
}

async function rowsByBody (admin: pg.Pool): Promise<Map<string, number>> {
  const { rows } = await admin.query('SELECT body, count(*)::int AS n FROM hookpost.messages GROUP BY body')
  return new Map(rows.map(r => [r.body, r.n]))
}

/** a reply, short, for assertion messages */
const show = (r: { statusCode: number, body: string }): string => `${r.statusCode} ${r.body.slice(0, 160)}`

const enqueue = async (app: FastifyInstance, queueId: number, body: string, idempotencyKey?: string): Promise<Awaited<ReturnType<FastifyInstance['inject']>>> =>
  await app.inject({ method: 'POST', url: '/messages', payload: { queueId, body, ...(idempotencyKey !== undefined ? { idempotencyKey } : {}) } })

// what each answer promises about the rows it stands for
const NOT_WRITTEN = new Set(['HOOKPOST_ERR_DB_TIMEOUT', 'HOOKPOST_ERR_DATABASE_UNAVAILABLE'])

t.test("PostgreSQL's statement timeout: a 503 that nothing was written, and the statement is never retried", async (t) => {
  const url = await testDatabase(t)
  // the pool's statement_timeout, from the connection string as an operator would set it
  const { app } = await testApp(t, { url: `${url}?statement_timeout=${SHORT_TIMEOUT_MS}` })
  const admin = testPool(t, url)
  const datname = dbName(url)
  const q = await post(app, '/queues', { name: 'stalled', callbackUrl: 'http://127.0.0.1:9/x' })
  // the insert's foreign-key check takes FOR KEY SHARE on the queue row, which FOR UPDATE blocks
  const lockQueue = 'SELECT 1 FROM hookpost.queues WHERE id = $1 FOR UPDATE'

  // 1. a lone enqueue times out; the three that queued behind it are refused unsent, not each given a
  // timeout of their own; once the lock goes, an enqueue is accepted at once
  let lock = await holdLock(t, url, lockQueue, [q.id])
  const first = enqueue(app, q.id, 'a0')
  await eventually(async () => (await lockWaiters(admin, datname)).length === 1)
  const queued = ['a1', 'a2', 'a3'].map(async b => await enqueue(app, q.id, b))
  const timedOut = await first
  t.equal(timedOut.statusCode, 503, 'a database timeout is a 503: ' + show(timedOut))
  t.equal(timedOut.json().code, 'HOOKPOST_ERR_DB_TIMEOUT')
  t.match(timedOut.json().message, /nothing was written/)
  t.equal(timedOut.headers['retry-after'], '1')
  for (const r of await Promise.all(queued)) {
    t.equal(r.statusCode, 503, show(r))
    t.equal(r.json().code, 'HOOKPOST_ERR_DATABASE_UNAVAILABLE', 'refused unsent: nothing written')
  }
  await lock.release()
  t.equal((await enqueue(app, q.id, 'a4')).statusCode, 200, 'the next enqueue, the lock gone, is accepted')

  // 2. three at once: the first is sent and times out, the two queued behind it are refused unsent;
  // nothing is tried again one row at a time
  lock = await holdLock(t, url, lockQueue, [q.id])
  const blocked = new Set<string>()
  let watching = true
  const watcher = (async () => {
    // eslint-disable-next-line no-unmodified-loop-condition -- the test sets watching = false to stop this poller
    while (watching) {
      for (const w of await lockWaiters(admin, datname)) if (w.query.startsWith('INSERT INTO hookpost.messages')) blocked.add(w.id)
      await new Promise(resolve => setTimeout(resolve, 20))
    }
  })()
  const group = await Promise.all(['b1', 'b2', 'b3'].map(async b => await enqueue(app, q.id, b)))
  watching = false
  await watcher
  await lock.release()
  for (const r of group) {
    t.equal(r.statusCode, 503, show(r))
    t.ok(NOT_WRITTEN.has(r.json().code), `a 503 that nothing was written: ${r.json().code}`)
  }
  t.equal(blocked.size, 1, 'one statement waited on the lock: no other was sent, none retried row by row')

  await eventually(async () => await insertsSettled(admin, datname))
  const rows = await rowsByBody(admin)
  t.same(['a0', 'a1', 'a2', 'a3', 'a4', 'b1', 'b2', 'b3'].map(b => rows.get(b) ?? 0), [0, 0, 0, 0, 1, 0, 0, 0],
    'every 200 has exactly one row, every 503 none')
})

t.test('a client timeout while the insert may still commit: the outcome is unknown, and nothing is written twice', async (t) => {
  const url = await testDatabase(t)
  // only the client's backstop fires: the server keeps the statement, which commits once the lock goes
  const { app } = await testApp(t, { url: `${url}?query_timeout=${SHORT_TIMEOUT_MS}` })
  const admin = testPool(t, url)
  const datname = dbName(url)
  const q = await post(app, '/queues', { name: 'stalled', callbackUrl: 'http://127.0.0.1:9/x' })
  const lock = await holdLock(t, url, 'SELECT 1 FROM hookpost.queues WHERE id = $1 FOR UPDATE', [q.id])

  const sent: Array<{ body: string, key?: string }> = [{ body: 'c0', key: 'k0' }, { body: 'c1', key: 'k1' }, { body: 'c2' }, { body: 'c3', key: 'k3' }]
  const first = enqueue(app, q.id, sent[0]!.body, sent[0]!.key)
  await eventually(async () => (await lockWaiters(admin, datname)).length === 1)
  const rest = sent.slice(1).map(async s => await enqueue(app, q.id, s.body, s.key))
  // every request is answered while the lock is still held
  const answers = await Promise.all([first, ...rest])
  await lock.release()
  await eventually(async () => await insertsSettled(admin, datname))

  const rows = await rowsByBody(admin)
  answers.forEach((r, i) => {
    const n = rows.get(sent[i]!.body) ?? 0
    t.not(r.statusCode, 500, `${sent[i]!.body}: never a 500: ${show(r)}`)
    t.ok(n <= 1, `${sent[i]!.body}: written at most once (${n} rows)`)
    if (r.statusCode < 300) t.equal(n, 1, `${sent[i]!.body}: accepted, so written once`)
    else if (NOT_WRITTEN.has(r.json().code)) t.equal(n, 0, `${sent[i]!.body}: answered ${r.json().code}, so not written`)
    else {
      t.equal(r.statusCode, 503, show(r))
      t.equal(r.json().code, 'HOOKPOST_ERR_OUTCOME_UNKNOWN')
      t.match(r.json().message, /may or may not have been committed.*idempotencyKey/)
    }
  })
  // as the error advises: a retry with the same key returns what the unknown write committed
  const again = await enqueue(app, q.id, 'c0', 'k0')
  t.equal(again.statusCode, 200, show(again))
  t.equal(again.json().body, 'c0')
  t.equal((await rowsByBody(admin)).get('c0'), 1)
})

t.test('other statements that time out are 503s too: a read is unavailable, a write of unknown outcome', async (t) => {
  const url = await testDatabase(t)
  const backstop = await testApp(t, { url: `${url}?query_timeout=${SHORT_TIMEOUT_MS}` })
  const server = await testApp(t, { url: `${url}?statement_timeout=${SHORT_TIMEOUT_MS}` })
  const lock = await holdLock(t, url, 'LOCK TABLE hookpost.messages IN ACCESS EXCLUSIVE MODE')

  const [read, write, canceled] = await Promise.all([
    backstop.app.inject({ url: '/messages' }),
    backstop.app.inject({ method: 'DELETE', url: '/messages/1' }),
    server.app.inject({ url: '/messages' })
  ])
  t.equal(read.statusCode, 503, 'a read: ' + show(read))
  t.equal(read.json().code, 'HOOKPOST_ERR_DATABASE_UNAVAILABLE')
  t.equal(write.statusCode, 503, 'a write: ' + show(write))
  t.equal(write.json().code, 'HOOKPOST_ERR_OUTCOME_UNKNOWN')
  t.equal(canceled.statusCode, 503, 'canceled by the server: ' + show(canceled))
  t.equal(canceled.json().code, 'HOOKPOST_ERR_DB_TIMEOUT')
  await lock.release()
})

t.test("the pool asks PostgreSQL to cancel a stalled statement, before the client's own timeout gives up", async (t) => {
  const { app } = await testApp(t)
  const { rows } = await app.pool.query('SHOW statement_timeout')
  t.equal(rows[0].statement_timeout, '30s')
  t.ok((app.pool as any).options.query_timeout > 30_000, 'the client backstop comes after the server has canceled')
  // an operator's longer timeout in the connection string moves the backstop with it
  const { createPool } = await import('../lib/db/pool.js')
  const pool = createPool(`${serverUrl()}?statement_timeout=90000`, { max: 1, log: silentLog, statementTimeoutMs: 1000 })
  t.teardown(async () => { await pool.end() })
  t.equal((await pool.query('SHOW statement_timeout')).rows[0].statement_timeout, '90s')
  t.ok((pool as any).options.query_timeout > 90_000, 'the backstop follows it')
})

t.test('db.statementTimeoutMs (HOOKPOST_DB_STATEMENT_TIMEOUT_MS) is what PostgreSQL applies; GraphQL says a timeout as REST does', async (t) => {
  const url = await testDatabase(t)
  const { app } = await testApp(t, { url, db: { statementTimeoutMs: SHORT_TIMEOUT_MS } })
  t.equal((await app.pool.query('SHOW statement_timeout')).rows[0].statement_timeout, '1s')
  const q = (await app.inject({ method: 'POST', url: '/queues', payload: { name: 'q', callbackUrl: 'http://127.0.0.1:9/' } })).json()
  const lock = await holdLock(t, url, 'LOCK TABLE hookpost.messages IN ACCESS EXCLUSIVE MODE')
  const gql = async (query: string): Promise<any> => (await app.inject({ method: 'POST', url: '/graphql', payload: { query } })).json()
  const [read, write] = await Promise.all([
    gql('{ messages(limit: 1) { id } }'),
    gql(`mutation { saveMessage(input: { queueId: ${String(q.id)}, body: "x" }) { id } }`)
  ])
  t.same(read.errors?.map((e: any) => e.extensions), [{ code: 'HOOKPOST_ERR_DB_TIMEOUT', statusCode: 503 }], 'a read: ' + JSON.stringify(read))
  t.same(write.errors?.map((e: any) => e.extensions), [{ code: 'HOOKPOST_ERR_DB_TIMEOUT', statusCode: 503 }], 'a write: ' + JSON.stringify(write))
  await lock.release()
  t.equal((await app.pool.query('SELECT count(*)::int AS n FROM hookpost.messages')).rows[0].n, 0, 'nothing was written')
})

// REST's rule (lib/api/resources.ts): 1 to 255 printable ASCII characters
const KEYS: Array<[string, boolean]> = [
  ['order-42', true], [' ', true], ['~', true], ['a b!"#', true], ['x'.repeat(255), true],
  ['', false], ['x'.repeat(256), false], ['bad\nkey', false], ['tab\there', false], ['ключ', false],
  ['café', false], ['\x7f', false], ['\x1f', false], ['emoji 😀', false]
]

t.test('hookpost.enqueue refuses idempotency keys that cannot be sent as a header, as REST does', async (t) => {
  const { app, url } = await testApp(t)
  const admin = testPool(t, url)
  const restQueue = await post(app, '/queues', { name: 'rest', callbackUrl: 'http://127.0.0.1:9/x' })
  const sqlQueue = await post(app, '/queues', { name: 'sql', callbackUrl: 'http://127.0.0.1:9/x' })

  for (const [key, valid] of KEYS) {
    const label = JSON.stringify(key.length > 20 ? `${key.slice(0, 10)}…(${key.length})` : key)
    const rest = await enqueue(app, restQueue.id, 'b', key)
    t.equal(rest.statusCode, valid ? 200 : 400, `REST ${label}: ${valid ? rest.statusCode : show(rest)}`)
    if (!valid) t.match(rest.json().message, /idempotencyKey/)

    const sql = admin.query("SELECT hookpost.enqueue($1::bigint, 'b'::text, '{}'::jsonb, now(), $2::text) AS id", [sqlQueue.id, key])
    if (valid) t.ok((await sql).rows[0].id > 0, `SQL ${label} accepted`)
    else await t.rejects(sql, { code: '22023', message: /idempotency_key/ }, `SQL ${label} refused`)

    // a plain INSERT, as another application might write: refused the same way
    const insert = admin.query(`INSERT INTO hookpost.messages (queue_id, body, idempotency_key) VALUES ($1, $2, $3)
      ON CONFLICT (queue_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING`, [sqlQueue.id, 'plain', key])
    if (valid) await insert
    else await t.rejects(insert, { code: '23514', constraint: 'messages_idempotency_key_check', column: 'idempotency_key' }, `INSERT ${label} refused`)
  }
  const { rows } = await admin.query('SELECT count(*)::int AS n FROM hookpost.messages WHERE queue_id = $1', [sqlQueue.id])
  t.equal(rows[0].n, KEYS.filter(([, v]) => v).length, 'the valid keys: one message each, the plain INSERT a repeat of its key')
  t.equal((await admin.query("SELECT hookpost.enqueue($1::bigint, 'b'::text) AS id", [sqlQueue.id])).rows.length, 1, 'no key at all is fine')
})

t.test('enqueues under a held lock get their 503 within about one statement timeout, not one per batch ahead (attack finding)', async (t) => {
  const { app, url } = await testApp(t, { db: { statementTimeoutMs: SHORT_TIMEOUT_MS } })
  const q = await post(app, '/queues', { name: 'stall', callbackUrl: 'http://127.0.0.1:9/x' })
  const admin = testPool(t, url)
  const lock = await holdLock(t, url, 'LOCK TABLE hookpost.messages IN ACCESS EXCLUSIVE MODE')
  const timed = async (body: string): Promise<{ ms: number, code: string, body: string }> => {
    const at = Date.now()
    const r = await enqueue(app, q.id, body)
    return { ms: Date.now() - at, code: r.json().code, body }
  }
  // one statement waits on the lock; 1,100 more queue behind it: three batches' worth (500 a statement)
  const lone = timed('lone')
  await eventually(async () => (await lockWaiters(admin, dbName(url))).length === 1)
  const replies = await Promise.all([lone, ...Array.from({ length: 1100 }, async (_, i) => await timed(`q${i}`))])
  await lock.release()
  const slowest = Math.max(...replies.map(r => r.ms))
  t.ok(replies.every(r => NOT_WRITTEN.has(r.code)), 'each a 503 that nothing was written')
  // the statement in flight runs out its timeout, and the queued requests are answered with it; before
  // the fix each batch was sent in turn and waited out a timeout of its own (about 4 s here)
  t.ok(slowest < 2 * SHORT_TIMEOUT_MS + 500, `the slowest reply came after ${slowest} ms`)
  await eventually(async () => await insertsSettled(admin, dbName(url)))
  t.equal((await admin.query('SELECT count(*)::int AS n FROM hookpost.messages')).rows[0].n, 0, 'and none was written')
})

t.test('attack round: a flush written again after its answer was lost logs each call once', async (t) => {
  // the completer retries a statement whose commit landed but whose answer a stalled database lost:
  // the same outcomes, written twice
  const pool = testPool(t, await testDatabase(t))
  const { rows: [q] } = await pool.query(`INSERT INTO hookpost.queues (name, callback_url)
    VALUES ('once', 'http://127.0.0.1:9/') RETURNING id`)
  await pool.query('INSERT INTO hookpost.messages (queue_id, body) SELECT $1, \'x\' FROM generate_series(1, 3)', [q.id])
  const { rows } = await pool.query<ClaimResultRow>(claim(10, 60_000, 'w', []))
  t.equal(rows.length, 3)
  // two successes and a failure to retry
  const batch: Completion[] = rows.map((r, i) => completion(Number(r.id), r.claimToken, Number(q.id),
    i < 2 ? ok() : fail(500), { retryAt: i === 2 ? new Date(Date.now() + 60_000) : null }))
  await pool.query(complete(batch, 'w'))
  await pool.query(complete(batch, 'w'))
  const { rows: counts } = await pool.query(`SELECT m.id, m.attempts, (SELECT count(*)::int FROM hookpost.attempts a
    WHERE a.message_id = m.id) AS logged FROM hookpost.messages m WHERE m.queue_id = $1 ORDER BY m.id`, [q.id])
  t.same(counts.map(r => [r.attempts, r.logged]), [[1, 1], [1, 1], [1, 1]], 'one attempt counted and logged per call')

  // a second call of the message, a duplicate after a lease ran out, is a call of its own: logged too
  const again = { ...batch[0]!, result: { ...batch[0]!.result, startedAt: new Date(Date.now() + 1000) } }
  await pool.query(complete([again], 'w'))
  const { rows: [first] } = await pool.query(`SELECT attempts, (SELECT count(*)::int FROM hookpost.attempts
    WHERE message_id = $1) AS logged FROM hookpost.messages WHERE id = $1`, [batch[0]!.id])
  t.same([first.attempts, first.logged], [2, 2], 'a later call of a sent message is logged')
})

t.test('attack round: rows a claim held for a probe are made due once the circuit has closed', async (t) => {
  // with two processes, a claim that read the circuit as open held its rows just after the closing flush
  // looked for them: they waited the probe's lease (a minute). The worker asks again a second later
  const pool = testPool(t, await testDatabase(t))
  const { rows: [closed, open] } = await pool.query(`INSERT INTO hookpost.queues (name, callback_url, circuit_state)
    VALUES ('closed', 'http://127.0.0.1:9/', 'closed'), ('open', 'http://127.0.0.1:9/', 'open') RETURNING id`)
  // held for the lease (timeout 30 s + slack), and one scheduled for tomorrow
  await pool.query(`INSERT INTO hookpost.messages (queue_id, body, "when")
    SELECT q, 'x', now() + interval '50 seconds' FROM unnest($1::bigint[]) q, generate_series(1, 3)`, [[closed.id, open.id]])
  await pool.query('INSERT INTO hookpost.messages (queue_id, body, "when") VALUES ($1, \'later\', now() + interval \'1 day\')',
    [closed.id])
  const { rowCount } = await pool.query(unholdClosedCircuit(Number(closed.id)))
  t.equal(rowCount, 3, 'the held rows of the closed circuit')
  t.equal((await pool.query(unholdClosedCircuit(Number(open.id)))).rowCount, 0, 'none while the circuit is open')
  const { rows } = await pool.query(`SELECT body, queue_id = $1 AS closed, run_at <= now() AS due
    FROM hookpost.messages ORDER BY id`, [closed.id])
  t.same(rows.map(r => [r.closed, r.due]), [[true, true], [true, true], [true, true], [false, false], [false, false],
    [false, false], [true, false]], 'due now: the held rows of the closed circuit only, not what is scheduled later')
})
