// lib/db/leader.ts against a real PostgreSQL: one leader per lock, a handover when the leader stops,
// and demotion as soon as the lock's session is gone. Waits on the elected/demoted signals.
import t from 'tap'
import { Leader } from '../lib/db/leader.js'
import { silentLog, testDatabase, testPool } from './helpers.js'
import { signal } from './signals.js'

const LOCK = 917_001
const POLL_MS = 50

t.test('one leader at a time; stop hands over; a killed lock session demotes at once', async (t) => {
  const url = await testDatabase(t)
  const pool = testPool(t, url)
  const a = new Leader(url, LOCK, POLL_MS, silentLog)
  const b = new Leader(url, LOCK, POLL_MS, silentLog)
  t.teardown(async () => { await a.stop(); await b.stop() })

  const aElected = signal(a, 'elected')
  a.start()
  await aElected
  const bElected = signal(b, 'elected')
  b.start()
  await signal<[{ leader: boolean }]>(b, 'checked', (c) => !c.leader)
  t.ok(a.isLeader && !b.isLeader, 'the second process tried, and follows')

  const aDemoted = signal(a, 'demoted')
  await a.stop()
  await aDemoted
  await bElected
  t.ok(b.isLeader, 'the follower took over once the leader stopped')

  const bDemoted = signal(b, 'demoted')
  await pool.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE datname = current_database() AND application_name = 'hookpost-leader'`)
  await bDemoted
  t.notOk(b.isLeader, 'demoted when its lock connection died')
  await signal(b, 'elected')
  t.ok(b.isLeader, 'and elected again on a new connection, the lock being free')
})
