// The worker's memory is bounded in bytes: the messages it has claimed, waiting for a slot or being
// sent, stay under hooks.bufferBytes whatever the bodies weigh, without starving other queues or
// stranding a message larger than the cap. (bench/memory.ts runs 2,000 bodies of 1 MiB through a child
// server and checks its RSS.)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DEFAULTS, loadConfig } from '../lib/config.js'
import { deliveringApp, post, receiver } from './helpers.js'

const KiB = 1024
const MiB = 1024 * KiB

/** A promise the test opens: the endpoint holds its answers until then. */
function gate (): { wait: Promise<void>, open: () => void } {
  let open!: () => void
  const wait = new Promise<void>((resolve) => { open = resolve })
  return { wait, open }
}

t.test('claimed bodies, waiting or being sent, stay under the byte cap while an endpoint is slow', async (t) => {
  const CAP = 1 * MiB
  const BODY = 64 * KiB
  const N = 120
  const CONCURRENCY = 4
  // the endpoint's answer time: the worker claims far faster than it sends
  const HOLD_MS = 20
  let maxBuffered = 0
  let maxUnsent = 0
  const received = new Set<number>()
  // the endpoint samples only once messages arrive: by then the app is built and sample is set
  const target = await receiver(t, async (r, res) => {
    received.add(Number(r.headers['x-hookpost-message-id']))
    await sample()
    setTimeout(() => res.end(), HOLD_MS)
  })
  const { app, pool } = await deliveringApp(t, {
    hooks: { bufferBytes: CAP, concurrency: CONCURRENCY, queueConcurrency: CONCURRENCY, shutdownGraceMs: 0 }
  })
  const worker = app.delivery!.worker
  const sample = async (): Promise<void> => {
    maxBuffered = Math.max(maxBuffered, worker.bufferedBytes)
    // the worker's own count aside, from the database: the bodies it has claimed and this endpoint has
    // not seen yet, which it holds waiting or is sending
    const { rows } = await pool.query<{ id: number, n: number }>(
      'SELECT id, octet_length(body) AS n FROM hookpost.messages WHERE locked_by IS NOT NULL AND sent_at IS NULL')
    maxUnsent = Math.max(maxUnsent, rows.filter(x => !received.has(x.id)).reduce((a, x) => a + x.n, 0))
  }
  const q = await post(app, '/queues', { name: 'slow', callbackUrl: target.url })
  await pool.query("INSERT INTO hookpost.messages (queue_id, body) SELECT $1, repeat('x', $2) FROM generate_series(1, $3)", [q.id, BODY, N])

  await target.waitFor(N, 30_000)
  t.equal(received.size, N, 'every message delivered')
  t.ok(target.requests.every(r => r.body.length === BODY), 'bodies intact')
  t.ok(maxBuffered <= CAP, `the worker held at most ${maxBuffered} bytes (cap ${CAP})`)
  t.ok(maxBuffered > 0, 'the gauge counts')
  t.ok(maxUnsent <= CAP, `claimed and not yet received: at most ${maxUnsent} bytes of bodies (cap ${CAP})`)
})

t.test('a queue of large bodies behind a stalled endpoint leaves room in the buffer for other queues', async (t) => {
  const CAP = 1 * MiB
  const BODY = 64 * KiB
  const stall = gate()
  const slow = await receiver(t, async (_r, res) => { await stall.wait; res.end() })
  const fast = await receiver(t)
  const { app, pool } = await deliveringApp(t, {
    hooks: { bufferBytes: CAP, concurrency: 8, queueConcurrency: 4, shutdownGraceMs: 0 }
  })
  t.teardown(stall.open)
  const worker = app.delivery!.worker
  const sq = await post(app, '/queues', { name: 'stalled', callbackUrl: slow.url, timeoutMs: 30_000 })
  const fq = await post(app, '/queues', { name: 'fast', callbackUrl: fast.url })
  await pool.query("INSERT INTO hookpost.messages (queue_id, body) SELECT $1, repeat('x', $2) FROM generate_series(1, 100)", [sq.id, BODY])
  await slow.waitFor(4)

  await pool.query('INSERT INTO hookpost.messages (queue_id, body) SELECT $1, g::text FROM generate_series(1, 20) g', [fq.id])
  await fast.waitFor(20, 5000)
  t.pass('the other queue was delivered while the stalled one held its calls')
  // waiting and in flight: a queue is claimed for only while it holds under 3/8, an eighth at a time
  t.ok(worker.bufferedBytes < CAP / 2, `the stalled queue holds ${worker.bufferedBytes} bytes, under half the buffer`)
  t.equal(slow.requests.length, 4, 'the stalled queue stayed at its share of the slots')
  stall.open()
})

t.test('a message larger than the cap is still delivered, one at a time', async (t) => {
  const CAP = 64 * KiB
  const BODY = 256 * KiB
  // long enough for the worker to claim the next message meanwhile, if it would
  const HOLD_MS = 50
  let maxBuffered = 0
  // the endpoint is called only once the queue exists: by then the app is built and worker is set
  const target = await receiver(t, async (_r, res) => {
    setTimeout(() => {
      maxBuffered = Math.max(maxBuffered, worker.bufferedBytes)
      res.end()
    }, HOLD_MS)
  })
  // one call at a time: without the cap the others would be claimed and wait
  const { app, pool } = await deliveringApp(t, { hooks: { bufferBytes: CAP, concurrency: 1, queueConcurrency: 1 } })
  const worker = app.delivery!.worker
  const q = await post(app, '/queues', { name: 'big', callbackUrl: target.url })
  await pool.query("INSERT INTO hookpost.messages (queue_id, body) SELECT $1, repeat('y', $2) FROM generate_series(1, 3)", [q.id, BODY])
  await target.waitFor(3, 10_000)
  t.ok(target.requests.every(r => r.body.length === BODY), 'each arrived whole')
  // the one being sent fills the buffer: the next is claimed only when it is done
  t.ok(maxBuffered > 0 && maxBuffered < 2 * BODY, `at most ${maxBuffered} bytes held, one message`)
})

t.test('hooks.bufferBytes: HOOKPOST_DELIVERY_BUFFER_BYTES or platformatic.json, 64 MiB by default, checked', async (t) => {
  const cwd = mkdtempSync(join(tmpdir(), 'hookpost-memory-'))
  t.teardown(() => rmSync(cwd, { recursive: true, force: true }))
  t.equal(loadConfig({ cwd, env: {} }).hooks.bufferBytes, 64 * MiB)
  t.equal(DEFAULTS.bufferBytes, 64 * MiB)
  t.equal(loadConfig({ cwd, env: { HOOKPOST_DELIVERY_BUFFER_BYTES: '16777216' } }).hooks.bufferBytes, 16 * MiB)
  writeFileSync(join(cwd, 'platformatic.json'), JSON.stringify({ hooks: { bufferBytes: 8 * MiB } }))
  t.equal(loadConfig({ cwd, env: {} }).hooks.bufferBytes, 8 * MiB, 'from platformatic.json')
  t.equal(loadConfig({ cwd, env: { HOOKPOST_DELIVERY_BUFFER_BYTES: String(32 * MiB) } }).hooks.bufferBytes, 32 * MiB, 'the environment wins')
  for (const bad of ['0', '1000', '64MiB', '-1']) {
    t.throws(() => loadConfig({ cwd, env: { HOOKPOST_DELIVERY_BUFFER_BYTES: bad } }), { name: 'ConfigError', setting: 'HOOKPOST_DELIVERY_BUFFER_BYTES' }, `${bad} is refused`)
  }
})
