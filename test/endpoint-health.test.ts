// Endpoint health against a real server and real receivers: a paused queue parks its messages while
// others flow, and delivers them in order when resumed; a 410 Gone disables a queue, parks its messages
// (not failed, budget untouched) and tells a subscriber of hookpost.*; enabling delivers what was parked;
// a dead letter is told too.
import t from 'tap'
import { deliveringApp, eventually, post, receiver } from './helpers.js'

t.test('a paused queue parks its messages while others flow; resuming delivers them in order', async (t) => {
  const target = await receiver(t)
  const { app, pool } = await deliveringApp(t)
  const a = await post(app, '/queues', { name: 'a', callbackUrl: `${target.url}/a` })
  const b = await post(app, '/queues', { name: 'b', callbackUrl: `${target.url}/b` })
  t.equal((await post(app, `/queues/${a.id}`, { paused: true }, 'PUT')).paused, true)
  const parked = []
  for (let i = 1; i <= 3; i++) parked.push(await post(app, '/messages', { queueId: a.id, body: `a${i}` }))
  await post(app, '/messages', { queueId: b.id, body: 'b1' })
  const [first] = await target.waitFor(1)
  t.equal(first!.url, '/b', 'the other queue flows')
  // the claim that met them parked them: not attempted, not failed, no retry spent
  await eventually(async () => (await pool.query("SELECT count(*)::int AS n FROM hookpost.messages WHERE run_at = 'infinity'")).rows[0].n === 3)
  const m = (await app.inject({ url: `/messages/${parked[0].id}` })).json()
  t.match(m, { parked: true, nextAttemptAt: null, failed: false, retries: 0, attempts: 0 })
  t.equal(target.requests.length, 1)
  const listed = (await app.inject({ url: '/queues?where.paused.eq=true' })).json()
  t.same(listed.map((q: any) => q.id), [a.id])

  t.equal((await post(app, `/queues/${a.id}`, { paused: false }, 'PUT')).paused, false)
  const got = await target.waitFor(4)
  t.same(got.slice(1).map(r => r.body), ['a1', 'a2', 'a3'], 'delivered, in order')
})

t.test('a message parked as its queue was resumed is unparked by the next reaper pass', async (t) => {
  const { app, pool } = await deliveringApp(t)
  const q = await post(app, '/queues', { name: 'r', callbackUrl: 'http://127.0.0.1:9/r' })
  // what a claim that began before the resume leaves behind when it commits after it
  const { rows: [m] } = await pool.query("INSERT INTO hookpost.messages (queue_id, body, \"when\") VALUES ($1, 'x', '2999-01-01') RETURNING id", [q.id])
  await pool.query("UPDATE hookpost.messages SET run_at = 'infinity' WHERE id = $1", [m.id])
  t.equal(await app.delivery!.reaper.reap(), 0)
  const { rows: [after] } = await pool.query('SELECT run_at = "when" AS due FROM hookpost.messages WHERE id = $1', [m.id])
  t.equal(after.due, true, 'due again at its own when')
})

