// Ordered delivery and endpoint health against two real server processes delivering at once
// (HOOKPOST_ALL_PROCESSES_DELIVER) and real receivers: ordering by key through failures, a whole fifo
// queue, ordering through a kill -9, and the queue-wide signals (429 with Retry-After, the circuit's
// single probe, 410 Gone), each seen from outside.
import t from 'tap'
import { eventually, receiver, sleep } from './helpers.js'
import { api, twoServers } from './flow-helpers.js'

// one pair of server processes for the scenarios below, each on queues of its own (spawning a pair
// costs seconds of CPU); the kill -9 scenario comes last
const shared = await twoServers(t)

t.test('ordering: one key waits for its failing message while another key flows; a dead message lets its key go', async (t) => {
  const failures = new Map<string, number>()
  const target = await receiver(t, (r, res) => {
    const n = failures.get(r.body) ?? 0
    // a1 fails twice, then passes; dead1 always fails
    if ((r.body === 'a1' && n < 2) || r.body === 'dead1') {
      failures.set(r.body, n + 1)
      res.statusCode = 500
    }
    res.end()
  })
  const { servers } = shared
  // a1's retries come 1 s and 2 s apart: room for key B's four enqueues (one request each, in turn) and
  // deliveries on a loaded machine, where 300 ms and 600 ms were sometimes not enough. Were key B held
  // behind key A, b4 would still come after a1's last attempt, however long the backoff
  const q = await api(servers[0]!.url, '/queues', { name: 'ordered', callbackUrl: target.url, backoffBaseMs: 1000, backoffJitter: 'none', maxRetries: 5 })
  const d = await api(servers[0]!.url, '/queues', { name: 'dies', callbackUrl: `${target.url}/d`, maxRetries: 0 })
  for (const body of ['a1', 'a2', 'a3']) await api(servers[0]!.url, '/messages', { queueId: q.id, body, orderingKey: 'A' })
  for (const body of ['b1', 'b2', 'b3', 'b4']) await api(servers[1]!.url, '/messages', { queueId: q.id, body, orderingKey: 'B' })
  await api(servers[1]!.url, '/messages', { queueId: d.id, body: 'dead1', orderingKey: 'C' })
  const c2 = await api(servers[0]!.url, '/messages', { queueId: d.id, body: 'c2', orderingKey: 'C' })
  t.equal(c2.orderingKey, 'C')
  await target.waitFor(3 + 2 + 4 + 2, 15_000)
  const seq = target.requests.map(r => r.body)
  const a = seq.filter(x => x.startsWith('a'))
  t.same(a, ['a1', 'a1', 'a1', 'a2', 'a3'], 'key A in order, its head retried twice before the rest')
  t.same(seq.filter(x => x.startsWith('b')), ['b1', 'b2', 'b3', 'b4'], 'key B in order')
  t.ok(seq.indexOf('b4') < seq.lastIndexOf('a1'), 'key B flowed while key A retried')
  t.ok(seq.indexOf('c2') > seq.indexOf('dead1'), 'the dead message let its key go')
  const waiting = await api(servers[0]!.url, '/messages?where.orderingKey.eq=A&orderby.id=asc')
  t.same(waiting.map((m: any) => m.sentAt !== null), [true, true, true])
})

t.test('fifo: the whole queue is one key, across two processes', async (t) => {
  const target = await receiver(t, async (_r, res) => { await sleep(2); res.end() })
  const { servers, pool } = shared
  const q = await api(servers[0]!.url, '/queues', { name: 'fifo', callbackUrl: target.url, fifo: true })
  t.equal(q.fifo, true)
  await pool.query('INSERT INTO hookpost.messages (queue_id, body) SELECT $1, g::text FROM generate_series(1, 100) g', [q.id])
  const got = await target.waitFor(100, 20_000)
  t.same(got.map(r => Number(r.body)), Array.from({ length: 100 }, (_, i) => i + 1), 'in enqueue order, one at a time')
})

