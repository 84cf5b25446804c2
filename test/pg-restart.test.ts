// PostgreSQL restarts under a running server: it reconnects by itself and delivers what was enqueued
// before and after. Uses its own embedded PostgreSQL, so the shared server is never restarted.
import { chmodSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { build } from '../lib/app.js'
import { makeConfig } from '../lib/config.js'
import { freePort, startEmbedded } from '../lib/db/embedded.js'
import { eventually, receiver, silentLog, sleep } from './helpers.js'

t.test('a PostgreSQL restart: reconnect, then deliver messages from before and after', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hookpost-restart-'))
  chmodSync(dir, 0o755)
  const port = await freePort()
  let pg = await startEmbedded(dir, silentLog, { port })
  t.teardown(async () => { await pg.stop() })
  const target = await receiver(t)
  const app = await build(
    makeConfig({ db: { connectionString: pg.connectionString }, hooks: { leaderPollMs: 200, pollMs: 500 } }),
    { logger: silentLog }
  )
  t.teardown(async () => { await app.close() })
  await app.ready()

  const q = (await app.inject({ method: 'POST', url: '/queues', payload: { name: 'r', callbackUrl: target.url } })).json()
  const dueAt = Date.now() + 1500
  const before = await app.inject({ method: 'POST', url: '/messages', payload: { queueId: q.id, body: 'before', when: new Date(dueAt).toISOString() } })
  t.equal(before.statusCode, 200)

  await pg.stop()
  const down = await app.inject({ url: '/health' })
  t.equal(down.statusCode, 200, 'liveness holds while the database is down')
  t.equal(down.json().database, 'down')
  const refused = await app.inject({ method: 'POST', url: '/messages', payload: { queueId: q.id, body: 'lost?' } })
  t.equal(refused.statusCode, 503, 'an enqueue during the outage is refused, not silently dropped: ' + refused.body)
  await sleep(Math.max(0, dueAt - Date.now() + 100)) // until "before" is due, the database still away

  pg = await startEmbedded(dir, silentLog, { port })
  const after = await eventually(async () => {
    const r = await app.inject({ method: 'POST', url: '/messages', payload: { queueId: q.id, body: 'after' } })
    return r.statusCode === 200 && r
  }, 15_000, 200)
  t.ok(after, 'the API works again without a restart')

  await eventually(async () => target.requests.some(r => r.body === 'before') && target.requests.some(r => r.body === 'after'), 15_000)
  t.pass('both delivered')
  t.notOk(target.requests.some(r => r.body === 'lost?'), 'the refused message was never accepted')
  await eventually(async () => (await app.inject({ url: '/messages?where.sentAt.eq=null&totalCount=true' })).headers['x-total-count'] === '0', 10_000)
  t.pass('and recorded as sent')
})
