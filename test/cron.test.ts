import t from 'tap'
import { deliveringApp, eventually, post, receiver, sleep } from './helpers.js'

async function ticksOf (pool: import('pg').Pool, cronId: number): Promise<number[]> {
  const { rows } = await pool.query('SELECT tick_at FROM hookpost.messages WHERE cron_id = $1 ORDER BY tick_at', [cronId])
  return rows.map(r => (r.tick_at as Date).getTime())
}

t.test('a per-second cron fires once per tick, each tick one message on the schedule', async (t) => {
  const target = await receiver(t)
  const { app, pool } = await deliveringApp(t)
  const q = await post(app, '/queues', { name: 'c', callbackUrl: target.url })
  const c = await post(app, '/crons', { queueId: q.id, schedule: '* * * * * *', body: { beat: true } })
  const t0 = Date.now()
  await sleep(3600)
  await post(app, `/crons/${c.id}`, { paused: true }, 'PUT')
  const elapsedTicks = Math.floor(Date.now() / 1000) - Math.floor(t0 / 1000)
  const ticks = await ticksOf(pool, c.id)
  t.ok(ticks.length >= elapsedTicks - 1 && ticks.length <= elapsedTicks + 1, `${ticks.length} messages for ${elapsedTicks} elapsed ticks`)
  t.ok(ticks.every(x => x % 1000 === 0), 'every tick is on a whole second')
  t.same(ticks.slice(1).map((x, i) => x - ticks[i]!), Array(ticks.length - 1).fill(1000), 'consecutive seconds, none twice, none skipped')
  await target.waitFor(ticks.length)
  t.same(JSON.parse(target.requests[0]!.body), { beat: true })
  const m = (await app.inject({ url: `/messages?where.cronId.eq=${c.id}&limit=1` })).json()[0]
  t.equal(m.cronId, c.id)
})

t.test('an endpoint that always fails: as many messages as ticks, not a growing multiple', async (t) => {
  const failing = await receiver(t, (_r, res) => { res.statusCode = 500; res.end() })
  const { app, pool } = await deliveringApp(t)
  const q = await post(app, '/queues', { name: 'f', callbackUrl: failing.url, maxRetries: 10, backoffBaseMs: 100, backoffMaxMs: 200, backoffJitter: 'none' })
  const c = await post(app, '/crons', { queueId: q.id, schedule: '* * * * * *' })
  const t0 = Date.now()
  await sleep(4200)
  await post(app, `/crons/${c.id}`, { paused: true }, 'PUT')
  const elapsedTicks = Math.floor(Date.now() / 1000) - Math.floor(t0 / 1000)
  const { rows } = await pool.query('SELECT count(*)::int AS n, count(DISTINCT tick_at)::int AS d FROM hookpost.messages')
  t.equal(rows[0].n, rows[0].d, 'one message per tick')
  t.ok(rows[0].n <= elapsedTicks + 1, `${rows[0].n} messages for ${elapsedTicks} ticks`)
  t.ok(failing.requests.length > rows[0].n * 2, `retries happened (${failing.requests.length} calls) without creating messages`)
})

t.test('updating the schedule replaces the future ticks; pause and resume; delete keeps history', async (t) => {
  const target = await receiver(t)
  const { app, pool } = await deliveringApp(t)
  const q = await post(app, '/queues', { name: 'u', callbackUrl: target.url })
  const c = await post(app, '/crons', { queueId: q.id, schedule: '* * * * * *' })
  await sleep(1500)
  const switched = Date.now()
  await post(app, `/crons/${c.id}`, { schedule: '*/2 * * * * *' }, 'PUT')
  await sleep(4200)
  const after = (await ticksOf(pool, c.id)).filter(x => x > switched)
  t.ok(after.length >= 1 && after.length <= 3, `${after.length} ticks in 4 s at the new schedule`)
  t.ok(after.every(x => (x / 1000) % 2 === 0), 'only even seconds: the old chain is gone')

  await post(app, `/crons/${c.id}`, { paused: true }, 'PUT')
  const pausedAt = Date.now()
  await sleep(2500)
  t.same((await ticksOf(pool, c.id)).filter(x => x > pausedAt + 100), [], 'paused: no ticks')
  const resumed = await post(app, `/crons/${c.id}`, { paused: false }, 'PUT')
  t.ok(Date.parse(resumed.nextTickAt) > Date.now() - 100, 'resuming starts from now, no catch-up of the pause')
  await eventually(async () => (await ticksOf(pool, c.id)).some(x => x > pausedAt + 2500), 5000)
  t.pass('resumed: ticks again')

  const before = (await ticksOf(pool, c.id)).length
  const del = await app.inject({ method: 'DELETE', url: `/crons/${c.id}` })
  t.equal(del.statusCode, 200, 'a cron with messages can be deleted')
  await sleep(2500)
  const kept = await pool.query('SELECT count(*)::int AS n, count(cron_id)::int AS linked FROM hookpost.messages')
  t.ok(kept.rows[0].n >= before, 'its messages stay')
  t.equal(kept.rows[0].linked, 0, 'with cronId cleared')
  t.equal(kept.rows[0].n, before, 'and no tick after the delete')
})

t.test('missed ticks: one catch-up by default, none with skip', async (t) => {
  const target = await receiver(t)
  const { app, pool } = await deliveringApp(t)
  const q = await post(app, '/queues', { name: 'm', callbackUrl: target.url })
  // yearly, so no tick can be on time while the test runs
  const once = await post(app, '/crons', { queueId: q.id, schedule: '0 0 1 1 *', missedTicks: 'once' })
  const skip = await post(app, '/crons', { queueId: q.id, schedule: '0 0 1 1 *', missedTicks: 'skip' })
  // as if no leader had run for five years
  await pool.query("UPDATE hookpost.crons SET next_tick_at = date_trunc('year', now()) - interval '5 years'; NOTIFY hookpost_crons")
  await eventually(async () => (await pool.query('SELECT bool_and(next_tick_at > now()) AS ok FROM hookpost.crons')).rows[0].ok)
  const caught = await ticksOf(pool, once.id)
  t.equal(caught.length, 1, 'once: a single catch-up message')
  t.equal(new Date(caught[0]!).toISOString().slice(5, 19), '01-01T00:00:00', 'labelled with the latest missed tick')
  t.equal((await ticksOf(pool, skip.id)).length, 0, 'skip: none')
  await target.waitFor(1)
})