t.test('a 429 with Retry-After holds the whole queue, across both processes', async (t) => {
  let first = 0
  const target = await receiver(t, (_r, res) => {
    if (first++ === 0) {
      res.statusCode = 429
      res.setHeader('retry-after', '2')
    }
    res.end()
  })
  const { servers, pool } = shared
  const q = await api(servers[0]!.url, '/queues', { name: 'busy', callbackUrl: target.url, backoffBaseMs: 0, backoffMaxMs: 5000 })
  await api(servers[0]!.url, '/messages', { queueId: q.id, body: 'first' })
  const held = await eventually(async () => { const x = await api(servers[1]!.url, `/queues/${q.id}`); return x.heldUntil !== null && x })
  const until = new Date(held.heldUntil).getTime()
  t.ok(until - target.requests[0]!.at >= 1900, 'held for the 2 s asked')
  await pool.query('INSERT INTO hookpost.messages (queue_id, body) SELECT $1, g::text FROM generate_series(1, 20) g', [q.id])
  const got = await target.waitFor(22, 10_000)
  // the receiver's clock and PostgreSQL's are this machine's
  t.ok(got.slice(1).every(r => r.at >= until - 20), 'nothing before the hold ended, from either process; then everything')
})

t.test('the circuit opens, one probe across both processes, and closes', async (t) => {
  let healthy = false
  const target = await receiver(t, (r, res) => {
    res.statusCode = r.url.startsWith('/cb') && !healthy ? 500 : 200
    res.end()
  })
  const { servers, pool } = shared
  await api(servers[0]!.url, '/queues', { name: 'ops', callbackUrl: `${target.url}/ops`, eventTypes: ['hookpost.queue.*'] })
  const q = await api(servers[0]!.url, '/queues', {
    name: 'cb', callbackUrl: `${target.url}/cb`, maxRetries: 100, backoffBaseMs: 0, backoffMaxMs: 0, circuitFailureThreshold: 3, circuitCooldownMs: 1000
  })
  await pool.query('INSERT INTO hookpost.messages (queue_id, body) SELECT $1, g::text FROM generate_series(1, 10) g', [q.id])
  const opened = await eventually(async () => target.requests.find(r => r.headers['x-hookpost-event-type'] === 'hookpost.queue.circuit_opened'))
  t.match(JSON.parse(opened!.body), { queueId: q.id })
  const open = await api(servers[1]!.url, `/queues/${q.id}`)
  t.match(open, { circuitState: 'open', circuitOpenedAt: String })
  const openedAt = new Date(open.circuitOpenedAt).getTime()
  healthy = true
  const closed = await eventually(async () => target.requests.find(r => r.headers['x-hookpost-event-type'] === 'hookpost.queue.circuit_closed'), 10_000)
  t.ok(closed)
  const calls = target.requests.filter(r => r.url.startsWith('/cb'))
  t.equal(calls.filter(r => r.at > openedAt + 100 && r.at < openedAt + 900).length, 0, 'no call while open')
  const probeAt = calls.find(r => r.at >= openedAt + 900)!.at
  t.equal(calls.filter(r => r.at >= probeAt && r.at < probeAt + 5).length, 1, 'a single probe, from one of the two processes')
  await eventually(async () => (await pool.query('SELECT count(*)::int AS n FROM hookpost.messages WHERE queue_id = $1 AND sent_at IS NOT NULL', [q.id])).rows[0].n === 10)
  t.match(await api(servers[1]!.url, `/queues/${q.id}`), { circuitState: 'closed', consecutiveFailures: 0 })
})

t.test('a 410 disables the queue, its messages are parked, a subscriber is told, and enabling delivers them', async (t) => {
  let gone = true
  const target = await receiver(t, (r, res) => {
    if (r.url === '/gone' && gone) res.statusCode = 410
    res.end()
  })
  const { servers, pool } = shared
  await api(servers[0]!.url, '/queues', { name: 'ops', callbackUrl: `${target.url}/ops`, eventTypes: ['hookpost.queue.disabled'] })
  const q = await api(servers[0]!.url, '/queues', { name: 'gone', callbackUrl: `${target.url}/gone` })
  await api(servers[1]!.url, '/messages', { queueId: q.id, body: 'first' })
  const told = await eventually(async () => target.requests.find(r => r.url === '/ops'))
  t.match(JSON.parse(told!.body), { queueId: q.id, name: 'gone' })
  t.match(await api(servers[1]!.url, `/queues/${q.id}`), { disabled: true, disabledReason: /410/ })
  await pool.query('INSERT INTO hookpost.messages (queue_id, body) SELECT $1, g::text FROM generate_series(1, 5) g', [q.id])
  await eventually(async () => (await pool.query("SELECT count(*)::int AS n FROM hookpost.messages WHERE queue_id = $1 AND run_at = 'infinity'", [q.id])).rows[0].n === 6)
  t.equal(target.requests.filter(r => r.url === '/gone').length, 1, 'parked, not attempted')
  gone = false
  t.match(await api(servers[0]!.url, `/queues/${q.id}`, { disabled: false }, 'PUT'), { disabled: false })
  await eventually(async () => target.requests.filter(r => r.url === '/gone').length === 7)
  t.same(target.requests.filter(r => r.url === '/gone').slice(1).map(r => r.body), ['first', '1', '2', '3', '4', '5'], 'delivered in order after enabling')
})

