import t from 'tap'
import { deliveringApp, eventually, post, receiver, sleep } from './helpers.js'

t.test('the tutorial message is delivered: method, body, headers, content-type and ids as stored', async (t) => {
  const target = await receiver(t)
  const { app } = await deliveringApp(t)
  const q = await post(app, '/queues', { name: 'tutorial', callbackUrl: `${target.url}/hook?x=1`, method: 'POST', headers: { 'X-Queue': 'q', 'Content-Type': 'application/vnd.test+json' }, maxRetries: 3 })
  const m = await post(app, '/messages', { queueId: q.id, body: '{"hello":  "world"}', headers: { 'x-message': 'm', 'x-queue': 'overridden' } })
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
  const done = await eventually(async () => { const x = (await app.inject({ url: `/messages/${m.id}` })).json(); return x.sentAt !== null && x })
  t.match(done, { failed: false, retries: 0, attempts: 1, lastStatus: 200, nextAttemptAt: null })
})

t.test('JSON bodies, default content-type, other methods, GET without a body', async (t) => {
  const target = await receiver(t)
  const { app } = await deliveringApp(t)
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
  const { app } = await deliveringApp(t)
  const q = await post(app, '/queues', { name: 'later', callbackUrl: target.url })
  const when = new Date(Date.now() + 1500)
  await post(app, '/messages', { queueId: q.id, body: 'x', when: when.toISOString() })
  const [r] = await target.waitFor(1, 5000)
  t.ok(r!.at >= when.getTime() - 5, `not early (${r!.at - when.getTime()} ms)`)
  t.ok(r!.at <= when.getTime() + 500, `on time (${r!.at - when.getTime()} ms late)`)
})

t.test('retries follow the backoff within its jitter bounds; retries exhausted -> dead letter + DLQ', async (t) => {
  const failing = await receiver(t, (_r, res) => { res.statusCode = 500; res.end('boom '.repeat(2000)) })
  const dlqTarget = await receiver(t)
  const { app, pool } = await deliveringApp(t)
  const dlq = await post(app, '/queues', { name: 'dlq', callbackUrl: `${dlqTarget.url}/dlq` })
  const base = 200
  const q = await post(app, '/queues', { name: 'flaky', callbackUrl: failing.url, maxRetries: 3, backoffBaseMs: base, backoffMaxMs: 10_000, backoffJitter: 'equal', deadLetterQueueId: dlq.id })
  const m = await post(app, '/messages', { queueId: q.id, body: '{"order":1}', headers: { 'x-keep': 'me' } })
  const reqs = await failing.waitFor(4, 10_000)
  t.same(reqs.map(r => r.headers['x-hookpost-attempt']), ['1', '2', '3', '4'], 'maxRetries 3 = 4 attempts')
  t.ok(reqs.every(r => r.headers['x-hookpost-message-id'] === String(m.id)), 'the message id is stable across attempts')
  for (let i = 1; i < 4; i++) {
    const gap = reqs[i]!.at - reqs[i - 1]!.at
    const full = base * 2 ** (i - 1)
    // equal jitter: between half and all of the exponential delay (plus scheduling slack)
    t.ok(gap >= full / 2 - 15 && gap <= full + 400, `retry ${i}: ${gap} ms within [${full / 2}, ${full}]`)
  }
  // the DLQ copy is delivered, linked to the original
  const [copy] = await dlqTarget.waitFor(1)
  t.equal(copy!.body, '{"order":1}')
  t.equal(copy!.headers['x-keep'], 'me')
  await sleep(300)
  t.equal(failing.requests.length, 4, 'no fifth attempt')
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
  const { app } = await deliveringApp(t)
  const q = await post(app, '/queues', { name: 'once', callbackUrl: failing.url, maxRetries: 0, backoffBaseMs: 10 })
  const m = await post(app, '/messages', { queueId: q.id, body: 'x' })
  await eventually(async () => (await app.inject({ url: `/messages/${m.id}` })).json().failed === true)
  await sleep(200)
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
  const { app } = await deliveringApp(t)
  const q = await post(app, '/queues', { name: 'ra', callbackUrl: target.url, maxRetries: 5, backoffBaseMs: 10, backoffMaxMs: 1500, backoffJitter: 'none' })
  await post(app, '/messages', { queueId: q.id, body: 'x' })
  const reqs = await target.waitFor(3, 8000)
  const first = reqs[1]!.at - reqs[0]!.at
  const second = reqs[2]!.at - reqs[1]!.at
  t.ok(first >= 990 && first < 1600, `waited for Retry-After: 1 (${first} ms)`)
  t.ok(second >= 1490 && second < 2200, `Retry-After: 3600 capped at backoffMaxMs 1500 (${second} ms)`)
})

