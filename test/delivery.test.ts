// Delivery end to end: a real server's engine, real receivers. Tests wait on the worker's signals
// (lib/delivery/worker.ts WorkerEvents) and on the receivers, not on the clock.
import t from 'tap'
import type { Worker } from '../lib/delivery/worker.js'
import type { Completion } from '../lib/delivery/sql.js'
import { deliveringApp, eventually, post, receiver } from './helpers.js'
import { signal, workerAsleep } from './signals.js'

/** resolves when the outcome of this message's attempt is written */
const recorded = async (w: Worker, id: () => number, attempt = 1): Promise<void> => {
  await signal<[Completion[]]>(w, 'flushed', (b) => b.some(c => c.id === id() && c.attempt === attempt))
}
/** resolves when this message is written as dead */
const deathOf = async (w: Worker, id: () => number): Promise<void> => {
  await signal<[{ messageId: number }]>(w, 'dead', (d) => d.messageId === id())
}

// One database and app for the file (as test/helpers.ts gives a database per file), shared by the tests
// that each work on queues of their own; a test that fills the slots or watches the worker's sleep
// gets its own. They run side by side: nothing here waits on the clock, so they do not slow each other.
t.jobs = 4
let shared: ReturnType<typeof deliveringApp> | undefined
const sharedApp = async (): ReturnType<typeof deliveringApp> => await (shared ??= deliveringApp(t))