t.test('a 410 Gone disables the queue and parks its messages; a subscriber of hookpost.* hears of it; enabling delivers', async (t) => {
  let gone = true
  const target = await receiver(t, (r, res) => {
    res.statusCode = r.url === '/c' && gone ? 410 : r.url === '/d' ? 500 : 200
    res.end()
  })
  const { app, pool } = await deliveringApp(t)
  const ops = await post(app, '/queues', { name: 'ops', callbackUrl: `${target.url}/ops`, eventTypes: ['hookpost.*'] })
  const c = await post(app, '/queues', { name: 'c', callbackUrl: `${target.url}/c`, maxRetries: 5, backoffBaseMs: 0, backoffMaxMs: 0 })
  const c1 = await post(app, '/messages', { queueId: c.id, body: 'c1' })
  const event = await eventually(async () => target.requests.find(r => r.url === '/ops'))
  t.equal(event!.headers['x-hookpost-event-type'], 'hookpost.queue.disabled')
  t.match(JSON.parse(event!.body), { queueId: c.id, name: 'c', reason: /410 Gone/ })
  const disabled = (await app.inject({ url: `/queues/${c.id}` })).json()
  t.match(disabled, { disabled: true, disabledReason: /410 Gone/, disabledAt: String })
  await eventually(async () => (await app.inject({ url: `/messages/${c1.id}` })).json().parked)
  t.match((await app.inject({ url: `/messages/${c1.id}` })).json(), { failed: false, retries: 0, attempts: 1, lastStatus: 410 })
  // sent back as read (GET-then-PUT), a disabled queue keeps its reason
  const again = await post(app, `/queues/${c.id}`, { ...disabled, maxRetries: 6 }, 'PUT')
  t.match(again, { disabled: true, disabledReason: /410 Gone/, disabledAt: disabled.disabledAt, maxRetries: 6 })
  // still accepting, and parking
  const c2 = await post(app, '/messages', { queueId: c.id, body: 'c2' })
  await eventually(async () => (await app.inject({ url: `/messages/${c2.id}` })).json().parked)
  t.equal(target.requests.filter(r => r.url === '/c').length, 1, 'one call, then none')

  gone = false
  const enabled = await post(app, `/queues/${c.id}`, { disabled: false }, 'PUT')
  t.match(enabled, { disabled: false, disabledReason: null, disabledAt: null })
  await eventually(async () => target.requests.filter(r => r.url === '/c').length === 3)
  t.same(target.requests.filter(r => r.url === '/c').map(r => r.body), ['c1', 'c1', 'c2'], 'the parked ones, in order')
  await eventually(async () => (await pool.query('SELECT count(*)::int AS n FROM hookpost.messages WHERE queue_id = $1 AND sent_at IS NOT NULL', [c.id])).rows[0].n === 2)

  // a dead letter is told as well
  const d = await post(app, '/queues', { name: 'd', callbackUrl: `${target.url}/d`, maxRetries: 0 })
  const d1 = await post(app, '/messages', { queueId: d.id, body: 'd1' })
  const dead = await eventually(async () => target.requests.find(r => r.headers['x-hookpost-event-type'] === 'hookpost.message.dead_lettered'))
  t.match(JSON.parse(dead!.body), { messageId: d1.id, queueId: d.id, attempts: 1, lastStatus: 500 })
  t.equal(ops.id > 0, true)
  const metrics = (await app.inject({ url: '/metrics' })).body
  t.match(metrics, /hookpost_operational_events_total\{type="hookpost.queue.disabled"\} 1/)
  t.match(metrics, /hookpost_operational_events_total\{type="hookpost.message.dead_lettered"\} 1/)
})

t.test('a 429 with Retry-After holds the whole queue until then, while others flow', async (t) => {
  let first = true
  const target = await receiver(t, (r, res) => {
    if (r.url === '/e' && first) {
      first = false
      res.writeHead(429, { 'retry-after': '1' })
    }
    res.end()
  })
  const { app } = await deliveringApp(t)
  const e = await post(app, '/queues', { name: 'e', callbackUrl: `${target.url}/e`, backoffBaseMs: 0, backoffMaxMs: 60_000 })
  const f = await post(app, '/queues', { name: 'f', callbackUrl: `${target.url}/f` })
  await post(app, '/messages', { queueId: e.id, body: 'e1' })
  const held = await eventually(async () => {
    const q = (await app.inject({ url: `/queues/${e.id}` })).json()
    return q.heldUntil !== null && q
  })
  const asked = target.requests.find(r => r.url === '/e')!.at
  t.ok(new Date(held.heldUntil).getTime() - asked >= 900, `held until ${held.heldUntil}`)
  // calls in flight when the 429 came back cannot be recalled: these come after it
  await post(app, '/messages', { queueId: e.id, body: 'e2' })
  await post(app, '/messages', { queueId: e.id, body: 'e3' })
  await post(app, '/messages', { queueId: f.id, body: 'f1' })
  await eventually(async () => target.requests.some(r => r.url === '/f'))
  t.equal(target.requests.filter(r => r.url === '/e').length, 1, 'nothing more to e while held, f flows')
  const got = await target.waitFor(5)
  const later = got.filter(r => r.url === '/e').slice(1)
  t.same(later.map(r => r.body).sort(), ['e1', 'e2', 'e3'], 'the held messages, then')
  t.ok(later.every(r => r.at - asked >= 900), `none before the second asked for: ${later.map(r => r.at - asked).join(', ')} ms`)
})

