// Crons end to end, with the scheduler on a fake clock (BuildOptions.cronClock): a test sets the
// scheduler's time to make ticks due and waits on its 'fired' signal, never on the wall clock. The API
// computes next ticks from the wall clock (lib/store/crons.ts), so a test puts a cron's next tick where
// the fake clock is, in the past: its messages are then due, and delivered, at once.
import t from 'tap'
import type pg from 'pg'
import type { CronScheduler } from '../lib/services/cron.js'
import { deliveringApp, post, receiver } from './helpers.js'
import { FakeClock } from './fake-clock.js'
import { signal } from './signals.js'

// each test has its own app, database and clock, and none waits on the wall clock: side by side
t.jobs = 4

async function ticksOf (pool: pg.Pool, cronId: number): Promise<number[]> {
  const { rows } = await pool.query(
    'SELECT tick_at FROM hookpost.messages WHERE cron_id = $1 ORDER BY tick_at', [cronId])
  return rows.map(r => (r.tick_at as Date).getTime())
}

/** a whole second half a minute ago: the scheduler's clock starts just before it */
const pastSecond = (): number => Math.floor(Date.now() / 1000) * 1000 - 30_000

/**
 * Set the scheduler's time and let it look: resolves with that look's 'fired' signal. The time always
 * moves, by 1 ms at least, so that a look already under way (at the old time) is not taken for it.
 */
async function fireAt (crons: CronScheduler, clock: FakeClock, to: number): Promise<{ ticks: number, crons: number }> {
  const at = Math.max(to, clock.now() + 1)
  const fired = signal<[{ at: Date, ticks: number, crons: number }]>(crons, 'fired', (e) => e.at.getTime() >= at)
  clock.set(at)
  crons.notify()
  return (await fired)[0]
}

async function cronAt (pool: pg.Pool, id: number, at: number): Promise<void> {
  await pool.query('UPDATE hookpost.crons SET next_tick_at = $1 WHERE id = $2', [new Date(at), id])
}

t.test('a per-second cron fires once per tick, each tick one message on the schedule', async (t) => {
  const T0 = pastSecond()
  const clock = new FakeClock(T0 - 500)
  const target = await receiver(t)
  const { app, pool } = await deliveringApp(t, { cronClock: clock })
  const crons = app.delivery!.crons
  const q = await post(app, '/queues', { name: 'c', callbackUrl: target.url })
  const c = await post(app, '/crons', { queueId: q.id, schedule: '* * * * * *', body: { beat: true } })
  await cronAt(pool, c.id, T0)
  t.match(await fireAt(crons, clock, T0 + 3500), { ticks: 4, crons: 1 }, '3.5 s on the clock: four ticks')
  t.equal((await fireAt(crons, clock, T0 + 3999)).ticks, 0, 'nothing more until the next second')
  await post(app, `/crons/${c.id}`, { paused: true }, 'PUT')
  const ticks = await ticksOf(pool, c.id)
  t.same(ticks, [T0, T0 + 1000, T0 + 2000, T0 + 3000], 'consecutive whole seconds, none twice, none skipped')
  t.ok(ticks.every(x => x % 1000 === 0), 'every tick is on a whole second')
  await target.waitFor(ticks.length)
  t.same(JSON.parse(target.requests[0]!.body), { beat: true })
  const m = (await app.inject({ url: `/messages?where.cronId.eq=${c.id}&limit=1` })).json()[0]
  t.equal(m.cronId, c.id)
})

t.test('an endpoint that always fails: as many messages as ticks, not a growing multiple', async (t) => {
  const T0 = pastSecond()
  const clock = new FakeClock(T0 - 500)
  const failing = await receiver(t, (_r, res) => { res.statusCode = 500; res.end() })
  const { app, pool } = await deliveringApp(t, { cronClock: clock })
  const crons = app.delivery!.crons
  const q = await post(app, '/queues', {
    name: 'f', callbackUrl: failing.url, maxRetries: 10, backoffBaseMs: 100, backoffMaxMs: 200, backoffJitter: 'none'
  })
  const c = await post(app, '/crons', { queueId: q.id, schedule: '* * * * * *' })
  await cronAt(pool, c.id, T0)
  t.equal((await fireAt(crons, clock, T0 + 3500)).ticks, 4)
  // every message fails twice more: retries come and go while the clock stands
  await failing.waitFor(3 * 4, 10_000)
  t.equal((await fireAt(crons, clock, T0 + 3500)).ticks, 0, 'another look at the same time fires nothing')
  await post(app, `/crons/${c.id}`, { paused: true }, 'PUT')
  const { rows } = await pool.query(
    'SELECT count(*)::int AS n, count(DISTINCT tick_at)::int AS d FROM hookpost.messages')
  t.equal(rows[0].n, rows[0].d, 'one message per tick')
  t.equal(rows[0].n, 4, `${rows[0].n} messages for 4 ticks`)
  const calls = failing.requests.length
  t.ok(calls > rows[0].n * 2, `retries happened (${calls} calls) without creating messages`)
})

