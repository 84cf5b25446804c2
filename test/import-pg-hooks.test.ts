// `hookpost import-pg-hooks` (lib/store/import-pg-hooks.ts), run as a user runs it, on a database built
// with pg-hooks' own schema: pending, sent and failed messages, a DLQ, queue names that repeat and a
// cron. Then hookpost delivers the pending messages and the cron goes on from its schedule.
import { execFile } from 'node:child_process'
import t from 'tap'
import type pg from 'pg'
import { ImportError, importPgHooks } from '../lib/store/import-pg-hooks.js'
import { deliveringApp, post, receiver, SERVER_ARGS, testDatabase, testPool } from './helpers.js'
import { FakeClock } from './fake-clock.js'
import { signal } from './signals.js'

// pg-hooks' tables as its migrations make them: public schema, SERIAL ids, TIMESTAMP, JSON headers
const PG_HOOKS_SCHEMA = `
  CREATE TABLE public.queues (
    id SERIAL PRIMARY KEY, name VARCHAR(255) NOT NULL, callback_url VARCHAR(2048) NOT NULL,
    method VARCHAR(10) NOT NULL DEFAULT 'POST', headers JSON, dead_letter_queue_id INTEGER REFERENCES public.queues (id),
    max_retries INTEGER NOT NULL DEFAULT 5, created_at TIMESTAMP NOT NULL DEFAULT now(), updated_at TIMESTAMP NOT NULL DEFAULT now());
  CREATE TABLE public.crons (
    id SERIAL PRIMARY KEY, queue_id INTEGER NOT NULL REFERENCES public.queues (id), schedule VARCHAR(255) NOT NULL,
    body TEXT, headers JSON, created_at TIMESTAMP NOT NULL DEFAULT now(), updated_at TIMESTAMP NOT NULL DEFAULT now());
  CREATE TABLE public.messages (
    id SERIAL PRIMARY KEY, queue_id INTEGER NOT NULL REFERENCES public.queues (id), "when" TIMESTAMP NOT NULL DEFAULT now(),
    body TEXT, failed BOOLEAN NOT NULL DEFAULT false, headers JSON, sent_at TIMESTAMP, retries INTEGER NOT NULL DEFAULT 0,
    cron_id INTEGER REFERENCES public.crons (id), created_at TIMESTAMP NOT NULL DEFAULT now(),
    updated_at TIMESTAMP NOT NULL DEFAULT now())`

async function pgHooksDatabase (pool: pg.Pool, callbackUrl: string): Promise<void> {
  await pool.query(PG_HOOKS_SCHEMA)
  // two queues named alike (pg-hooks allows it); the first dead-letters to the second
  await pool.query(`INSERT INTO public.queues (id, name, callback_url, headers, dead_letter_queue_id, max_retries) VALUES
    (2, 'orders', $1 || '/dlq', NULL, NULL, 5),
    (1, 'orders', $1 || '/orders', '"{\\"x-from\\": \\"pg-hooks\\"}"', 2, 3)`, [callbackUrl])
  await pool.query("INSERT INTO public.crons (id, queue_id, schedule, body, headers) VALUES (7, 1, '*/5 * * * *', 'tick', '{\"x-cron\": \"yes\"}')")
  await pool.query(`INSERT INTO public.messages (id, queue_id, "when", body, failed, sent_at, retries, cron_id) VALUES
    (10, 1, '2020-06-01 12:00:00', 'pending-1', false, NULL, 0, NULL),
    (11, 1, '2020-06-01 12:00:01', 'pending-2', false, NULL, 2, NULL),
    (12, 2, '2020-06-01 12:00:02', 'pending-3', false, NULL, 0, NULL),
    (13, 1, '2020-05-01 08:00:00', 'sent-1', false, '2020-05-01 08:00:01', 0, 7),
    (14, 1, '2020-05-01 08:05:00', 'sent-2', false, '2020-05-01 08:05:01', 1, 7),
    (15, 1, '2020-05-02 09:00:00', 'failed-1', true, NULL, 3, NULL)`)
  await pool.query("SELECT setval('public.queues_id_seq', 2), setval('public.crons_id_seq', 7), setval('public.messages_id_seq', 15)")
}

/** The command as the README gives it, in its own process. */
async function runImport (url: string, args: string[]): Promise<{ code: number, out: string }> {
  return await new Promise((resolve) => {
    execFile(process.execPath, [...SERVER_ARGS, 'import-pg-hooks', ...args],
      { env: { ...process.env, DATABASE_URL: url, PLT_ADMIN_SECRET: '' } },
      (err, stdout, stderr) => resolve({ code: err === null ? 0 : (err.code as number), out: stdout + stderr }))
  })
}

