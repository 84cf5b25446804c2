// Two server processes on one database with a per-second cron: kill the leader, and no tick fires
// twice or goes missing (a failover of a few seconds is within the on-time grace). The test waits on
// facts (ticks in the database, the servers' log lines), never for a fixed time.
import t from 'tap'
import { eventually, isLeader, receiver, spawnServer, testDatabase, testPool } from './helpers.js'

t.test('kill -9 the leader: every tick exactly once', async (t) => {
  const url = await testDatabase(t)
  const pool = testPool(t, url)
  const target = await receiver(t)
  // a follower tries for the lock every 200 ms: the failover is quick, the grace still covers it; a
  // tick the dead leader had claimed comes back after 1 s, not the default 10 s
  const env = { DATABASE_URL: url, HOOKPOST_LEADER_POLL_MS: '200', HOOKPOST_REAP_GRACE_MS: '1000' }
  const servers = await Promise.all([0, 1].map(async () => await spawnServer(t, env)))
  const leader = (await eventually(async () => servers.find(isLeader), 10_000))!
  const api = servers.find(s => s !== leader)!.url
  const json = { 'content-type': 'application/json' }
  const create = async (path: string, body: object): Promise<{ id: number }> => {
    const res = await fetch(`${api}${path}`, { method: 'POST', headers: json, body: JSON.stringify(body) })
    return await res.json() as { id: number }
  }
  const q = await create('/queues', { name: 'cf', callbackUrl: target.url })
  const c = await create('/crons', { queueId: q.id, schedule: '* * * * * *' })
  const lastTick = async (): Promise<number> => {
    const { rows } = await pool.query('SELECT max(tick_at) AS at FROM hookpost.messages WHERE cron_id = $1', [c.id])
    return (rows[0].at as Date | null)?.getTime() ?? 0
  }

  // the first leader has fired a tick
  await eventually(async () => await lastTick() > 0, 10_000)
  const killedAt = Date.now()
  leader.proc.kill('SIGKILL')
  await leader.exited
  await eventually(async () => servers.some(s => s !== leader && isLeader(s)), 5000)
  // the new leader has fired the ticks of the failover: a tick after the kill can only be its
  await eventually(async () => await lastTick() > killedAt, 10_000)
  await fetch(`${api}/crons/${c.id}`, { method: 'PUT', headers: json, body: JSON.stringify({ paused: true }) })

  const { rows } = await pool.query(`SELECT tick_at, count(*)::int AS n FROM hookpost.messages WHERE cron_id = $1
    GROUP BY tick_at ORDER BY tick_at`, [c.id])
  const ticks = rows.map(r => (r.tick_at as Date).getTime())
  t.ok(ticks[0]! < killedAt && ticks.at(-1)! > killedAt, `${ticks.length} ticks, before the kill and after it`)
  t.ok(rows.every(r => r.n === 1), 'no tick fired twice')
  const gaps = ticks.slice(1).map((x, i) => x - ticks[i]!)
  t.same(gaps, Array(ticks.length - 1).fill(1000), 'no tick lost across the failover')
  await target.waitFor(ticks.length, 10_000)
})