t.test('the tutorial message is delivered: method, body, headers, content-type and ids as stored', async (t) => {
  const target = await receiver(t)
  const { app } = await sharedApp()
  const q = await post(app, '/queues', { name: 'tutorial', callbackUrl: `${target.url}/hook?x=1`, method: 'POST', headers: { 'X-Queue': 'q', 'Content-Type': 'application/vnd.test+json' }, maxRetries: 3 })
  let id = 0
  const written = recorded(app.delivery!.worker, () => id)
  const m = await post(app, '/messages', { queueId: q.id, body: '{"hello":  "world"}', headers: { 'x-message': 'm', 'x-queue': 'overridden' } })
  id = m.id
  const [r] = await target.waitFor(1)
  t.equal(r!.method, 'POST')
  t.equal(r!.url, '/hook?x=1')
  t.equal(r!.body, '{"hello":  "world"}', 'a string body is sent byte for byte')
  t.equal(r!.headers['content-type'], 'application/vnd.test+json', 'a stored content-type wins')
  t.equal(r!.headers['x-queue'], 'overridden', 'message headers override queue headers, case-insensitively')
  t.equal(r!.headers['x-message'], 'm')
  t.equal(r!.headers['x-hookpost-message-id'], String(m.id))
  t.equal(r!.headers['x-hookpost-attempt'], '1')
  t.match(r!.headers['user-agent'], /^hookpost\//)
  await written
  const done = (await app.inject({ url: `/messages/${m.id}` })).json()
  t.match(done, { failed: false, retries: 0, attempts: 1, lastStatus: 200, nextAttemptAt: null })
  t.not(done.sentAt, null)
})

t.test('JSON bodies, default content-type, other methods, GET without a body', async (t) => {
  const target = await receiver(t)
  const { app } = await sharedApp()
  const put = await post(app, '/queues', { name: 'put', callbackUrl: `${target.url}/put`, method: 'PUT' })
  const get = await post(app, '/queues', { name: 'get', callbackUrl: `${target.url}/get`, method: 'GET' })
  await post(app, '/messages', { queueId: put.id, body: { a: [1, 2], b: 'x' } })
  await post(app, '/messages', { queueId: get.id, body: 'ignored for GET' })
  const reqs = await target.waitFor(2)
  const p = reqs.find(r => r.url === '/put')!
  t.equal(p.method, 'PUT')
  t.same(JSON.parse(p.body), { a: [1, 2], b: 'x' })
  t.equal(p.headers['content-type'], 'application/json', 'content-type defaults to application/json')
  const g = reqs.find(r => r.url === '/get')!
  t.equal(g.method, 'GET')
  t.equal(g.body, '')
})

t.test('a delayed when is delivered at its time, not before', async (t) => {
  const target = await receiver(t)
  const { app } = await sharedApp()
  const q = await post(app, '/queues', { name: 'later', callbackUrl: target.url })
  const when = new Date(Date.now() + 1000)
  await post(app, '/messages', { queueId: q.id, body: 'x', when: when.toISOString() })
  const [r] = await target.waitFor(1, 5000)
  t.ok(r!.at >= when.getTime() - 5, `not early (${r!.at - when.getTime()} ms)`)
  t.ok(r!.at <= when.getTime() + 1000, `on time (${r!.at - when.getTime()} ms late)`)
})

t.test('retries follow the backoff within its jitter bounds; retries exhausted -> dead letter + DLQ', async (t) => {
  const failing = await receiver(t, (_r, res) => { res.statusCode = 500; res.end('boom '.repeat(2000)) })
  const dlqTarget = await receiver(t)
  const { app, pool } = await sharedApp()
  const worker = app.delivery!.worker
  const dlq = await post(app, '/queues', { name: 'dlq', callbackUrl: `${dlqTarget.url}/dlq` })
  const base = 100
  const q = await post(app, '/queues', { name: 'flaky', callbackUrl: failing.url, maxRetries: 3, backoffBaseMs: base, backoffMaxMs: 10_000, backoffJitter: 'equal', deadLetterQueueId: dlq.id })
  const retryAts: number[] = []
  let id = 0
  worker.on('failed', (e) => { if (e.messageId === id && e.retryAt !== null) retryAts.push(e.retryAt.getTime()) })
  const died = deathOf(worker, () => id)
  const m = await post(app, '/messages', { queueId: q.id, body: '{"order":1}', headers: { 'x-keep': 'me' } })
  id = m.id
  await died
  const reqs = failing.requests
  t.same(reqs.map(r => r.headers['x-hookpost-attempt']), ['1', '2', '3', '4'], 'maxRetries 3 = 4 attempts')
  t.ok(reqs.every(r => r.headers['x-hookpost-message-id'] === String(m.id)), 'the message id is stable across attempts')
  t.equal(retryAts.length, 3, 'a retry time for each failure but the last')
  for (let i = 1; i < 4; i++) {
    const full = base * 2 ** (i - 1)
    // equal jitter: at least half the exponential delay after the failure, at most all of it (and the
    // time to record the failure); the retry goes out at its time, not before
    const delay = retryAts[i - 1]! - reqs[i - 1]!.at
    t.ok(delay >= full / 2 && delay <= full + 1000,
      `retry ${i}: due ${delay} ms after the failure, jitter within [${full / 2}, ${full}]`)
    const late = reqs[i]!.at - retryAts[i - 1]!
    t.ok(late >= -5, `retry ${i} not before its time (${late} ms after)`)
  }
  // the DLQ copy is delivered, linked to the original
  const [copy] = await dlqTarget.waitFor(1)
  t.equal(copy!.body, '{"order":1}')
  t.equal(copy!.headers['x-keep'], 'me')
  t.equal(failing.requests.length, 4, 'no fifth attempt: the message was dead when its copy went out')
  const dead = (await app.inject({ url: `/messages/${m.id}` })).json()
  t.match(dead, { failed: true, sentAt: null, retries: 4, attempts: 4, lastStatus: 500, lastError: 'HTTP 500', nextAttemptAt: null })
  const dl = await pool.query('SELECT * FROM hookpost.dead_letters WHERE message_id = $1', [m.id])
  t.equal(dl.rowCount, 1)
  t.equal(dl.rows[0].attempts, 4)
  t.equal(dl.rows[0].last_status, 500)
  const copies = (await app.inject({ url: `/messages?where.deadLetterOf.eq=${m.id}` })).json()
  t.equal(copies.length, 1)
  t.equal(copies[0].queueId, dlq.id)
  t.equal(dl.rows[0].dlq_message_id, copies[0].id)

  // the attempt log
  const attempts = (await app.inject({ url: `/messages/${m.id}/attempts` })).json()
  t.equal(attempts.length, 4)
  t.same(attempts.map((a: any) => a.attempt), [1, 2, 3, 4])
  t.ok(attempts.every((a: any) => a.statusCode === 500 && a.errorKind === 'http' && a.durationMs >= 0 && Date.parse(a.startedAt) > 0))
  t.equal(attempts[0].responseBody.length, 4096, 'the first 4 KB of the response are kept')
  t.equal((await app.inject({ url: '/messages/999999/attempts' })).statusCode, 404)
})

t.test('maxRetries 0 means exactly one attempt', async (t) => {
  const failing = await receiver(t, (_r, res) => { res.statusCode = 503; res.end() })
  const { app } = await sharedApp()
  const q = await post(app, '/queues', { name: 'once', callbackUrl: failing.url, maxRetries: 0, backoffBaseMs: 10 })
  let id = 0
  const died = deathOf(app.delivery!.worker, () => id)
  const m = await post(app, '/messages', { queueId: q.id, body: 'x' })
  id = m.id
  await died
  t.equal((await app.inject({ url: `/messages/${m.id}` })).json().failed, true)
  t.equal(failing.requests.length, 1)
})

t.test('Retry-After on 429 is honoured, and capped by backoffMaxMs', async (t) => {
  let n = 0
  const target = await receiver(t, (_r, res) => {
    n++
    if (n === 1) { res.statusCode = 429; res.setHeader('retry-after', '1'); return res.end() }
    if (n === 2) { res.statusCode = 503; res.setHeader('retry-after', '3600'); return res.end() }
    res.end('ok')
  })
  const { app } = await sharedApp()
  const worker = app.delivery!.worker
  const q = await post(app, '/queues', { name: 'ra', callbackUrl: target.url, maxRetries: 5, backoffBaseMs: 10, backoffMaxMs: 1500, backoffJitter: 'none' })
  const retryAts: number[] = []
  worker.on('retried', (c) => { if (c.queueId === q.id) retryAts.push(c.retryAt!.getTime()) })
  const twice = signal(worker, 'retried', () => retryAts.length === 2)
  await post(app, '/messages', { queueId: q.id, body: 'x' })
  await twice
  const reqs = target.requests
  const first = retryAts[0]! - reqs[0]!.at
  const second = retryAts[1]! - reqs[1]!.at
  t.ok(first >= 1000 && first < 2000, `Retry-After: 1 sets the retry 1 s after the 429 (${first} ms)`)
  const gap = reqs[1]!.at - reqs[0]!.at
  t.ok(reqs[1]!.at >= retryAts[0]! - 5, `and it went out then, not before (${gap} ms after the first)`)
  t.ok(second >= 1500 && second < 2500, `Retry-After: 3600 capped at backoffMaxMs 1500 (${second} ms)`)
})

t.test('redrive: one failed message, then a whole queue', async (t) => {
  let healthy = false
  const target = await receiver(t, (_r, res) => { res.statusCode = healthy ? 200 : 500; res.end() })
  const { app } = await sharedApp()
  const worker = app.delivery!.worker
  const q = await post(app, '/queues', { name: 'rd', callbackUrl: target.url, maxRetries: 0 })
  const ms: any[] = []
  let deaths = 0
  // the worker is shared with the other tests here: only this queue's deaths count
  const allDead = signal(worker, 'dead', (d: { queueId: number }) => d.queueId === q.id && ++deaths === 3)
  for (let i = 0; i < 3; i++) ms.push(await post(app, '/messages', { queueId: q.id, body: String(i) }))
  await allDead
  const count = async (where: string): Promise<unknown> =>
    (await app.inject({ url: `/messages?where.queueId.eq=${q.id}&${where}&totalCount=true` })).headers['x-total-count']
  t.equal(await count('where.failed.eq=true'), '3')
  const notFailed = await post(app, '/messages', { queueId: q.id, body: 'pending', when: new Date(Date.now() + 3_600_000).toISOString() })
  t.equal((await app.inject({ method: 'POST', url: `/messages/${notFailed.id}/retry` })).statusCode, 409, 'only failed messages can be retried')
  healthy = true
  const one = recorded(worker, () => ms[0].id, 2)
  const r = await app.inject({ method: 'POST', url: `/messages/${ms[0].id}/retry` })
  t.equal(r.statusCode, 200, r.body)
  t.match(r.json(), { failed: false, retries: 0 })
  await one
  t.not((await app.inject({ url: `/messages/${ms[0].id}` })).json().sentAt, null)
  const rest = Promise.all([recorded(worker, () => ms[1].id, 2), recorded(worker, () => ms[2].id, 2)])
  const bulk = await app.inject({ method: 'POST', url: `/queues/${q.id}/redrive` })
  t.same(bulk.json(), { queueId: q.id, requeued: 2 })
  await rest
  t.equal(await count('where.sentAt.neq=null'), '3')
  t.equal((await app.inject({ method: 'POST', url: '/queues/999/redrive' })).statusCode, 404)
})

/** A promise that resolves when the test ends: a call held on it hangs for the whole test, however long. */
const held = async (t: { teardown: (fn: () => void) => void }): Promise<void> =>
  await new Promise<void>((resolve) => t.teardown(resolve))

t.test('a slow endpoint does not delay another queue', async (t) => {
  // the slow calls outlast the test (however loaded the machine), so the share is measured with all
  // of them hanging
  const slow = await receiver(t, async (_r, res) => { await held(t); res.end() })
  const fast = await receiver(t)
  // no grace at close: the slow calls are cut off rather than waited for
  const { app } = await deliveringApp(t, { hooks: { concurrency: 8, shutdownGraceMs: 0 } })
  const sq = await post(app, '/queues', { name: 'slow', callbackUrl: slow.url, timeoutMs: 10_000 })
  const fq = await post(app, '/queues', { name: 'fast', callbackUrl: fast.url })
  for (let i = 0; i < 40; i++) await post(app, '/messages', { queueId: sq.id, body: String(i) })
  await slow.waitFor(7)
  const t0 = Date.now()
  await post(app, '/messages', { queueId: fq.id, body: 'quick' })
  // the slow calls never end while the test runs: were the fast queue stuck behind them, it would get
  // nothing at all, so its delivery is the proof (no time window: a loaded machine would flake it)
  await fast.waitFor(1, 10_000)
  t.pass(`fast queue delivered in ${Date.now() - t0} ms while the slow one holds its slots`)
  t.ok(slow.requests.length <= 7, 'the slow queue is held to its share of the slots')
})

t.test('while one queue holds its share of the slots, others are served: scheduled, backdated and plain-SQL messages', async (t) => {
  // the slow calls outlast the test, so the slow queue's share is measured with all its calls hanging
  const slow = await receiver(t, async (_r, res) => { await held(t); res.end() })
  const fast = await receiver(t)
  // polling far away: only NOTIFY and the worker's own due-time sleep can deliver in time
  const { app, pool } = await deliveringApp(t, { hooks: { concurrency: 8, pollMs: 30_000, shutdownGraceMs: 0 } })
  const sq = await post(app, '/queues', { name: 'slow', callbackUrl: slow.url, timeoutMs: 10_000 })
  const fq = await post(app, '/queues', { name: 'fast', callbackUrl: fast.url })
  const sleeping = workerAsleep(app.delivery!.worker)
  // one statement: the API path is not what this test is about
  await pool.query('INSERT INTO hookpost.messages (queue_id, body) SELECT $1, g::text FROM generate_series(1, 400) g',
    [sq.id])
  await slow.waitFor(7)
  await sleeping // past its skipping claims, asleep

  const t0 = Date.now()
  await post(app, '/messages', { queueId: fq.id, body: 'scheduled', when: new Date(t0 + 1200).toISOString() })
  const [scheduled] = await fast.waitFor(1, 5000)
  t.equal(scheduled!.body, 'scheduled')
  const after = scheduled!.at - t0
  // not before its time; and long before the 30 s poll, so by the worker's own due-time sleep
  t.ok(after >= 1150 && after < 5000, `a scheduled message arrived ${after} ms after enqueue, due at 1200`)

  const t1 = Date.now()
  await post(app, '/messages', { queueId: fq.id, body: 'backdated', when: new Date(t1 - 3_600_000).toISOString() })
  const [, backdated] = await fast.waitFor(2, 5000)
  t.equal(backdated!.body, 'backdated')
  t.ok(backdated!.at - t1 < 5000, `a message due an hour ago arrived in ${backdated!.at - t1} ms (poll: 30 s)`)

  const t2 = Date.now()
  await pool.query('INSERT INTO hookpost.messages (queue_id, body) VALUES ($1, $2)', [fq.id, 'from sql'])
  const [, , fromSql] = await fast.waitFor(3, 5000)
  t.equal(fromSql!.body, 'from sql')
  t.ok(fromSql!.at - t2 < 5000, `a plain-SQL row arrived in ${fromSql!.at - t2} ms (poll: 30 s)`)
  t.ok(slow.requests.length <= 7, 'the slow queue stayed at its share')
})

t.test('after an idle period a burst is picked up at once (NOTIFY, not polling)', async (t) => {
  const target = await receiver(t)
  const { app } = await deliveringApp(t, { hooks: { pollMs: 60_000 } })
  const q = await post(app, '/queues', { name: 'burst', callbackUrl: target.url })
  const sleeping = workerAsleep(app.delivery!.worker)
  app.delivery!.worker.notify() // a pass now, whatever it was doing: it ends asleep
  t.same(await sleeping, [60_000], 'the worker sleeps the full poll interval')
  const t0 = Date.now()
  await Promise.all(Array.from({ length: 200 }, async (_, i) => await post(app, '/messages', { queueId: q.id, body: String(i) })))
  await target.waitFor(200, 5000)
  t.ok(Date.now() - t0 < 5000, `200 delivered ${Date.now() - t0} ms after the burst began`)
  t.equal(new Set(target.requests.map(r => r.body)).size, 200)
})

t.test('a row inserted with plain SQL is delivered without any API call', async (t) => {
  const target = await receiver(t)
  const { app, pool } = await sharedApp()
  const q = await post(app, '/queues', { name: 'sql', callbackUrl: target.url })
  const t0 = Date.now()
  await pool.query('INSERT INTO hookpost.messages (queue_id, body) VALUES ($1, $2)', [q.id, 'from sql'])
  const [r] = await target.waitFor(1, 3000)
  t.equal(r!.body, 'from sql')
  t.ok(r!.at - t0 < 1000, `within ${r!.at - t0} ms of the commit`)
})

t.test('redirects are not followed; timeouts and refused connections are recorded', async (t) => {
  const redirect = await receiver(t, (_r, res) => { res.statusCode = 302; res.setHeader('location', 'http://127.0.0.1:9/elsewhere'); res.end() })
  const hang = await receiver(t, () => {})
  const { app } = await sharedApp()
  // only the hanging receiver needs a short timeout: on a loaded CI machine a 302 once took longer than 300 ms
  const cases = [
    { url: redirect.url, kind: 'http', status: 302, timeoutMs: 10_000 },
    { url: hang.url, kind: 'timeout', status: null, timeoutMs: 300 },
    { url: 'http://127.0.0.1:9/closed', kind: 'connect', status: null, timeoutMs: 10_000 }
  ]
  for (const [i, c] of cases.entries()) {
    const q = await post(app, '/queues', { name: `e${i}`, callbackUrl: c.url, maxRetries: 0, timeoutMs: c.timeoutMs })
    const m = await post(app, '/messages', { queueId: q.id, body: 'x' })
    const attempts = await eventually(async () => { const a = (await app.inject({ url: `/messages/${m.id}/attempts` })).json(); return a.length > 0 && a })
    t.equal(attempts[0].errorKind, c.kind, `${c.kind}: ${attempts[0].error}`)
    t.equal(attempts[0].statusCode, c.status)
  }
  t.equal(redirect.requests.length, 1)
})
