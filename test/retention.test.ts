import t from 'tap'
import type pg from 'pg'
import type { Clock } from '../lib/delivery/clock.js'
import { BATCH_PAUSE_MS, pauseAfter, Retention } from '../lib/services/retention.js'
import { replayQueue } from '../lib/store/replay.js'
import { silentLog, testApp, testPool } from './helpers.js'
import { signal } from './signals.js'

interface Fixture { [name: string]: number }

/**
 * One of each kind, by SQL: delivered long ago and recently; dead long ago and recently; dead long ago
 * but redriven and dead again lately; dead long ago but redriven (pending now); pending with an old when.
 * Every message has an attempt row, so the cascade can be seen.
 */
async function fixture (pool: pg.Pool): Promise<Fixture> {
  const { rows: [q] } = await pool.query("INSERT INTO hookpost.queues (name, callback_url) VALUES ('q', 'http://127.0.0.1:9/') RETURNING id")
  const ids: Fixture = {}
  const message = async (name: string, sentAgo: string | null, failed: boolean): Promise<number> => {
    const { rows: [m] } = await pool.query(
      `INSERT INTO hookpost.messages (queue_id, body, "when", sent_at, failed, attempts)
       VALUES ($1, $2, now() - interval '60 days', now() - $3::interval, $4, 1) RETURNING id`, [q.id, name, sentAgo, failed])
    await pool.query("INSERT INTO hookpost.attempts (message_id, attempt, started_at, duration_ms, status_code) VALUES ($1, 1, now() - interval '60 days', 5, 200)", [m.id])
    ids[name] = m.id
    return m.id
  }
  const deadLetter = async (id: number, ago: string): Promise<void> => {
    await pool.query('INSERT INTO hookpost.dead_letters (message_id, queue_id, attempts, last_status, created_at) VALUES ($1, $2, 1, 500, now() - $3::interval)', [id, q.id, ago])
  }
  await message('deliveredOld', '8 days', false)
  await message('deliveredRecent', '6 days', false)
  await deadLetter(await message('deadOld', null, true), '31 days')
  await deadLetter(await message('deadRecent', null, true), '29 days')
  const again = await message('deadAgain', null, true)
  await deadLetter(again, '40 days')
  await deadLetter(again, '1 day')
  await deadLetter(await message('redriven', null, false), '40 days')
  await message('pendingOld', null, false)
  // a dead message whose copy on a dead-letter queue was delivered long ago: the copy goes, the link is cleared
  const { rows: [copy] } = await pool.query(
    'INSERT INTO hookpost.messages (queue_id, body, sent_at, dead_letter_of) VALUES ($1, \'copy\', now() - interval \'10 days\', $2) RETURNING id', [q.id, ids.deadRecent])
  ids.copyOld = copy.id
  return ids
}

async function remaining (pool: pg.Pool): Promise<{ messages: string[], attempts: number, deadLetters: number }> {
  const m = await pool.query('SELECT body FROM hookpost.messages ORDER BY id')
  const a = await pool.query('SELECT count(*) AS n FROM hookpost.attempts')
  const d = await pool.query('SELECT count(*) AS n FROM hookpost.dead_letters')
  return { messages: m.rows.map(r => r.body), attempts: a.rows[0].n, deadLetters: d.rows[0].n }
}

t.test('one pass deletes exactly the old delivered and old dead messages, with their attempts and dead letters', async (t) => {
  const { url } = await testApp(t)
  const pool = testPool(t, url)
  const ids = await fixture(pool)
  const retention = new Retention(pool, { deliveredHours: 168, deadHours: 720 }, silentLog)
  const before = await remaining(pool)
  t.equal(before.attempts, 7)
  t.equal(before.deadLetters, 5)

  const counted: Array<[string, number]> = []
  const r = new Retention(
    pool, { deliveredHours: 168, deadHours: 720, onDeleted: (k, n) => counted.push([k, n]) }, silentLog)
  t.same(await r.purge(), { delivered: 2, dead: 1, events: 0 })
  t.same(counted, [['delivered', 2], ['dead', 1]], 'onDeleted hears each batch')
  const after = await remaining(pool)
  t.same(after.messages, ['deliveredRecent', 'deadRecent', 'deadAgain', 'redriven', 'pendingOld'], 'old delivered, old dead and the old copy are gone; nothing else')
  t.equal(after.attempts, 5, 'their attempts went with them')
  t.equal(after.deadLetters, 4, 'and the dead letter of the dead one')
  const { rows } = await pool.query('SELECT count(*) AS n FROM hookpost.messages WHERE id = ANY($1::bigint[])', [[ids.deliveredOld, ids.deadOld, ids.copyOld]])
  t.equal(rows[0].n, 0)

  t.same(await retention.purge(), { delivered: 0, dead: 0, events: 0 }, 'a second pass finds nothing')
})

