import t from 'tap'
import type { InjectOptions } from 'fastify'
import { testApp, testPool } from './helpers.js'

t.test('400 names the field', async (t) => {
  const { app } = await testApp(t)
  const cases: Array<[string, string, unknown, RegExp]> = [
    ['POST', '/queues', { callbackUrl: 'http://127.0.0.1/x' }, /name/],
    ['POST', '/queues', { name: 'x1', callbackUrl: 'ftp://127.0.0.1/x' }, /callbackUrl/],
    ['POST', '/queues', { name: 'x2', callbackUrl: 'http://127.0.0.1/x', method: 'FETCH' }, /method/],
    ['POST', '/queues', { name: 'x3', callbackUrl: 'http://127.0.0.1/x', maxRetries: -1 }, /maxRetries/],
    ['POST', '/queues', { name: 'x4', callbackUrl: 'http://127.0.0.1/x', headers: { 'X-A': 'a\r\nX-Evil: 1' } }, /headers/],
    ['POST', '/queues', { name: 'x5', callbackUrl: 'http://127.0.0.1/x', headers: { 'bad header': 'v' } }, /headers/],
    ['POST', '/queues', { name: 'x6', callbackUrl: 'http://127.0.0.1/x', headers: { Host: 'evil' } }, /headers.*Host/],
    ['POST', '/queues', { name: 'x7', callbackUrl: 'http://127.0.0.1/x', backoffBaseMs: 5000, backoffMaxMs: 1000 }, /backoffMaxMs/],
    ['POST', '/queues', { name: 'x8', callbackUrl: 'http://127.0.0.1/x', deadLetterQueueId: 999 }, /deadLetterQueueId/],
    ['POST', '/messages', { queueId: 'one' }, /queueId/],
    // values undici could never send would burn every retry: refused up front
    ['POST', '/messages', { queueId: 1, headers: { 'x-mood': 'happy 😀' } }, /headers.*latin-1/],
    ['POST', '/messages', { queueId: 1, idempotencyKey: 'ключ' }, /idempotencyKey/],
    ['POST', '/messages', { queueId: 1, idempotencyKey: 'a\r\nb' }, /idempotencyKey/],
    ['POST', '/messages', { queueId: 1, when: 'tomorrow' }, /when/],
    ['GET', '/messages?limit=1000', undefined, /limit/],
    ['GET', '/messages?where.nope.eq=1', undefined, /where\.nope\.eq/],
    ['GET', '/messages?where.id.in=1,x', undefined, /where\.id\.in/],
    ['GET', '/messages?orderby.id=sideways', undefined, /orderby\.id/],
    ['GET', '/queues/abc', undefined, /id/]
  ]
  for (const [method, url, payload, message] of cases) {
    const res = await app.inject({ method: method as 'GET', url, ...(payload !== undefined ? { payload: payload as object } : {}) })
    t.equal(res.statusCode, 400, `${method} ${url} ${JSON.stringify(payload)}: ${res.body}`)
    t.match(res.json().message, message, `${method} ${url} names the field`)
  }
})

t.test('404 for missing rows and routes', async (t) => {
  const { app } = await testApp(t)
  for (const url of ['/queues/999', '/messages/999', '/crons/999', '/queues/999/messages', '/nowhere']) {
    const res = await app.inject({ url })
    t.equal(res.statusCode, 404, url)
    t.ok(res.json().code.startsWith('HOOKPOST_ERR_'), url)
  }
  t.equal((await app.inject({ method: 'PUT', url: '/queues/999', payload: { name: 'x' } })).statusCode, 404)
  t.equal((await app.inject({ method: 'DELETE', url: '/crons/999' })).statusCode, 404)
})

