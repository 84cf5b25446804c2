// Subscriptions over WebSocket, driven by NOTIFY: a process that does not deliver still publishes
// what the delivering process did.
import t from 'tap'
import WebSocket from 'ws'
import type { FastifyInstance } from 'fastify'
import { eventually, receiver, testApp, testDatabase } from './helpers.js'

interface Client { messages: any[], closed: Promise<number>, send: (m: object) => void, next: (pred: (m: any) => boolean, ms?: number) => Promise<any> }

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
    next: async (pred, ms = 10_000) => await eventually(async () => messages.find(pred), ms, 20)
  }
}

async function listening (t: Parameters<typeof testApp>[0], over: Parameters<typeof testApp>[1]): Promise<FastifyInstance> {
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
  await new Promise(resolve => setTimeout(resolve, 1500))

  const m1 = (await apiOnly.inject({ method: 'POST', url: '/graphql', payload: { query: 'mutation ($q: ID) { saveMessage(input: { queueId: $q, body: "hi" }) { id } }', variables: { q: good.id } } })).json().data.saveMessage
  const delivered = await c.next(m => m.id === 'd' && m.type === 'next')
  t.same(delivered.payload.data.messageDelivered, { messageId: m1.id, queueId: String(good.id), attempt: 1, statusCode: 200, willRetry: false })

  const m2 = (await apiOnly.inject({ method: 'POST', url: '/messages', payload: { queueId: bad.id, body: 'x' } })).json()
  const first = await c.next(m => m.id === 'f' && m.type === 'next' && m.payload.data.messageFailed.attempt === 1)
  t.same(first.payload.data.messageFailed, { messageId: String(m2.id), queueId: String(bad.id), attempt: 1, statusCode: 500, willRetry: true })
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