t.test('a pg-hooks database moves over: ids, times, links, then delivery and the next cron tick', async (t) => {
  const url = await testDatabase(t)
  const pool = testPool(t, url)
  const target = await receiver(t)
  await pgHooksDatabase(pool, target.url)

  const importedAt = Date.now()
  const run = await runImport(url, ['--timezone=Europe/Paris'])
  t.equal(run.code, 0, run.out)
  t.match(run.out, /pg-hooks import: done/)
  t.match(run.out, /"queues":2,"messages":6,"crons":1,"pending":3,"dead":1/)

  const queues = (await pool.query('SELECT id, name, callback_url, headers, max_retries, dead_letter_queue_id FROM hookpost.queues ORDER BY id')).rows
  t.same(queues.map(q => [q.id, q.name, q.dead_letter_queue_id, q.max_retries]), [['1', 'orders', '2', 3], ['2', 'orders', null, 5]],
    'ids, repeated names, the DLQ link and retry budgets kept')
  t.same(queues[0].headers, { 'x-from': 'pg-hooks' }, "headers given as a JSON string literal (pg-hooks' JSON scalar) read as the object")
  t.same(queues[1].headers, {}, 'no headers: none')
  const when = (await pool.query('SELECT "when" FROM hookpost.messages WHERE id = 10')).rows[0].when as Date
  t.equal(when.toISOString(), '2020-06-01T10:00:00.000Z', 'TIMESTAMP read in --timezone (Paris, summer: UTC+2)')
  const m = (await pool.query('SELECT id, sent_at IS NOT NULL AS sent, failed, attempts, retries, cron_id FROM hookpost.messages ORDER BY id')).rows
  t.same(m.map(r => [Number(r.id), r.sent, r.failed, r.retries, r.attempts]),
    [[10, false, false, 0, 0], [11, false, false, 2, 2], [12, false, false, 0, 0],
      [13, true, false, 0, 1], [14, true, false, 1, 2], [15, false, true, 3, 3]],
    'sent, pending and failed as they were; attempts counted from retries')
  const dead = (await pool.query('SELECT message_id, queue_id FROM hookpost.dead_letters')).rows
  t.same(dead.map(d => [Number(d.message_id), Number(d.queue_id)]), [[15, 1]], 'the failed message is dead, with its dead letter')
  const cron = (await pool.query('SELECT schedule, timezone, headers, next_tick_at FROM hookpost.crons WHERE id = 7')).rows[0]
  t.match(cron, { schedule: '*/5 * * * *', timezone: 'Europe/Paris', headers: { 'x-cron': 'yes' } })
  const fiveMinutes = 5 * 60_000
  const expected = Math.floor(importedAt / fiveMinutes) * fiveMinutes + fiveMinutes
  // or the one after it, when that next minute came (and the leader fired it) before this read: CI once
  // ran this across a */5 minute
  const nextTick = (cron.next_tick_at as Date).getTime()
  t.ok(nextTick === expected || (nextTick === expected + fiveMinutes && Date.now() >= expected),
    `the cron goes on from its schedule: the next */5 minute, not 2020 (${new Date(nextTick).toISOString()})`)

  const again = await runImport(url, ['--timezone', 'Europe/Paris'])
  t.equal(again.code, 0, again.out)
  t.match(again.out, /every row is already here; nothing done/, 'a second run changes nothing')
  t.equal((await pool.query('SELECT count(*)::int AS n FROM hookpost.messages')).rows[0].n, 6)
  t.same((await pool.query('SELECT count(*)::int AS n FROM public.messages')).rows[0].n, 6, 'the pg-hooks tables are left as they were')

  // hookpost takes over: the pending messages are delivered, new ids follow the imported ones
  const clock = new FakeClock(Date.now())
  const { app } = await deliveringApp(t, { url, cronClock: clock })
  await target.waitFor(3, 15_000)
  t.same(target.requests.map(r => `${r.url} ${r.body}`).sort(), ['/dlq pending-3', '/orders pending-1', '/orders pending-2'])
  t.equal(target.requests.find(r => r.body === 'pending-1')!.headers['x-from'], 'pg-hooks', 'with the queue headers')
  t.equal((await post(app, '/queues', { name: 'new', callbackUrl: target.url })).id, 3, 'a new queue gets the next id')
  t.equal((await post(app, '/messages', { queueId: 3, body: 'x', when: '2099-01-01T00:00:00Z' })).id, 16)
  // and the cron fires at its next tick. Its messages are due at the tick, minutes away on the wall
  // clock, so (as test/cron.test.ts does) the tick is moved to a past whole minute and the scheduler's
  // clock there
  const crons = app.delivery!.crons
  const next = Math.floor(Date.now() / fiveMinutes) * fiveMinutes - fiveMinutes
  await pool.query('UPDATE hookpost.crons SET next_tick_at = $1 WHERE id = 7', [new Date(next)])
  const fired = signal<[{ at: Date, ticks: number }]>(crons, 'fired', (e) => e.at.getTime() >= next)
  clock.set(next)
  crons.notify()
  t.equal((await fired)[0].ticks, 1, 'one tick')
  await target.waitFor(4, 15_000)
  const tick = target.requests.find(r => r.body === 'tick')!
  t.equal(tick.url, '/orders')
  t.equal(tick.headers['x-cron'], 'yes')
})