t.test('updating the schedule replaces the future ticks; pause and resume; delete keeps history', async (t) => {
  const T0 = pastSecond()
  const clock = new FakeClock(T0 - 500)
  const target = await receiver(t)
  const { app, pool } = await deliveringApp(t, { cronClock: clock })
  const crons = app.delivery!.crons
  const q = await post(app, '/queues', { name: 'u', callbackUrl: target.url })
  const c = await post(app, '/crons', { queueId: q.id, schedule: '* * * * * *' })
  await cronAt(pool, c.id, T0)
  t.equal((await fireAt(crons, clock, T0 + 1500)).ticks, 2)

  const changedAt = Date.now()
  const switched = await post(app, `/crons/${c.id}`, { schedule: '*/2 * * * * *' }, 'PUT')
  const next = Date.parse(switched.nextTickAt)
  // an even second after the change was made (no short window: the response may come late on a busy box)
  t.ok(next % 2000 === 0 && next > changedAt - 1000 && next <= Date.now() + 2000, 'the next tick is the next even second')
  // back where the scheduler's clock is, on the new schedule's terms
  const even = T0 + 2000 + (T0 % 2000)
  await cronAt(pool, c.id, even)
  t.equal((await fireAt(crons, clock, even + 4500)).ticks, 3)
  const after = (await ticksOf(pool, c.id)).filter(x => x > T0 + 1000)
  t.same(after, [even, even + 2000, even + 4000], 'only even seconds: the old chain is gone')

  await post(app, `/crons/${c.id}`, { paused: true }, 'PUT')
  const pausedAt = clock.now()
  t.equal((await fireAt(crons, clock, pausedAt + 2500)).ticks, 0)
  t.same((await ticksOf(pool, c.id)).filter(x => x > pausedAt), [], 'paused: no ticks')
  // the API reschedules from the wall clock: the scheduler's clock goes back there first, or the look
  // the resume's NOTIFY brings would find the ticks between the two clocks due
  clock.set(Date.now() - 1000)
  const resumingAt = Date.now()
  const resumed = await post(app, `/crons/${c.id}`, { paused: false }, 'PUT')
  const resumedAt = Date.parse(resumed.nextTickAt)
  // the pause lasted 2.5 s of the scheduler's clock: a catch-up would give a tick before the resume
  t.ok(resumedAt > resumingAt - 1000, 'resuming starts from now, no catch-up of the pause')
  t.equal((await fireAt(crons, clock, resumedAt + 2500)).ticks, 2, 'resumed: ticks again, from its next tick')
  t.same((await ticksOf(pool, c.id)).filter(x => x > pausedAt), [resumedAt, resumedAt + 2000])

  const before = (await ticksOf(pool, c.id)).length
  const del = await app.inject({ method: 'DELETE', url: `/crons/${c.id}` })
  t.equal(del.statusCode, 200, 'a cron with messages can be deleted')
  t.equal((await fireAt(crons, clock, resumedAt + 6500)).ticks, 0)
  const kept = await pool.query('SELECT count(*)::int AS n, count(cron_id)::int AS linked FROM hookpost.messages')
  t.ok(kept.rows[0].n >= before, 'its messages stay')
  t.equal(kept.rows[0].linked, 0, 'with cronId cleared')
  t.equal(kept.rows[0].n, before, 'and no tick after the delete')
})

t.test('missed ticks: one catch-up by default, none with skip', async (t) => {
  const clock = new FakeClock(Date.now())
  const target = await receiver(t)
  const { app, pool } = await deliveringApp(t, { cronClock: clock })
  const q = await post(app, '/queues', { name: 'm', callbackUrl: target.url })
  // yearly, so no tick can be on time while the test runs
  const once = await post(app, '/crons', { queueId: q.id, schedule: '0 0 1 1 *', missedTicks: 'once' })
  const skip = await post(app, '/crons', { queueId: q.id, schedule: '0 0 1 1 *', missedTicks: 'skip' })
  // as if no leader had run for five years
  await pool.query("UPDATE hookpost.crons SET next_tick_at = date_trunc('year', now()) - interval '5 years'")
  // a look from the creating NOTIFY may be the one that fires them: the database says what happened
  await fireAt(app.delivery!.crons, clock, clock.now())
  const moved = await pool.query('SELECT bool_and(next_tick_at > $1) AS ok FROM hookpost.crons',
    [new Date(clock.now())])
  t.ok(moved.rows[0].ok, 'both moved on to their next tick')
  const caught = await ticksOf(pool, once.id)
  t.equal(caught.length, 1, 'once: a single catch-up message')
  t.equal(new Date(caught[0]!).toISOString().slice(5, 19), '01-01T00:00:00', 'labelled with the latest missed tick')
  t.equal((await ticksOf(pool, skip.id)).length, 0, 'skip: none')
  await target.waitFor(1)
})