t.test('attack round: an ordered message is not moved between queues, nor deleted mid-call; a redriven one waits for its key', async (t) => {
  const slow = new Set<string>()
  const target = await receiver(t, async (r, res) => {
    if (r.body === 'dies') res.statusCode = 500
    if (slow.has(r.body)) await sleep(600)
    res.end()
  })
  const { servers } = shared
  const base = servers[0]!.url
  const q = await api(base, '/queues', { name: 'keyed-atk', callbackUrl: target.url, maxRetries: 0 })
  const fifo = await api(base, '/queues', { name: 'fifo-atk', callbackUrl: target.url, fifo: true, paused: true })
  const other = await api(base, '/queues', { name: 'plain-atk', callbackUrl: target.url, paused: true })
  const later = await api(base, '/messages', { queueId: other.id, body: 'later', when: new Date(Date.now() + 3600_000).toISOString() })
  const put = async (path: string, body: object): Promise<Response> =>
    await fetch(`${base}${path}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  t.equal((await put(`/messages/${later.id}`, { queueId: fifo.id })).status, 409, 'not into a fifo queue')
  const keyed = await api(base, '/messages', { queueId: other.id, body: 'k', orderingKey: 'K', when: new Date(Date.now() + 3600_000).toISOString() })
  t.equal((await put(`/messages/${keyed.id}`, { queueId: q.id })).status, 409, 'not with an ordering key')

  // K:0 dies; K:1 is slow; K:0 redriven while K:1 is in flight waits for it
  await api(base, '/messages', { queueId: q.id, body: 'dies', orderingKey: 'R' })
  await eventually(async () => (await api(base, '/messages?where.orderingKey.eq=R'))[0].failed === true)
  slow.add('r1')
  await api(base, '/messages', { queueId: q.id, body: 'r1', orderingKey: 'R' })
  await eventually(async () => target.requests.some(r => r.body === 'r1'))
  // deleting the message in flight would let the key's next one go beside it
  const inFlight = (await api(base, '/messages?where.orderingKey.eq=R&orderby.id=desc'))[0]
  t.equal((await fetch(`${base}/messages/${inFlight.id}`, { method: 'DELETE' })).status, 409, 'not deleted mid-call')
  await api(base, `/queues/${q.id}/redrive`, {})
  const r1At = target.requests.find(r => r.body === 'r1')!.at
  await eventually(async () => target.requests.filter(r => r.body === 'dies').length === 2, 10_000)
  const again = target.requests.filter(r => r.body === 'dies')[1]!.at
  t.ok(again >= r1At + 550, `the redriven message went ${again - r1At} ms after its key's call began, once it ended`)
})

t.test('ordering holds across a kill -9 of a delivering process', async (t) => {
  const target = await receiver(t, async (_r, res) => { await sleep(10); res.end() })
  // the shared pair: this test comes last, as it kills one of them
  const { servers, pool } = shared
  const q = await api(servers[0]!.url, '/queues', { name: 'keys', callbackUrl: target.url })
  const KEYS = 40
  const PER = 15
  await pool.query(`INSERT INTO hookpost.messages (queue_id, body, ordering_key)
    SELECT $1, k || ':' || i, 'k' || k FROM generate_series(1, $3) i, generate_series(1, $2) k ORDER BY i, k`, [q.id, KEYS, PER])
  await target.waitFor(KEYS * 3, 10_000)
  servers[0]!.proc.kill('SIGKILL')
  await servers[0]!.exited
  const ids = (): number => new Set(target.requests.map(r => r.body)).size
  await eventually(async () => ids() === KEYS * PER, 30_000, 100)
  const perKey = new Map<string, number[]>()
  for (const r of target.requests) {
    const [k, i] = r.body.split(':')
    perKey.set(k!, [...(perKey.get(k!) ?? []), Number(i)])
  }
  let inOrder = 0
  for (const seq of perKey.values()) if (seq.every((x, j) => j === 0 || x >= seq[j - 1]!)) inOrder++
  t.equal(inOrder, KEYS, 'every key received in order (a message in flight at the kill may come twice, never after the next)')
  t.ok(target.requests.length - KEYS * PER <= KEYS, `${target.requests.length - KEYS * PER} redelivered, at most one per key`)
})