t.test('attack round: no alert loop through a dead-letter queue; no URL in the reason; a pause stops what waits; hookpost.* is reserved', async (t) => {
  const target = await receiver(t, (r, res) => {
    res.statusCode = ['/alerts', '/alerts-dlq', '/bad'].includes(r.url) ? 500 : r.url.startsWith('/gone') ? 410 : 200
    res.end()
  })
  const { app, pool } = await deliveringApp(t)
  const dlq = await post(app, '/queues', { name: 'alerts-dlq', callbackUrl: `${target.url}/alerts-dlq`, maxRetries: 0 })
  await post(app, '/queues', { name: 'alerts', callbackUrl: `${target.url}/alerts`, eventTypes: ['hookpost.*'], maxRetries: 0, deadLetterQueueId: dlq.id })
  const bad = await post(app, '/queues', { name: 'bad', callbackUrl: `${target.url}/bad`, maxRetries: 0 })
  await post(app, '/messages', { queueId: bad.id, body: 'x' })
  // the original dies (one event); the alert about it dies on alerts; its copy dies on alerts-dlq
  await eventually(async () => (await pool.query('SELECT count(*)::int AS n FROM hookpost.messages WHERE queue_id = $1 AND failed', [dlq.id])).rows[0].n === 1)
  await app.delivery!.worker.flush()
  const { rows: [n] } = await pool.query("SELECT count(*)::int AS n FROM hookpost.events WHERE type = 'hookpost.message.dead_lettered'")
  t.equal(n.n, 1, 'one event, for the original only')

  // a long callback URL with credentials: disabled all the same, and the URL is told to nobody
  const url = `${target.url.replace('http://', 'http://user:p4ssw0rd@')}/gone?token=SECRET${'x'.repeat(1000)}`
  const gone = await post(app, '/queues', { name: 'gone', callbackUrl: url })
  await post(app, '/messages', { queueId: gone.id, body: 'g' })
  const q = await eventually(async () => { const x = (await app.inject({ url: `/queues/${gone.id}` })).json(); return x.disabled && x })
  t.equal(q.disabledReason, 'the endpoint answered 410 Gone')
  const told = await eventually(async () => (await pool.query("SELECT payload::text AS p FROM hookpost.events WHERE type = 'hookpost.queue.disabled'")).rows[0])
  t.notMatch(told.p, /p4ssw0rd|SECRET/)

  // hookpost.* types and keys are hookpost's own
  for (const payload of [{ type: 'hookpost.queue.disabled', payload: {} }, { type: 'x.y', payload: {}, idempotencyKey: 'hookpost.message.dead_lettered:1:1' }]) {
    const res = await app.inject({ method: 'POST', url: '/events', payload })
    t.equal(res.statusCode, 400)
    t.match(res.json().message, /hookpost's own/)
  }
  await t.rejects(pool.query("SELECT hookpost.publish('hookpost.queue.disabled', '{}')"), { code: '22023' })
  await t.rejects(pool.query("SELECT hookpost.publish('x.y', '{}', '{}', now(), 'hookpost.x')"), { code: '22023' })
})

t.test('attack round: a pause takes back what a worker holds; only calls already in flight go out', async (t) => {
  const target = await receiver(t, async (_r, res) => {
    await new Promise(resolve => setTimeout(resolve, 100))
    res.end()
  })
  const { app } = await deliveringApp(t, { hooks: { queueConcurrency: 2 } })
  const q = await post(app, '/queues', { name: 'slow', callbackUrl: `${target.url}/slow` })
  await app.inject({ method: 'POST', url: '/graphql', payload: { query: `mutation { insertMessages(inputs: [${Array.from({ length: 30 }, (_, i) => `{ queueId: ${q.id}, body: "m${i}" }`).join(',')}]) { id } }` } })
  await target.waitFor(2)
  await post(app, `/queues/${q.id}`, { paused: true }, 'PUT')
  const afterPause = target.requests.length
  // the rows it held went back and were parked by the next claim
  const parked = async (): Promise<number> =>
    (await app.inject({ url: `/queues/${q.id}/messages?limit=100` })).json().filter((m: any) => m.parked).length
  await eventually(async () => await parked() >= 30 - afterPause - 2)
  t.ok(target.requests.length - afterPause <= 2, `${target.requests.length - afterPause} calls after the pause answered (2 may be in flight)`)
})

t.test('the circuit opens after a run of failures, holds the queue, probes once, and closes on a success', async (t) => {
  let healthy = false
  const target = await receiver(t, (r, res) => {
    res.statusCode = r.url === '/cb' && !healthy ? 500 : 200
    res.end()
  })
  const { app } = await deliveringApp(t)
  await post(app, '/queues', { name: 'ops', callbackUrl: `${target.url}/ops`, eventTypes: ['hookpost.queue.*'] })
  const q = await post(app, '/queues', {
    name: 'cb', callbackUrl: `${target.url}/cb`, maxRetries: 100, backoffBaseMs: 0, backoffMaxMs: 0, circuitFailureThreshold: 3, circuitCooldownMs: 1000
  })
  t.match(q, { circuitState: 'closed', consecutiveFailures: 0, circuitFailureThreshold: 3, disableAfterHours: 72 })
  const m = await post(app, '/messages', { queueId: q.id, body: 'x' })
  const opened = await eventually(async () => target.requests.find(r => r.headers['x-hookpost-event-type'] === 'hookpost.queue.circuit_opened'))
  t.match(JSON.parse(opened!.body), { queueId: q.id, name: 'cb' })
  const open = (await app.inject({ url: `/queues/${q.id}` })).json()
  t.match(open, { circuitState: 'open', circuitOpenedAt: String })
  t.ok(open.consecutiveFailures >= 3, `${open.consecutiveFailures} failures in a row`)
  const openedAt = new Date(open.circuitOpenedAt).getTime()
  // nothing during the hold; then one probe, which fails: open again, for twice as long
  await eventually(async () => (await app.inject({ url: `/queues/${q.id}` })).json().consecutiveFailures > open.consecutiveFailures)
  const calls = target.requests.filter(r => r.url === '/cb')
  t.equal(calls.filter(r => r.at > openedAt + 100 && r.at < openedAt + 900).length, 0, 'no call while the circuit was open')
  t.equal(calls.filter(r => r.at >= openedAt + 900).length, 1, 'a single probe')
  healthy = true
  const closed = await eventually(async () => target.requests.find(r => r.headers['x-hookpost-event-type'] === 'hookpost.queue.circuit_closed'), 15_000)
  t.match(JSON.parse(closed!.body), { queueId: q.id })
  t.match((await app.inject({ url: `/queues/${q.id}` })).json(), { circuitState: 'closed', consecutiveFailures: 0, failingSince: null })
  t.match((await app.inject({ url: `/messages/${m.id}` })).json(), { sentAt: String, failed: false })
  const bad = await app.inject({ method: 'PUT', url: `/queues/${q.id}`, payload: { circuitFailureThreshold: -1 } })
  t.equal(bad.statusCode, 400)
  t.match(bad.json().message, /circuitFailureThreshold/)
})

t.test('a queue failing for longer than disableAfterHours is disabled by the leader, and told', async (t) => {
  const target = await receiver(t)
  const { app, pool } = await deliveringApp(t)
  await post(app, '/queues', { name: 'ops', callbackUrl: `${target.url}/ops`, eventTypes: ['hookpost.*'] })
  const q = await post(app, '/queues', { name: 'old', callbackUrl: 'http://127.0.0.1:9/old', disableAfterHours: 2 })
  await pool.query("UPDATE hookpost.queues SET failing_since = now() - interval '3 hours', consecutive_failures = 40 WHERE id = $1", [q.id])
  await app.delivery!.reaper.reap()
  t.match((await app.inject({ url: `/queues/${q.id}` })).json(), { disabled: true, disabledReason: 'failing continuously for 2 hours' })
  const told = await eventually(async () => target.requests.find(r => r.headers['x-hookpost-event-type'] === 'hookpost.queue.disabled'))
  t.match(JSON.parse(told!.body), { queueId: q.id, reason: 'failing continuously for 2 hours' })
  // enabled by an operator: a fresh run, not disabled again at the next pass (attack round)
  t.match(await post(app, `/queues/${q.id}`, { disabled: false }, 'PUT'), { disabled: false, failingSince: null, consecutiveFailures: 0 })
  await app.delivery!.reaper.reap()
  t.equal((await app.inject({ url: `/queues/${q.id}` })).json().disabled, false)
})

t.test('attack round: a breaker turned off while its circuit is open closes it at the probe', async (t) => {
  const target = await receiver(t, (_r, res) => { res.statusCode = 500; res.end() })
  const { app } = await deliveringApp(t)
  const q = await post(app, '/queues', {
    name: 'off', callbackUrl: `${target.url}/off`, maxRetries: 100, backoffBaseMs: 0, backoffMaxMs: 0, circuitFailureThreshold: 1, circuitCooldownMs: 1000
  })
  await post(app, '/messages', { queueId: q.id, body: 'x' })
  await eventually(async () => (await app.inject({ url: `/queues/${q.id}` })).json().circuitState === 'open')
  await post(app, `/queues/${q.id}`, { circuitFailureThreshold: 0 }, 'PUT')
  const closed = await eventually(async () => { const x = (await app.inject({ url: `/queues/${q.id}` })).json(); return x.circuitState === 'closed' && x })
  t.equal(closed.circuitOpenedAt, null)
  // and it stays closed: plain retries now
  await eventually(async () => target.requests.length >= 5)
  t.equal((await app.inject({ url: `/queues/${q.id}` })).json().circuitState, 'closed')
})
