import t from 'tap'
import { testApp } from './helpers.js'

t.test('cron CRUD, at /crons and at the /cron alias', async (t) => {
  const { app } = await testApp(t)
  const q = (await app.inject({ method: 'POST', url: '/queues', payload: { name: 'c', callbackUrl: 'http://127.0.0.1:9/x' } })).json()
  for (const base of ['/crons', '/cron']) {
    const created = await app.inject({ method: 'POST', url: base, payload: { queueId: q.id, schedule: '*/5 * * * *', body: { ping: true }, headers: { 'X-Cron': '1' } } })
    t.equal(created.statusCode, 200, created.body)
    const c = created.json()
    t.match(c, { queueId: q.id, schedule: '*/5 * * * *', timezone: 'UTC', body: { ping: true }, headers: { 'X-Cron': '1' }, paused: false, missedTicks: 'once' })
    const next = Date.parse(c.nextTickAt)
    t.ok(next > Date.now() && next <= Date.now() + 5 * 60_000, 'next tick within the schedule')
    t.equal(new Date(next).getUTCMinutes() % 5, 0)

    t.same((await app.inject({ url: `${base}/${c.id}` })).json(), c)
    const upd = await app.inject({ method: 'PUT', url: `${base}/${c.id}`, payload: { schedule: '0 12 * * *', timezone: 'Europe/Rome' } })
    t.equal(upd.statusCode, 200, upd.body)
    t.equal(upd.json().timezone, 'Europe/Rome')
    t.equal(upd.json().body.ping, true, 'body kept')
    const listed = await app.inject({ url: `/queues/${q.id}/crons?where.id.eq=${c.id}` })
    t.equal(listed.json().length, 1)
    t.equal((await app.inject({ method: 'DELETE', url: `${base}/${c.id}` })).statusCode, 200)
    t.equal((await app.inject({ url: `${base}/${c.id}` })).statusCode, 404)
  }
})

t.test('an invalid schedule or time zone is a 400 that says what is wrong', async (t) => {
  const { app } = await testApp(t)
  const q = (await app.inject({ method: 'POST', url: '/queues', payload: { name: 'c', callbackUrl: 'http://127.0.0.1:9/x' } })).json()
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ schedule: 'not a cron' }, /schedule.*5 or 6 fields/],
    [{ schedule: '61 * * * *' }, /schedule.*61/],
    [{ schedule: '* * * * *', timezone: 'Mars/Olympus' }, /timezone.*Mars\/Olympus/]
  ]
  for (const [payload, message] of cases) {
    const res = await app.inject({ method: 'POST', url: '/crons', payload: { queueId: q.id, ...payload } })
    t.equal(res.statusCode, 400, JSON.stringify(payload))
    t.match(res.json().message, message)
    t.equal(res.json().code, 'HOOKPOST_ERR_INVALID_CRON')
  }
  const c = (await app.inject({ method: 'POST', url: '/crons', payload: { queueId: q.id, schedule: '* * * * *' } })).json()
  const bad = await app.inject({ method: 'PUT', url: `/crons/${c.id}`, payload: { schedule: '* * *' } })
  t.equal(bad.statusCode, 400)
  t.equal((await app.inject({ url: `/crons/${c.id}` })).json().schedule, '* * * * *', 'unchanged')
})