t.test('an event and its messages go together, once every one of them is past its age', async (t) => {
  const { url } = await testApp(t)
  const pool = testPool(t, url)
  const { rows: [a, b] } = await pool.query(`INSERT INTO hookpost.queues (name, callback_url)
    VALUES ('a', 'http://127.0.0.1:9/'), ('b', 'http://127.0.0.1:9/') RETURNING id`)
  const event = async (name: string, ago: string): Promise<number> => (await pool.query(
    "INSERT INTO hookpost.events (type, payload, created_at) VALUES ($1, '{}', now() - $2::interval) RETURNING id", [name, ago])).rows[0].id
  const message = async (eventId: number, queueId: number, sentAgo: string | null, failed = false): Promise<number> =>
    (await pool.query(`INSERT INTO hookpost.messages (queue_id, body, sent_at, failed, event_id, event_type)
      VALUES ($1, 'x', now() - $2::interval, $3, $4, 'e') RETURNING id`, [queueId, sentAgo, failed, eventId])).rows[0].id
  await event('old.alone', '8 days')
  const done = await event('old.done', '9 days')
  await message(done, a.id, '8 days')
  await pool.query('INSERT INTO hookpost.attempts (message_id, attempt, started_at, duration_ms) VALUES ($1, 1, now(), 1)',
    [await message(done, b.id, '8 days')])
  // delivered long ago to a, dead lately on b: a's copy stays with the event, so a replay to a finds it
  // received (attack round: retention took a's message first, and a replay sent the event to a again)
  const mixed = await event('old.mixed', '9 days')
  await message(mixed, a.id, '8 days')
  const deadRecent = await message(mixed, b.id, null, true)
  await pool.query("INSERT INTO hookpost.dead_letters (message_id, queue_id, attempts, created_at) VALUES ($1, $2, 1, now() - interval '1 day')", [deadRecent, b.id])
  const pending = await event('old.pending', '8 days')
  await message(pending, a.id, null)
  await event('recent.alone', '6 days')

  const counted: Array<[string, number]> = []
  const onDeleted = (k: string, n: number): number => counted.push([k, n])
  const r = new Retention(pool, { deliveredHours: 168, deadHours: 720, onDeleted }, silentLog)
  t.same(await r.purge(), { delivered: 0, dead: 0, events: 2 }, "an event's messages are not taken on their own")
  t.same(counted, [['events', 2]])
  const { rows } = await pool.query('SELECT type FROM hookpost.events ORDER BY id')
  t.same(rows.map(x => x.type), ['old.mixed', 'old.pending', 'recent.alone'])
  const left = await pool.query('SELECT event_id FROM hookpost.messages ORDER BY id')
  t.same(left.rows.map(x => Number(x.event_id)), [mixed, mixed, pending], 'the done event took its two messages')
  t.equal((await pool.query('SELECT count(*)::int AS n FROM hookpost.attempts')).rows[0].n, 0, 'and their attempts')
  const replayed = await replayQueue(pool, a.id, { since: '1970-01-01T00:00:00Z', eventTypes: ['*'] })
  t.equal(replayed.replayed, 1, 'a replay to a sends only the event a never had (recent.alone)')
  await pool.query('DELETE FROM hookpost.messages WHERE replay')
  // the dead one's dead letter ages past deadHours: then the mixed event goes, both messages with it
  await pool.query("UPDATE hookpost.dead_letters SET created_at = now() - interval '31 days'")
  t.same(await r.purge(), { delivered: 0, dead: 0, events: 1 })
  // deadHours 0 keeps dead messages, and so their events; deliveredHours 0 keeps every event
  const keep = new Retention(pool, { deliveredHours: 0, deadHours: 720 }, silentLog)
  t.same(await keep.purge(), { delivered: 0, dead: 0, events: 0 }, 'deliveredHours 0 keeps events too')
})

