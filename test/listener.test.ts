// The LISTEN connection (lib/db/listener.ts) against a real PostgreSQL: it comes back by itself, and a
// connection lost while it was being set up is never taken for the live one.
import t from 'tap'
import { Listener } from '../lib/db/listener.js'
import { eventually, silentLog, testDatabase, testPool } from './helpers.js'

t.test('attack round: a connection lost while being set up is not made current; the next failures are still seen', async (t) => {
  const url = await testDatabase(t)
  const pool = testPool(t, url)
  let calls = 0
  // no channels: nothing is awaited after the setup hook, as with the error arriving with LISTEN's answer
  const listener = new Listener(url, [], silentLog, async (c) => {
    calls++
    // 1: the connection errors as its setup ends (a termination arriving with the last answer);
    // 2: the next try fails outright; 3: it works
    if (calls === 1) c.emit('error', new Error('terminating connection due to administrator command'))
    if (calls === 2) throw new Error('the worker lock is still held by the previous session')
  })
  t.teardown(async () => { await listener.stop() })
  await listener.start()
  // before the fix the first, dead connection was made current, the second try's failure was taken for
  // a stale one's and ignored, and nothing tried again until the heartbeat, 10 s on
  await eventually(async () => calls === 3 && listener.connected, 5000)
  const { rows: [n] } = await pool.query(`SELECT count(*)::int AS n FROM pg_stat_activity
    WHERE datname = current_database() AND application_name = 'hookpost-listen'`)
  t.equal(n.n, 1, 'one LISTEN connection: the failed tries were closed')
})