t.test('redrive: one failed message, then a whole queue', async (t) => {
  let healthy = false
  const target = await receiver(t, (_r, res) => { res.statusCode = healthy ? 200 : 500; res.end() })
  const { app } = await deliveringApp(t)
  const q = await post(app, '/queues', { name: 'rd', callbackUrl: target.url, maxRetries: 0 })
  const ms: any[] = []
  for (let i = 0; i < 3; i++) ms.push(await post(app, '/messages', { queueId: q.id, body: String(i) }))
  await eventually(async () => (await app.inject({ url: `/messages?where.failed.eq=true&totalCount=true` })).headers['x-total-count'] === '3')
  const notFailed = await post(app, '/messages', { queueId: q.id, body: 'pending', when: new Date(Date.now() + 3_600_000).toISOString() })
  t.equal((await app.inject({ method: 'POST', url: `/messages/${notFailed.id}/retry` })).statusCode, 409, 'only failed messages can be retried')
  healthy = true
  const r = await app.inject({ method: 'POST', url: `/messages/${ms[0].id}/retry` })
  t.equal(r.statusCode, 200, r.body)
  t.match(r.json(), { failed: false, retries: 0 })
  await eventually(async () => (await app.inject({ url: `/messages/${ms[0].id}` })).json().sentAt !== null)
  const bulk = await app.inject({ method: 'POST', url: `/queues/${q.id}/redrive` })
  t.same(bulk.json(), { queueId: q.id, requeued: 2 })
  await eventually(async () => (await app.inject({ url: `/messages?where.sentAt.neq=null&totalCount=true` })).headers['x-total-count'] === '3')
  t.equal((await app.inject({ method: 'POST', url: '/queues/999/redrive' })).statusCode, 404)
})

t.test('a slow endpoint does not delay another queue', async (t) => {
  const slow = await receiver(t, async (_r, res) => { await sleep(3000); res.end() })
  const fast = await receiver(t)
  const { app } = await deliveringApp(t, { hooks: { concurrency: 8 } })
  const sq = await post(app, '/queues', { name: 'slow', callbackUrl: slow.url, timeoutMs: 10_000 })
  const fq = await post(app, '/queues', { name: 'fast', callbackUrl: fast.url })
  for (let i = 0; i < 40; i++) await post(app, '/messages', { queueId: sq.id, body: String(i) })
  await slow.waitFor(7)
  const t0 = Date.now()
  await post(app, '/messages', { queueId: fq.id, body: 'quick' })
  await fast.waitFor(1, 2000)
  t.ok(Date.now() - t0 < 1000, `fast queue delivered in ${Date.now() - t0} ms while the slow one holds its slots`)
  t.ok(slow.requests.length <= 7, 'the slow queue is held to its share of the slots')
})