t.test('age 0 switches each kind off', async (t) => {
  const { url } = await testApp(t)
  const pool = testPool(t, url)
  await fixture(pool)
  const before = await remaining(pool)

  const off = new Retention(pool, { deliveredHours: 0, deadHours: 0 }, silentLog)
  t.notOk(off.enabled)
  t.same(await off.purge(), { delivered: 0, dead: 0, events: 0 })
  off.start() // does nothing when both are off
  t.notOk(off.active)
  t.same(await remaining(pool), before, 'nothing deleted')

  t.same(await new Retention(pool, { deliveredHours: 0, deadHours: 720 }, silentLog).purge(), { delivered: 0, dead: 1, events: 0 }, 'dead only')
  t.same(await new Retention(pool, { deliveredHours: 168, deadHours: 0 }, silentLog).purge(), { delivered: 2, dead: 0, events: 0 }, 'then delivered only')
})

t.test('many rows go in batches of 500', async (t) => {
  const { url } = await testApp(t)
  const pool = testPool(t, url)
  const { rows: [q] } = await pool.query("INSERT INTO hookpost.queues (name, callback_url) VALUES ('q', 'http://127.0.0.1:9/') RETURNING id")
  await pool.query('INSERT INTO hookpost.messages (queue_id, body, sent_at) SELECT $1, \'old\', now() - interval \'30 days\' FROM generate_series(1, 1203)', [q.id])
  await pool.query('INSERT INTO hookpost.messages (queue_id, body, sent_at) SELECT $1, \'new\', now() FROM generate_series(1, 7)', [q.id])
  const batches: number[] = []
  const r = new Retention(
    pool, { deliveredHours: 168, deadHours: 720, onDeleted: (_k, n) => batches.push(n) }, silentLog)
  t.same(await r.purge(), { delivered: 1203, dead: 0, events: 0 })
  t.same(batches, [500, 500, 203])
  const { rows } = await pool.query('SELECT body, count(*) AS n FROM hookpost.messages GROUP BY body')
  t.same(rows, [{ body: 'new', n: 7 }])
})

/** A pool whose every statement takes `ms` on the clock given, and a clock that records each pause. */
function slowPool (pool: pg.Pool, ms: number): {
  pool: pg.Pool, clock: Clock, pauses: number[], firstPause: Promise<() => void>
} {
  let now = 0
  const pauses: number[] = []
  let paused: (end: () => void) => void = () => {}
  const firstPause = new Promise<() => void>(resolve => { paused = resolve })
  const clock: Clock = {
    now: () => now,
    // the first pause is held until the test ends it; the rest end at once
    after: (ms, fn) => { pauses.push(ms); if (pauses.length === 1) paused(fn); else setImmediate(fn); return () => {} },
    every: () => () => {}
  }
  const slow = { query: async (s: pg.QueryConfig) => { const r = await pool.query(s); now += ms; return r } }
  return { pool: slow as unknown as pg.Pool, clock, pauses, firstPause }
}

t.test('batches are paced: a batch that took t ms is followed by a pause of 9t, so a busy machine slows retention', async (t) => {
  const { url } = await testApp(t)
  const pool = testPool(t, url)
  const { rows: [q] } = await pool.query("INSERT INTO hookpost.queues (name, callback_url) VALUES ('q', 'http://127.0.0.1:9/') RETURNING id")
  await pool.query('INSERT INTO hookpost.messages (queue_id, body, sent_at) SELECT $1, \'old\', now() - interval \'30 days\' FROM generate_series(1, 1203)', [q.id])
  t.equal(pauseAfter(1), BATCH_PAUSE_MS, 'never less than the plain pause')
  t.equal(pauseAfter(300), 2700)
  const slow = slowPool(pool, 300)
  const r = new Retention(slow.pool, { deliveredHours: 168, deadHours: 0 }, silentLog, slow.clock)
  const purged = r.purge()
  const endPause = await slow.firstPause
  t.same(slow.pauses, [2700], 'paused 9x the batch after the first')
  endPause()
  t.same(await purged, { delivered: 1203, dead: 0, events: 0 })
  t.same(slow.pauses, [2700, 2700], 'no pause after the last, short batch')
})

