// Subscriptions over WebSocket, driven by NOTIFY: a process that does not deliver still publishes
// what the delivering process did.
import { once } from 'node:events'
import t from 'tap'
import WebSocket from 'ws'
import type { FastifyInstance } from 'fastify'
import { SUBSCRIBERS_LOCK } from '../lib/db/locks.js'
import { eventually, receiver, testApp, testDatabase } from './helpers.js'

interface Client {
  messages: any[]
  closed: Promise<number>
  send: (m: object) => void
  close: () => void
  next: (pred: (m: any) => boolean, ms?: number) => Promise<any>
}

async function connect (t: Parameters<typeof testApp>[0], app: FastifyInstance, payload?: object): Promise<Client> {
  const address = app.server.address() as { port: number }
  const ws = new WebSocket(`ws://127.0.0.1:${address.port}/graphql`, 'graphql-transport-ws')
  const messages: any[] = []
  ws.on('message', (d) => messages.push(JSON.parse(String(d))))
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)))
  t.teardown(() => ws.close())
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  ws.send(JSON.stringify({ type: 'connection_init', payload }))
  return {
    messages,
    closed,
    send: (m) => ws.send(JSON.stringify(m)),
    close: () => ws.close(),
    next: async (pred, ms = 10_000) => await eventually(async () => messages.find(pred), ms, 20)
  }
}

async function listening (
  t: Parameters<typeof testApp>[0], over: Parameters<typeof testApp>[1]
): Promise<FastifyInstance> {
  const { app } = await testApp(t, over)
  await app.listen({ port: 0, host: '127.0.0.1' })
  return app
}

t.test('messageDelivered and messageFailed reach subscribers of a process that does not deliver', async (t) => {
  const ok = await receiver(t)
  const failing = await receiver(t, (_r, res) => { res.statusCode = 500; res.end() })
  const url = await testDatabase(t)
  const deliverer = await listening(t, { url, hooks: { enabled: true, leaderPollMs: 100 } })
  const apiOnly = await listening(t, { url, hooks: { enabled: false } })

  const good = (await deliverer.inject({ method: 'POST', url: '/queues', payload: { name: 'good', callbackUrl: ok.url } })).json()
  const bad = (await deliverer.inject({ method: 'POST', url: '/queues', payload: { name: 'bad', callbackUrl: failing.url, maxRetries: 1, backoffBaseMs: 50 } })).json()

  const c = await connect(t, apiOnly)
  await c.next(m => m.type === 'connection_ack')
  c.send({ id: 'd', type: 'subscribe', payload: { query: 'subscription ($q: ID) { messageDelivered(queueId: $q) { messageId queueId attempt statusCode willRetry } }', variables: { q: good.id } } })
  c.send({ id: 'f', type: 'subscribe', payload: { query: 'subscription { messageFailed { messageId queueId attempt statusCode willRetry } }' } })
  // the subscriptions are registered, and the deliverer (checking once a second) knows someone listens
  await eventually(async () => deliverer.delivery!.subscribersSeen())

  const m1 = (await apiOnly.inject({ method: 'POST', url: '/graphql', payload: { query: 'mutation ($q: ID) { saveMessage(input: { queueId: $q, body: "hi" }) { id } }', variables: { q: good.id } } })).json().data.saveMessage
  const delivered = await c.next(m => m.id === 'd' && m.type === 'next')
  t.same(delivered.payload.data.messageDelivered,
    { messageId: m1.id, queueId: String(good.id), attempt: 1, statusCode: 200, willRetry: false })

  const m2 = (await apiOnly.inject({ method: 'POST', url: '/messages', payload: { queueId: bad.id, body: 'x' } })).json()
  const first = await c.next(m => m.id === 'f' && m.type === 'next' && m.payload.data.messageFailed.attempt === 1)
  t.same(first.payload.data.messageFailed,
    { messageId: String(m2.id), queueId: String(bad.id), attempt: 1, statusCode: 500, willRetry: true })
  const last = await c.next(m => m.id === 'f' && m.type === 'next' && m.payload.data.messageFailed.attempt === 2)
  t.equal(last.payload.data.messageFailed.willRetry, false, 'the last attempt says no retry follows')
  t.notOk(c.messages.some(m => m.id === 'd' && m.payload?.data?.messageDelivered?.queueId === String(bad.id)), 'the queueId filter holds')
})

t.test('auth over WebSocket: the secret goes in the connection_init payload', async (t) => {
  const secret = 'ws-secret-value-1'
  const app = await listening(t, { adminSecret: secret })
  const denied = await connect(t, app, {})
  const code = await Promise.race([denied.closed, new Promise<number>(resolve => setTimeout(() => resolve(-1), 3000))])
  t.not(code, -1, `closed without the secret (code ${code})`)
  t.notOk(denied.messages.some(m => m.type === 'connection_ack'), 'never acknowledged')

  const wrong = await connect(t, app, { 'x-platformatic-admin-secret': 'not-the-secret' })
  await Promise.race([wrong.closed, new Promise(resolve => setTimeout(resolve, 3000))])
  t.notOk(wrong.messages.some(m => m.type === 'connection_ack'), 'a wrong secret is refused')

  const allowed = await connect(t, app, { 'x-platformatic-admin-secret': secret })
  await allowed.next(m => m.type === 'connection_ack')
  t.pass('acknowledged with the secret')
})

/** Whether any session of this test's database holds the subscribers lock (lib/db/listener.ts). */
async function subscribersLockHeld (app: FastifyInstance): Promise<boolean> {
  const { rows } = await app.pool.query(`SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 AND granted
    AND classid = $1 AND objid = $2 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())) AS held`, [...SUBSCRIBERS_LOCK])
  return rows[0].held === true
}