t.test('409: queue with pending messages, queue used as a DLQ; a repeated name is allowed, as in pg-hooks', async (t) => {
  const { app, url } = await testApp(t)
  const pool = testPool(t, url)
  const dlq = (await app.inject({ method: 'POST', url: '/queues', payload: { name: 'dlq', callbackUrl: 'http://127.0.0.1:9/d' } })).json()
  const q = (await app.inject({ method: 'POST', url: '/queues', payload: { name: 'main', callbackUrl: 'http://127.0.0.1:9/m', deadLetterQueueId: dlq.id } })).json()
  const dup = await app.inject({ method: 'POST', url: '/queues', payload: { name: 'main', callbackUrl: 'http://127.0.0.1:9/m' } })
  t.equal(dup.statusCode, 200, 'a second queue named main')
  t.not(dup.json().id, q.id)
  const named = await app.inject({ url: '/queues?where.name.eq=main' })
  t.same(named.json().map((x: { id: number }) => x.id).sort(), [q.id, dup.json().id].sort(), 'both, by name')

  const asDlq = await app.inject({ method: 'DELETE', url: `/queues/${dlq.id}` })
  t.equal(asDlq.statusCode, 409, asDlq.body)
  t.equal(asDlq.json().code, 'HOOKPOST_ERR_QUEUE_IS_DEAD_LETTER_TARGET')

  const m = (await app.inject({ method: 'POST', url: '/messages', payload: { queueId: q.id, body: 'x' } })).json()
  const pending = await app.inject({ method: 'DELETE', url: `/queues/${q.id}` })
  t.equal(pending.statusCode, 409)
  t.equal(pending.json().code, 'HOOKPOST_ERR_QUEUE_HAS_PENDING')
  t.equal((await app.inject({ url: `/messages/${m.id}` })).statusCode, 200, 'the message is still there')

  // once delivered, the queue can go, with its history
  await pool.query('UPDATE hookpost.messages SET sent_at = now() WHERE id = $1', [m.id])
  t.equal((await app.inject({ method: 'DELETE', url: `/queues/${q.id}` })).statusCode, 200)
  t.equal((await app.inject({ url: `/messages/${m.id}` })).statusCode, 404)

  // force drops pending messages explicitly
  const q2 = (await app.inject({ method: 'POST', url: '/queues', payload: { name: 'q2', callbackUrl: 'http://127.0.0.1:9/m' } })).json()
  await app.inject({ method: 'POST', url: '/messages', payload: { queueId: q2.id, body: 'x' } })
  t.equal((await app.inject({ method: 'DELETE', url: `/queues/${q2.id}?force=true` })).statusCode, 200)
})

t.test('admin secret: 401 without, 403 wrong, 200 right; /health stays open', async (t) => {
  const secret = 's3cret-value-for-tests'
  const { app } = await testApp(t, { adminSecret: secret })
  const routes = ['/queues', '/messages', '/crons', '/cron', '/queues/1', '/queues/1/messages']
  for (const url of routes) {
    const none = await app.inject({ url })
    t.equal(none.statusCode, 401, url)
    t.equal(none.json().code, 'HOOKPOST_ERR_MISSING_ADMIN_SECRET')
    const wrong = await app.inject({ url, headers: { 'x-platformatic-admin-secret': secret + 'x' } })
    t.equal(wrong.statusCode, 403, url)
    t.notOk(wrong.body.includes(secret), 'the secret is not echoed')
  }
  const post = await app.inject({ method: 'POST', url: '/queues', payload: { name: 'x9', callbackUrl: 'http://127.0.0.1:9/x' } })
  t.equal(post.statusCode, 401, 'writes too')
  const ok = await app.inject({ url: '/queues', headers: { 'X-PLATFORMATIC-ADMIN-SECRET': secret } })
  t.equal(ok.statusCode, 200)
  t.equal((await app.inject({ url: '/health' })).statusCode, 200)
})

t.test('the secret never reaches the logs', async (t) => {
  const { Writable } = await import('node:stream')
  const pino = (await import('pino')).default
  const { build } = await import('../lib/app.js')
  const { makeConfig } = await import('../lib/config.js')
  const { testDatabase } = await import('./helpers.js')
  const secret = 'do-not-log-this-secret'
  let logged = ''
  const sink = new Writable({ write (chunk, _enc, cb) { logged += String(chunk); cb() } })
  const config = makeConfig({ adminSecret: secret, server: { logLevel: 'trace' }, db: { connectionString: await testDatabase(t) } })
  const { loggerOptions } = await import('../lib/logger.js')
  const app = await build(config, { logger: pino({ ...loggerOptions(config), transport: undefined }, sink) })
  t.teardown(async () => { await app.close() })
  await app.inject({ url: '/queues', headers: { 'x-platformatic-admin-secret': secret } })
  await app.inject({ url: '/queues', headers: { 'x-platformatic-admin-secret': 'wrong-' + secret } })
  t.ok(logged.length > 0, 'something was logged at trace')
  t.notOk(logged.includes(secret), 'the secret is absent from the logs')
})

