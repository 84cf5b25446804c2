// The leader hands back the claims of processes that died: lib/delivery/sql.ts unlockedClaimOwners and
// reapDeadClaims, run by lib/services/reaper.ts once a process has stayed without its lock for the grace.
import t from 'tap'
import { WORKER_LOCK_CLASS } from '../lib/db/locks.js'
import { reapDeadClaims, unlockedClaimOwners } from '../lib/delivery/sql.js'
import { FakeClock } from './fake-clock.js'
import { testDatabase, testPool } from './helpers.js'

t.test('only claims older than 10 s whose process holds no worker lock come back; nothing else is touched', async (t) => {
  const url = await testDatabase(t)
  const pool = testPool(t, url)
  const q = (await pool.query("INSERT INTO hookpost.queues (name, callback_url) VALUES ('q', 'http://127.0.0.1:9/x') RETURNING id")).rows[0].id
  const message = async (body: string, set: string): Promise<number> => {
    const id = (await pool.query('INSERT INTO hookpost.messages (queue_id, body) VALUES ($1, $2) RETURNING id', [q, body])).rows[0].id
    await pool.query(`UPDATE hookpost.messages SET ${set} WHERE id = $1`, [id])
    return id
  }
  // a live process: its worker lock is held by a session of its own
  const live = await pool.connect()
  t.teardown(() => live.release())
  await live.query('SELECT pg_advisory_lock($1, hashtext($2))', [WORKER_LOCK_CLASS, 'live-worker'])

  const dead = await message('dead', "locked_by = 'dead-worker', locked_at = now() - interval '20 seconds', run_at = now() + interval '40 seconds'")
  const deadLongLease = await message('dead, 5 min lease', "locked_by = 'dead-worker', locked_at = now() - interval '20 seconds', run_at = now() + interval '280 seconds'")
  const alive = await message('alive', "locked_by = 'live-worker', locked_at = now() - interval '20 seconds', run_at = now() + interval '40 seconds'")
  const young = await message('young', "locked_by = 'dead-worker', locked_at = now() - interval '2 seconds', run_at = now() + interval '58 seconds'")
  const scheduled = await message('scheduled', "run_at = now() + interval '3 days', \"when\" = now() + interval '3 days'")
  const sent = await message('sent', "locked_by = 'dead-worker', locked_at = now() - interval '20 seconds', run_at = now() + interval '40 seconds', sent_at = now()")

  const owners = (await pool.query(unlockedClaimOwners(60_000))).rows.map(r => r.owner)
  t.same(owners, ['dead-worker'], 'the process without its lock, once; not the live one, nor owners of sent rows only')
  const { rows } = await pool.query(reapDeadClaims(['dead-worker', 'live-worker'], 60_000, 10_000))
  t.same(rows.map(r => r.id).sort((a, b) => a - b), [dead, deadLongLease].sort((a, b) => a - b), "the dead process's claims, including one with a queue timeout's longer lease")

  const state = async (id: number): Promise<{ lockedBy: string | null, due: boolean }> =>
    (await pool.query('SELECT locked_by AS "lockedBy", run_at <= now() AS due FROM hookpost.messages WHERE id = $1', [id])).rows[0]
  t.same(await state(dead), { lockedBy: null, due: true }, 'handed back: unlocked and due now')
  t.same(await state(alive), { lockedBy: 'live-worker', due: false }, 'a live process keeps its claim')
  t.same(await state(young), { lockedBy: 'dead-worker', due: false }, 'a claim younger than 10 s is left alone')
  t.same(await state(scheduled), { lockedBy: null, due: false }, 'a scheduled message is not touched')
  t.same(await state(sent), { lockedBy: 'dead-worker', due: false }, 'nor a sent one')
  t.same((await pool.query(reapDeadClaims(['dead-worker', 'live-worker'], 60_000, 10_000))).rows, [], 'a second pass finds nothing')
  // the grace is the operator's (HOOKPOST_REAP_GRACE_MS): at 1 s the young claim is handed back too
  t.same((await pool.query(reapDeadClaims(['dead-worker'], 60_000, 1000))).rows.map(r => r.id), [young], 'a shorter grace reaps younger claims')
})

t.test('the Reaper hands claims back once their process has stayed without its lock for the grace, not before', async (t) => {
  const { Reaper } = await import('../lib/services/reaper.js')
  const { silentLog } = await import('./helpers.js')
  const { signal } = await import('./signals.js')
  const url = await testDatabase(t)
  const pool = testPool(t, url)
  const q = (await pool.query(
    "INSERT INTO hookpost.queues (name, callback_url) VALUES ('q', 'http://127.0.0.1:9/x') RETURNING id")).rows[0].id
  const claimed = async (owner: string): Promise<number> => {
    const { rows: [m] } = await pool.query("INSERT INTO hookpost.messages (queue_id, body) VALUES ($1, 'a') RETURNING id", [q])
    await pool.query(`UPDATE hookpost.messages SET locked_by = $1, locked_at = now() - interval '20 seconds',
      run_at = now() + interval '40 seconds' WHERE id = $2`, [owner, m.id])
    return m.id
  }
  const gone = await claimed('gone')
  // a process whose LISTEN connection is reconnecting: without its lock now, back within the grace
  const blip = await claimed('blip')
  const clock = new FakeClock()
  const reaper = new Reaper(pool, 60_000, 10_000, silentLog, clock)
  t.teardown(async () => await reaper.stop())
  // each pass: wait until the loop sleeps, then move the clock past its sleep
  let asleep = signal(reaper, 'idle')
  const pass = async (): Promise<string[]> => {
    await asleep
    const checked = signal<[{ unlocked: string[] }]>(reaper, 'checked')
    asleep = signal(reaper, 'idle')
    clock.advance(2000)
    return (await checked)[0].unlocked.sort()
  }
  let reaped = 0
  reaper.on('reaped', ({ count }) => { reaped += count })
  const first = signal<[{ unlocked: string[] }]>(reaper, 'checked')
  reaper.start()
  t.same((await first)[0].unlocked.sort(), ['blip', 'gone'], 'both seen without their lock at election')
  t.equal(reaped, 0, 'but nothing handed back yet, however old the claims')
  for (let i = 0; i < 3; i++) await pass()
  const lock = await pool.connect()
  t.teardown(() => lock.release())
  await lock.query('SELECT pg_advisory_lock($1, hashtext($2))', [WORKER_LOCK_CLASS, 'blip'])
  t.same(await pass(), ['gone'], 'blip is back after 6 s')
  await pass()
  t.equal(reaped, 1, '10 s after it was first seen so, the dead process\'s claim is handed back')
  const state = async (id: number): Promise<string | null> =>
    (await pool.query('SELECT locked_by FROM hookpost.messages WHERE id = $1', [id])).rows[0].locked_by
  t.equal(await state(gone), null)
  t.equal(await state(blip), 'blip', 'the process whose connection came back keeps its claim')
  await lock.query('SELECT pg_advisory_unlock($1, hashtext($2))', [WORKER_LOCK_CLASS, 'blip'])
  for (let i = 0; i < 5; i++) await pass()
  t.equal(reaped, 1, 'blip lost its lock again 8 s ago: its grace starts over')
  await pass()
  t.equal(reaped, 2, 'and ends 10 s after the second loss')
})