t.test('subscriptions keep working after the leader loses its lock and is elected again (issue 10.5)', async (t) => {
  const ok = await receiver(t)
  const url = await testDatabase(t)
  const deliverer = await listening(t, { url, hooks: { enabled: true, leaderPollMs: 100 } })
  const apiOnly = await listening(t, { url, hooks: { enabled: false } })
  const leader = deliverer.delivery!.leader
  await eventually(async () => leader.isLeader)
  const q = (await deliverer.inject({ method: 'POST', url: '/queues', payload: { name: 'q', callbackUrl: ok.url } })).json()

  // the leader's lock connection dies: demoted, then elected again
  const demoted = once(leader, 'demoted')
  const elected = once(leader, 'elected')
  await deliverer.pool.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = \'hookpost-leader\'')
  await demoted
  await elected
  await eventually(async () => deliverer.delivery!.worker.active)

  // subscribed on another process after the flip: the deliverer must still learn that someone listens
  const c = await connect(t, apiOnly)
  await c.next(m => m.type === 'connection_ack')
  c.send({ id: 'd', type: 'subscribe', payload: { query: 'subscription { messageDelivered { messageId } }' } })
  await eventually(async () => deliverer.delivery!.subscribersSeen())
  const m = (await apiOnly.inject({ method: 'POST', url: '/messages', payload: { queueId: q.id, body: 'after the flip' } })).json()
  const got = await c.next(x => x.id === 'd' && x.type === 'next')
  t.equal(got.payload.data.messageDelivered.messageId, String(m.id), 'the event arrives after re-election')
})

t.test('connection_init twice on one socket counts once: the subscribers lock is let go (issue 10.7)', async (t) => {
  const url = await testDatabase(t)
  const app = await listening(t, { url })
  const c = await connect(t, app)
  await c.next(m => m.type === 'connection_ack')
  c.send({ type: 'connection_init' })
  c.send({ id: 's', type: 'subscribe', payload: { query: 'subscription { messageFailed { messageId } }' } })
  await eventually(async () => await subscribersLockHeld(app))
  t.pass('a subscription takes the lock')
  c.send({ id: 's', type: 'complete' })
  await eventually(async () => !(await subscribersLockHeld(app)))
  t.pass('completing it lets the lock go')

  // a second socket, inited three times, subscribed twice, then closed without a word
  const d = await connect(t, app)
  await d.next(m => m.type === 'connection_ack')
  d.send({ type: 'connection_init' })
  d.send({ type: 'connection_init' })
  d.send({ id: 'a', type: 'subscribe', payload: { query: 'subscription { messageFailed { messageId } }' } })
  d.send({ id: 'b', type: 'subscribe', payload: { query: 'subscription { messageDelivered { messageId } }' } })
  await eventually(async () => await subscribersLockHeld(app))
  d.close()
  await d.closed
  await eventually(async () => !app.listener.hasSubscribers && !(await subscribersLockHeld(app)))
  t.pass('closing the socket lets the lock go')
})

t.test("Platformatic's entity subscriptions: queueSaved, messageSaved, cronSaved and their *Deleted, from REST and GraphQL writes", async (t) => {
  const app = await listening(t, {})
  const c = await connect(t, app)
  await c.next(m => m.type === 'connection_ack')
  const subscribe = async (id: string, query: string): Promise<void> => { c.send({ id, type: 'subscribe', payload: { query } }) }
  await subscribe('qs', 'subscription { queueSaved { id name } }')
  await subscribe('ms', 'subscription { messageSaved { id body } }')
  await subscribe('cs', 'subscription { cronSaved { id schedule } }')
  await subscribe('md', 'subscription { messageDeleted { id } }')
  await subscribe('qd', 'subscription { queueDeleted { id } }')
  // a subscription is live once the server holds it: the subscribers lock says so
  await eventually(async () => (await app.pool.query(`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory'
    AND classid = $1 AND objid = $2 AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
  [...SUBSCRIBERS_LOCK])).rows[0].n > 0)
  const q = (await app.inject({ method: 'POST', url: '/queues', payload: { name: 'ev', callbackUrl: 'http://127.0.0.1:9/e' } })).json()
  t.same((await c.next(m => m.id === 'qs')).payload.data.queueSaved, { id: String(q.id), name: 'ev' }, 'a REST create')
  await app.inject({ method: 'POST', url: '/graphql', payload: { query: `mutation { saveMessage(input: { queueId: ${q.id}, body: "hi" }) { id } }` } })
  const m = (await c.next(m => m.id === 'ms')).payload.data.messageSaved
  t.equal(m.body, 'hi', 'a GraphQL create')
  await app.inject({ method: 'POST', url: '/crons', payload: { queueId: q.id, schedule: '0 * * * *' } })
  t.equal((await c.next(m => m.id === 'cs')).payload.data.cronSaved.schedule, '0 * * * *')
  await app.inject({ method: 'DELETE', url: `/messages/${m.id}` })
  t.same((await c.next(m => m.id === 'md')).payload.data.messageDeleted, { id: m.id }, 'a delete: its id')
  await app.inject({ method: 'PUT', url: `/queues/${q.id}`, payload: { name: 'ev2' } })
  await eventually(async () => c.messages.filter(x => x.id === 'qs').length === 2)
  t.equal(c.messages.filter(x => x.id === 'qs')[1].payload.data.queueSaved.name, 'ev2', 'an update')
  await app.inject({ method: 'DELETE', url: `/queues/${q.id}?force=true` })
  t.same((await c.next(m => m.id === 'qd')).payload.data.queueDeleted, { id: String(q.id) })
})
