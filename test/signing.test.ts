// Signed deliveries, checked by the standardwebhooks package (the reference verifier), across retries
// and a secret rotation.
import t from 'tap'
import { Webhook } from 'standardwebhooks'
import { generateSecret, secretBytes, sign } from '../lib/domain/signing.js'
import { receiver, testApp, testPool, type Received } from './helpers.js'

function verify (secret: string, r: Received): unknown {
  return new Webhook(secret).verify(r.body, {
    'webhook-id': r.headers['webhook-id'] as string,
    'webhook-timestamp': r.headers['webhook-timestamp'] as string,
    'webhook-signature': r.headers['webhook-signature'] as string
  })
}

t.test('secrets: format, generation, signature', async (t) => {
  const s = generateSecret()
  t.match(s, /^whsec_[A-Za-z0-9+/]+={0,2}$/)
  t.equal((secretBytes(s) as Buffer).length, 32)
  t.match(secretBytes('whsec_' + Buffer.alloc(10).toString('base64')), /24 to 64 bytes/)
  t.match(secretBytes('sk_nope'), /whsec_/)
  // the reference verifier accepts our signature, and rejects a tampered body
  const body = '{"a":1}'
  const ts = Math.floor(Date.now() / 1000)
  const headers = { 'webhook-id': '7', 'webhook-timestamp': String(ts), 'webhook-signature': sign(s, '7', ts, body) }
  t.same(new Webhook(s).verify(body, headers), { a: 1 })
  t.throws(() => new Webhook(s).verify('{"a":2}', headers))
})

t.test('signed deliveries verify with standardwebhooks; webhook-id is stable across retries', async (t) => {
  let calls = 0
  const target = await receiver(t, (_r, res) => { res.statusCode = ++calls < 3 ? 500 : 200; res.end() })
  const { app } = await testApp(t, { hooks: { enabled: true, leaderPollMs: 100 } })
  await app.ready()
  const q = (await app.inject({ method: 'POST', url: '/queues', payload: { name: 'signed', callbackUrl: target.url, backoffBaseMs: 50, backoffJitter: 'none' } })).json()
  t.equal(q.signed, false)
  const set = await app.inject({ method: 'POST', url: `/queues/${q.id}/signing-secret` })
  t.equal(set.statusCode, 200, set.body)
  const { signingSecret } = set.json()
  t.match(signingSecret, /^whsec_/, 'the API generates a secret')
  const listed = (await app.inject({ url: `/queues/${q.id}` })).json()
  t.equal(listed.signed, true)
  t.notOk(JSON.stringify(listed).includes(signingSecret.slice(6)), 'the secret is never listed')

  const m = (await app.inject({ method: 'POST', url: '/messages', payload: { queueId: q.id, body: { order: 1 }, idempotencyKey: 'order-1' } })).json()
  const reqs = await target.waitFor(3, 10_000)
  for (const r of reqs) t.same(verify(signingSecret, r), { order: 1 }, `attempt ${r.headers['x-hookpost-attempt']} verifies`)
  t.same(reqs.map(r => r.headers['webhook-id']), [String(m.id), String(m.id), String(m.id)], 'webhook-id stable across retries')
  t.ok(reqs.every(r => r.headers['idempotency-key'] === 'order-1'), 'the idempotency key is sent as a header')
})

t.test('rotation: both secrets sign during the grace period, then only the new one', async (t) => {
  const target = await receiver(t)
  const { app, url } = await testApp(t, { hooks: { enabled: true, leaderPollMs: 100 } })
  await app.ready()
  const q = (await app.inject({ method: 'POST', url: '/queues', payload: { name: 'rot', callbackUrl: target.url } })).json()
  const oldSecret = generateSecret()
  t.equal((await app.inject({ method: 'POST', url: `/queues/${q.id}/signing-secret`, payload: { secret: oldSecret } })).statusCode, 200)
  const rotated = (await app.inject({ method: 'POST', url: `/queues/${q.id}/signing-secret`, payload: { graceSeconds: 2 } })).json()
  t.ok(Date.parse(rotated.previousValidUntil) > Date.now(), 'the old secret has a grace period')
  const newSecret = rotated.signingSecret

  await app.inject({ method: 'POST', url: '/messages', payload: { queueId: q.id, body: { n: 1 } } })
  const [during] = await target.waitFor(1)
  t.equal((during!.headers['webhook-signature'] as string).split(' ').length, 2, 'two signatures, space-separated')
  t.same(verify(newSecret, during!), { n: 1 }, 'the new secret verifies')
  t.same(verify(oldSecret, during!), { n: 1 }, 'the old secret still verifies')

  // the grace period ends: its end moved into the past rather than waited for
  await testPool(t, url).query(`UPDATE hookpost.queues SET previous_signing_secret_until = now() - interval '1 ms'
    WHERE id = $1`, [q.id])
  await app.inject({ method: 'POST', url: '/messages', payload: { queueId: q.id, body: { n: 2 } } })
  const after = (await target.waitFor(2))[1]!
  t.equal((after.headers['webhook-signature'] as string).split(' ').length, 1, 'after the grace period, one signature')
  t.same(verify(newSecret, after), { n: 2 })
  t.throws(() => verify(oldSecret, after), 'the old secret no longer verifies')

  // a bad secret is refused; removing the secret stops signing
  const bad = await app.inject({ method: 'POST', url: `/queues/${q.id}/signing-secret`, payload: { secret: 'whsec_short' } })
  t.equal(bad.statusCode, 400)
  t.match(bad.json().message, /secret/)
  t.same((await app.inject({ method: 'DELETE', url: `/queues/${q.id}/signing-secret` })).json(), { queueId: q.id, signed: false })
  await app.inject({ method: 'POST', url: '/messages', payload: { queueId: q.id, body: { n: 3 } } })
  const unsigned = (await target.waitFor(3))[2]!
  t.equal(unsigned.headers['webhook-signature'], undefined)
})

t.test('rotateSigningSecret over GraphQL', async (t) => {
  const { app } = await testApp(t)
  const q = (await app.inject({ method: 'POST', url: '/queues', payload: { name: 'g', callbackUrl: 'http://127.0.0.1:9/g' } })).json()
  const res = (await app.inject({ method: 'POST', url: '/graphql', payload: { query: 'mutation ($q: ID!) { rotateSigningSecret(queueId: $q, graceSeconds: 60) { queueId signingSecret previousValidUntil } }', variables: { q: q.id } } })).json()
  t.match(res.data.rotateSigningSecret, { queueId: String(q.id), signingSecret: /^whsec_/, previousValidUntil: null })
  const signed = (await app.inject({ method: 'POST', url: '/graphql', payload: { query: `{ getQueueById(id: ${q.id}) { signed } }` } })).json()
  t.same(signed.data, { getQueueById: { signed: true } })
  const bad = (await app.inject({ method: 'POST', url: '/graphql', payload: { query: 'mutation ($q: ID!) { rotateSigningSecret(queueId: $q, secret: "nope") { queueId } }', variables: { q: q.id } } })).json()
  t.equal(bad.errors[0].extensions.code, 'HOOKPOST_ERR_INVALID_FIELD')
})