t.test('while one queue holds its share of the slots, others are served: scheduled, backdated and plain-SQL messages', async (t) => {
  // the slow calls outlast the test, so the slow queue's share is measured with all its calls hanging
  const slow = await receiver(t, async (_r, res) => { await sleep(6000); res.end() })
  const fast = await receiver(t)
  // polling far away: only NOTIFY and the worker's own due-time sleep can deliver in time
  const { app, pool } = await deliveringApp(t, { hooks: { concurrency: 8, pollMs: 30_000 } })
  const sq = await post(app, '/queues', { name: 'slow', callbackUrl: slow.url, timeoutMs: 10_000 })
  const fq = await post(app, '/queues', { name: 'fast', callbackUrl: fast.url })
  for (let i = 0; i < 400; i++) await post(app, '/messages', { queueId: sq.id, body: String(i) })
  await slow.waitFor(7)
  await sleep(300) // the worker has run its skipping claims by now and sleeps

  const t0 = Date.now()
  await post(app, '/messages', { queueId: fq.id, body: 'scheduled', when: new Date(t0 + 1200).toISOString() })
  const [scheduled] = await fast.waitFor(1, 5000)
  t.equal(scheduled!.body, 'scheduled')
  t.ok(scheduled!.at - t0 >= 1150 && scheduled!.at - t0 < 1900, `a scheduled message arrived ${scheduled!.at - t0} ms after enqueue, due at 1200`)

  const t1 = Date.now()
  await post(app, '/messages', { queueId: fq.id, body: 'backdated', when: new Date(t1 - 3_600_000).toISOString() })
  const [, backdated] = await fast.waitFor(2, 5000)
  t.equal(backdated!.body, 'backdated')
  t.ok(backdated!.at - t1 < 1000, `a message due an hour ago arrived in ${backdated!.at - t1} ms`)

  const t2 = Date.now()
  await pool.query('INSERT INTO hookpost.messages (queue_id, body) VALUES ($1, $2)', [fq.id, 'from sql'])
  const [, , fromSql] = await fast.waitFor(3, 5000)
  t.equal(fromSql!.body, 'from sql')
  t.ok(fromSql!.at - t2 < 1000, `a plain-SQL row arrived in ${fromSql!.at - t2} ms`)
  t.ok(slow.requests.length <= 7, 'the slow queue stayed at its share')
})

t.test('after an idle period a burst is picked up at once (NOTIFY, not polling)', async (t) => {
  const target = await receiver(t)
  const { app } = await deliveringApp(t, { hooks: { pollMs: 60_000 } })
  const q = await post(app, '/queues', { name: 'burst', callbackUrl: target.url })
  await sleep(1500)
  const t0 = Date.now()
  await Promise.all(Array.from({ length: 200 }, async (_, i) => await post(app, '/messages', { queueId: q.id, body: String(i) })))
  await target.waitFor(200, 5000)
  t.ok(Date.now() - t0 < 5000, `200 delivered ${Date.now() - t0} ms after the burst began`)
  t.equal(new Set(target.requests.map(r => r.body)).size, 200)
})

t.test('a row inserted with plain SQL is delivered without any API call', async (t) => {
  const target = await receiver(t)
  const { app, pool } = await deliveringApp(t, { hooks: { pollMs: 60_000 } })
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
  const { app } = await deliveringApp(t)
  const cases = [
    { url: redirect.url, kind: 'http', status: 302 },
    { url: hang.url, kind: 'timeout', status: null },
    { url: 'http://127.0.0.1:9/closed', kind: 'connect', status: null }
  ]
  for (const [i, c] of cases.entries()) {
    const q = await post(app, '/queues', { name: `e${i}`, callbackUrl: c.url, maxRetries: 0, timeoutMs: 300 })
    const m = await post(app, '/messages', { queueId: q.id, body: 'x' })
    const attempts = await eventually(async () => { const a = (await app.inject({ url: `/messages/${m.id}/attempts` })).json(); return a.length > 0 && a })
    t.equal(attempts[0].errorKind, c.kind, `${c.kind}: ${attempts[0].error}`)
    t.equal(attempts[0].statusCode, c.status)
  }
  t.equal(redirect.requests.length, 1)
})
