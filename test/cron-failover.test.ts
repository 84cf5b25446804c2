// Two server processes on one database with a per-second cron: kill the leader, and no tick fires
// twice or goes missing (a failover of a few seconds is within the on-time grace).
import t from 'tap'
import { eventually, receiver, sleep, spawnServer, testDatabase, testPool, isLeader } from './helpers.js'


t.test('kill -9 the leader: every tick exactly once', async (t) => {
  const url = await testDatabase(t)
  const pool = testPool(t, url)
  const target = await receiver(t)
  const servers = await Promise.all([0, 1].map(async () => await spawnServer(t, { DATABASE_URL: url })))
  const leader = (await eventually(async () => servers.find(isLeader), 10_000))!
  const api = servers.find(s => s !== leader)!.url
  const json = { 'content-type': 'application/json' }
  const q = await (await fetch(`${api}/queues`, { method: 'POST', headers: json, body: JSON.stringify({ name: 'cf', callbackUrl: target.url }) })).json() as { id: number }
  const c = await (await fetch(`${api}/crons`, { method: 'POST', headers: json, body: JSON.stringify({ queueId: q.id, schedule: '* * * * * *' }) })).json() as { id: number }

  await sleep(3000)
  leader.proc.kill('SIGKILL')
  await leader.exited
  await eventually(async () => servers.some(s => s !== leader && isLeader(s)), 5000)
  await sleep(4000)
  await fetch(`${api}/crons/${c.id}`, { method: 'PUT', headers: json, body: JSON.stringify({ paused: true }) })

  const { rows } = await pool.query('SELECT tick_at, count(*)::int AS n FROM hookpost.messages WHERE cron_id = $1 GROUP BY tick_at ORDER BY tick_at', [c.id])
  const ticks = rows.map(r => (r.tick_at as Date).getTime())
  t.ok(ticks.length >= 6, `${ticks.length} ticks over about 7 s`)
  t.ok(rows.every(r => r.n === 1), 'no tick fired twice')
  t.same(ticks.slice(1).map((x, i) => x - ticks[i]!), Array(ticks.length - 1).fill(1000), 'no tick lost across the failover')
  await target.waitFor(ticks.length, 10_000)
})