t.test('stop() ends a pause at once', async (t) => {
  const { url } = await testApp(t)
  const pool = testPool(t, url)
  const { rows: [q] } = await pool.query("INSERT INTO hookpost.queues (name, callback_url) VALUES ('q', 'http://127.0.0.1:9/') RETURNING id")
  await pool.query('INSERT INTO hookpost.messages (queue_id, body, sent_at) SELECT $1, \'old\', now() - interval \'30 days\' FROM generate_series(1, 600)', [q.id])
  const slow = slowPool(pool, 60_000)
  const r = new Retention(slow.pool, { deliveredHours: 168, deadHours: 0 }, silentLog, slow.clock)
  r.start()
  await slow.firstPause
  t.same(slow.pauses, [540_000], 'a 9-minute pause is running')
  await r.stop()
  t.notOk(r.active, 'stopped without waiting for it')
  t.equal((await pool.query('SELECT count(*)::int AS n FROM hookpost.messages')).rows[0].n, 100, 'one batch went')
})

t.test('the leader runs retention at election; configured from hooks.retention', async (t) => {
  const { app, url } = await testApp(t, {
    hooks: { enabled: true, leaderPollMs: 100, pollMs: 60_000, retention: { deliveredHours: 24, deadHours: 0 } }
  })
  const pool = testPool(t, url)
  const { rows: [q] } = await pool.query("INSERT INTO hookpost.queues (name, callback_url) VALUES ('q', 'http://127.0.0.1:9/') RETURNING id")
  await pool.query('INSERT INTO hookpost.messages (queue_id, body, sent_at) VALUES ($1, \'old\', now() - interval \'2 days\'), ($1, \'new\', now() - interval \'1 hour\')', [q.id])
  const purged = signal<[{ delivered: number, dead: number, events: number }]>(app.delivery!.retention, 'purged')
  await app.ready()
  t.same(await purged, [{ delivered: 1, dead: 0, events: 0 }], 'purged at election')
  t.ok(app.delivery!.leader.isLeader && app.delivery!.retention.active, 'started on election')
  t.same((await pool.query('SELECT body FROM hookpost.messages')).rows.map(r => r.body), ['new'])
  const metrics = (await app.inject({ url: '/metrics' })).body
  t.match(metrics, /hookpost_retention_deleted_total\{kind="delivered"\} 1/)
})

t.test('config: env and platformatic.json, 0 allowed, bad values refused', async (t) => {
  const { loadConfig } = await import('../lib/config.js')
  const { mkdtempSync, writeFileSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const dir = mkdtempSync(join(tmpdir(), 'hookpost-retention-'))
  t.same(loadConfig({ env: {}, cwd: dir }).hooks.retention, { deliveredHours: 168, deadHours: 720 }, 'defaults: 7 and 30 days')
  writeFileSync(join(dir, 'platformatic.json'), JSON.stringify({ hooks: { retention: { deliveredHours: 48, deadHours: 0 } } }))
  t.same(loadConfig({ env: {}, cwd: dir }).hooks.retention, { deliveredHours: 48, deadHours: 0 }, 'from platformatic.json')
  t.same(loadConfig({ env: { HOOKPOST_RETENTION_DELIVERED_HOURS: '0', HOOKPOST_RETENTION_DEAD_HOURS: '100' }, cwd: dir }).hooks.retention,
    { deliveredHours: 0, deadHours: 100 }, 'the environment wins')
  t.throws(() => loadConfig({ env: { HOOKPOST_RETENTION_DEAD_HOURS: '-1' }, cwd: dir }), /HOOKPOST_RETENTION_DEAD_HOURS/)
  t.throws(() => loadConfig({ env: { HOOKPOST_RETENTION_DELIVERED_HOURS: '1.5' }, cwd: dir }), /HOOKPOST_RETENTION_DELIVERED_HOURS/)
})