t.test('an import whose ids are taken by other rows is refused, and writes nothing', async (t) => {
  const url = await testDatabase(t)
  const pool = testPool(t, url)
  await pool.query("INSERT INTO hookpost.queues (id, name, callback_url) VALUES (1, 'mine', 'http://127.0.0.1:9/mine')")
  await pgHooksDatabase(pool, 'http://127.0.0.1:9')
  const run = await runImport(url, [])
  t.equal(run.code, 1, run.out)
  t.match(run.out, /refused: ids of the pg-hooks tables are already taken in hookpost by other rows \(queues 1 of 2/)
  t.same((await pool.query('SELECT (SELECT count(*) FROM hookpost.queues)::int AS q, (SELECT count(*) FROM hookpost.messages)::int AS m')).rows[0],
    { q: 1, m: 0 }, 'nothing imported: one transaction')
  // the same checks, called as the command calls them (a process each would only cost time)
  await t.rejects(importPgHooks(pool, { schema: 'public', timezone: 'Mars/Olympus' }),
    new ImportError('--timezone: unknown time zone Mars/Olympus'))
  await t.rejects(importPgHooks(pool, { schema: 'nowhere', timezone: 'UTC' }), { message: /no pg-hooks tables in schema nowhere/ })
})

t.test('attack round: sequences never go back, headers the API refuses and rows hookpost cannot hold are named', async (t) => {
  const url = await testDatabase(t)
  const pool = testPool(t, url)
  // hookpost tried first: ids 1..20 used, then deleted
  await pool.query("INSERT INTO hookpost.queues (name, callback_url) VALUES ('trial', 'http://127.0.0.1:9/t')")
  await pool.query("INSERT INTO hookpost.messages (queue_id, body, sent_at) SELECT 1, 'trial', now() FROM generate_series(1, 20)")
  await pool.query('DELETE FROM hookpost.messages; DELETE FROM hookpost.queues')
  await pool.query(PG_HOOKS_SCHEMA)
  await pool.query("INSERT INTO public.queues (id, name, callback_url, headers) VALUES (5, 'q', 'http://127.0.0.1:9/q', '{\"x-n\": 1}')")
  await pool.query("INSERT INTO public.messages (id, queue_id, body, sent_at) VALUES (3, 5, 'old', now())")
  await t.rejects(importPgHooks(pool, { schema: 'public', timezone: 'UTC' }),
    { message: /queue 5: headers: x-n must be a string, not number/ }, 'a header the API refuses, with its row')
  await pool.query("UPDATE public.queues SET headers = '{\"x-n\": \"1\"}', callback_url = 'localhost:9/q'")
  const bad = await runImport(url, [])
  t.equal(bad.code, 1)
  t.match(bad.out, /queues: .*queues_callback_url_check.*fix it in pg-hooks' table first/, 'a row hookpost cannot hold, said with its table')
  t.notMatch(bad.out, /at .*\.js:\d+/, 'no stack trace')
  await pool.query("UPDATE public.queues SET callback_url = 'http://127.0.0.1:9/q'")
  t.match(await importPgHooks(pool, { schema: 'public', timezone: 'UTC' }), { status: 'imported', queues: 1, messages: 1 })
  const { rows: [m] } = await pool.query("INSERT INTO hookpost.messages (queue_id, body) VALUES (5, 'new') RETURNING id")
  t.ok(Number(m.id) > 20, `a new message gets id ${m.id}, past the 20 hookpost used before: receivers never see an id twice`)
  const { rows: [c] } = await pool.query("INSERT INTO hookpost.crons (queue_id, schedule) VALUES (5, '0 * * * *') RETURNING id")
  t.equal(Number(c.id), 1, 'a table pg-hooks had nothing in keeps its sequence')
})