t.test('no secret configured: a warning says the API is open', async (t) => {
  const { Writable } = await import('node:stream')
  const pino = (await import('pino')).default
  const { build } = await import('../lib/app.js')
  const { makeConfig } = await import('../lib/config.js')
  const { testDatabase } = await import('./helpers.js')
  let logged = ''
  const sink = new Writable({ write (chunk, _enc, cb) { logged += String(chunk); cb() } })
  const app = await build(makeConfig({ db: { connectionString: await testDatabase(t) } }), { logger: pino({ level: 'warn' }, sink) })
  t.teardown(async () => { await app.close() })
  t.match(logged, /PLT_ADMIN_SECRET is not set/)
})

t.test('openapi document and UI', async (t) => {
  const { app } = await testApp(t)
  const doc = await app.inject({ url: '/documentation/json' })
  t.equal(doc.statusCode, 200)
  const paths = Object.keys(doc.json().paths)
  for (const p of ['/queues', '/queues/{id}', '/messages', '/messages/{id}', '/crons', '/crons/{id}', '/queues/{id}/messages', '/queues/{id}/crons', '/health']) {
    t.ok(paths.includes(p), `documents ${p}`)
  }
  t.notOk(paths.some(p => p.startsWith('/cron/')), 'the /cron alias is not documented twice')
  t.notOk(paths.some(p => p.includes('migration')), 'the migrations table is not exposed')
  t.equal((await app.inject({ url: '/migrations' })).statusCode, 404)
  const ui = await app.inject({ url: '/documentation' })
  t.ok(ui.statusCode === 200 || ui.statusCode === 302, 'UI served')
})

t.test("Fastify's own errors come out as HOOKPOST_ERR_* codes with their 4xx", async (t) => {
  const { app } = await testApp(t)
  const json = { 'content-type': 'application/json' }
  const cases: Array<[string, InjectOptions, number, string]> = [
    ['bad JSON', { method: 'POST', url: '/queues', headers: json, payload: '{"name": ' }, 400,
      'HOOKPOST_ERR_BAD_REQUEST'],
    ['an empty JSON body', { method: 'POST', url: '/queues', headers: json, payload: '' }, 400,
      'HOOKPOST_ERR_BAD_REQUEST'],
    ['a content type with no parser',
      { method: 'POST', url: '/queues', headers: { 'content-type': 'application/xml' }, payload: '<q/>' }, 415,
      'HOOKPOST_ERR_UNSUPPORTED_MEDIA_TYPE'],
    ['a body over 1 MiB', { method: 'POST', url: '/messages', payload: { queueId: 1, body: 'x'.repeat(1024 * 1024) } },
      413, 'HOOKPOST_ERR_PAYLOAD_TOO_LARGE'],
    ['a route that does not exist', { method: 'GET', url: '/nowhere' }, 404, 'HOOKPOST_ERR_ROUTE_NOT_FOUND'],
    ['a method no route has', { method: 'PATCH', url: '/queues/1', payload: {} }, 404, 'HOOKPOST_ERR_ROUTE_NOT_FOUND'],
    ['a bad id param', { method: 'GET', url: '/queues/1x' }, 400, 'HOOKPOST_ERR_BAD_REQUEST'],
    ['an id past 2^53', { method: 'GET', url: '/queues/99999999999999999999' }, 400, 'HOOKPOST_ERR_BAD_REQUEST'],
    ['a malformed URL', { method: 'GET', url: '/queues/%E0%A4%A' }, 400, 'HOOKPOST_ERR_BAD_REQUEST']
  ]
  for (const [name, req, status, code] of cases) {
    const res = await app.inject(req)
    t.equal(res.statusCode, status, `${name}: ${res.body.slice(0, 200)}`)
    t.equal(res.json().code, code, name)
    t.notMatch(res.body, /FST_/, `${name}: no Fastify code`)
  }
})
