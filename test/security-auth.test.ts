// Auth from outside, as an attacker without the secret tries it: every method on GraphQL, the
// Upgrade header on every path, and what that does to sockets. Findings of an attack join this file.
import { connect } from 'node:net'
import t from 'tap'
import { parse } from 'graphql'
import WebSocket from 'ws'
import type { FastifyInstance } from 'fastify'
import { eventually, spawnServer, testApp, testDatabase } from './helpers.js'

const SECRET = 'security-test-secret-1'

interface RawReply { head: string, closedByServer: boolean }

/** One raw HTTP request; resolves with what came back once the server closes the socket (or after ms). */
async function raw (port: number, request: string, ms = 3000): Promise<RawReply> {
  return await new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1')
    let data = ''
    const timer = setTimeout(() => { s.destroy(); resolve({ head: data, closedByServer: false }) }, ms)
    s.on('data', (d) => { data += d.toString('latin1') })
    s.on('error', reject)
    s.on('close', () => { clearTimeout(timer); resolve({ head: data, closedByServer: true }) })
    s.write(request)
  })
}

function request (method: string, path: string, headers: Record<string, string> = {}): string {
  const lines = [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)]
  return lines.join('\r\n') + '\r\n\r\n'
}

async function listening (
  t: Parameters<typeof testApp>[0], adminSecret: string | null
): Promise<{ app: FastifyInstance, port: number }> {
  const { app } = await testApp(t, { adminSecret })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: (app.server.address() as { port: number }).port }
}

const mutation = (name: string): string => '/graphql?query=' + encodeURIComponent(`mutation { saveQueue(input: { name: "${name}", callbackUrl: "http://127.0.0.1:9/x" }) { id } }`)

async function queueNames (app: FastifyInstance): Promise<string[]> {
  const res = await app.inject({ method: 'GET', url: '/queues', headers: { 'x-platformatic-admin-secret': SECRET } })
  return res.json().map((q: { name: string }) => q.name)
}

t.test('HEAD with Connection: Upgrade runs nothing and leaks nothing (issue 10.1)', async (t) => {
  const { app, port } = await listening(t, SECRET)
  for (const upgrade of ['foo', 'websocket', 'h2c']) {
    const r = await raw(port, request('HEAD', mutation(`head-${upgrade}`), { Connection: 'Upgrade', Upgrade: upgrade }))
    t.ok(r.closedByServer, `Upgrade: ${upgrade}: the server closed the socket`)
    t.notMatch(r.head, /^HTTP\/1\.1 (200|101)/, `Upgrade: ${upgrade}: not run (${r.head.split('\r\n')[0]})`)
  }
  // the read side channel: a HEAD of a query must not answer with the result's length
  const q = await raw(port, request('HEAD', '/graphql?query=' + encodeURIComponent('{ queues { id } }'), { Connection: 'Upgrade', Upgrade: 'foo' }))
  t.notMatch(q.head, /^HTTP\/1\.1 200/, 'a query over HEAD + Upgrade is not answered')
  t.same(await queueNames(app), [], 'no queue was created')
})

t.test('no operation runs over HEAD, with or without the secret; mutations never over GET', async (t) => {
  for (const secret of [SECRET, null]) {
    const { app } = await testApp(t, { adminSecret: secret })
    const headers = { 'x-platformatic-admin-secret': SECRET }
    const head = await app.inject({ method: 'HEAD', url: mutation('via-head'), headers })
    t.equal(head.statusCode, 405, `HEAD is 405 (secret ${secret === null ? 'unset' : 'set'})`)
    const headQuery = await app.inject({ method: 'HEAD', url: '/graphql?query=' + encodeURIComponent('{ queues { id } }'), headers })
    t.equal(headQuery.statusCode, 405, 'a query over HEAD is 405 too')
    const get = await app.inject({ method: 'GET', url: mutation('via-get'), headers })
    t.ok(get.statusCode >= 400 && get.statusCode < 500, `a mutation over GET is refused (${get.statusCode})`)
    t.same(await queueNames(app), [], 'nothing was created')
  }
})

t.test('GraphQL over HTTP needs the secret on every method; only the WebSocket handshake is deferred', async (t) => {
  const { app, port } = await listening(t, SECRET)
  for (const method of ['GET', 'POST'] as const) {
    const res = await app.inject({ method, url: '/graphql?query=' + encodeURIComponent('{ queues { id } }'), ...(method === 'POST' ? { payload: { query: '{ queues { id } }' } } : {}) })
    t.equal(res.statusCode, 401, `${method} without the secret is 401`)
  }
  // a GET that says Upgrade but is no WebSocket handshake (no Sec-WebSocket-Key): refused, not run
  const r = await raw(port, request('GET', mutation('half-upgrade'), { Connection: 'Upgrade', Upgrade: 'websocket' }))
  t.match(r.head, /^HTTP\/1\.1 400/, 'a handshake without its key is 400')
  t.ok(r.closedByServer, 'and its socket is closed')
  // a real handshake to GraphQL opens, and is checked at connection_init
  const ws = new WebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-transport-ws')
  t.teardown(() => ws.terminate())
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  t.pass('the WebSocket handshake to /graphql is let through')
  t.same(await queueNames(app), [], 'nothing was created')
})

t.test('upgrades to any other path are refused and their sockets closed (issue 10.2)', async (t) => {
  const { app, port } = await listening(t, SECRET)
  const count = async (): Promise<number> => await new Promise((resolve, reject) =>
    app.server.getConnections((err, n) => err !== null ? reject(err) : resolve(n)))
  const baseline = await count()
  const paths = ['/health', '/queues', '/documentation', '/graphiql', '/%67raphql', '/nope']
  const replies = await Promise.all(Array.from({ length: 100 }, async (_, i) => {
    const path = paths[i % paths.length]!
    const method = i % 2 === 0 ? 'HEAD' : 'GET'
    const ws: Record<string, string> = i % 3 === 0 ? { 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '13' } : {}
    return await raw(port, request(method, path, { Connection: 'Upgrade', Upgrade: i % 3 === 0 ? 'websocket' : 'foo', ...ws }))
  }))
  t.equal(replies.filter(r => r.closedByServer).length, 100, 'the server closed all 100 sockets')
  t.equal(replies.filter(r => /^HTTP\/1\.1 (404|400)/.test(r.head)).length, 100, 'each was answered 404 or 400')
  t.equal(await count(), baseline, 'open sockets are back at the baseline')
})

t.test('after 100 refused upgrades, SIGTERM still ends the server within the grace period', async (t) => {
  const url = await testDatabase(t)
  const server = await spawnServer(t, { DATABASE_URL: url, PLT_ADMIN_SECRET: SECRET, HOOKPOST_SHUTDOWN_GRACE_MS: '2000' })
  const port = Number(new URL(server.url).port)
  const replies = await Promise.all(Array.from({ length: 100 }, async (_, i) =>
    await raw(port, request('HEAD', i % 2 === 0 ? '/health' : '/queues', { Connection: 'Upgrade', Upgrade: 'foo' }))))
  t.equal(replies.filter(r => r.closedByServer).length, 100, 'every upgrade socket was closed by the server')
  const started = Date.now()
  // stop() sends SIGTERM and only SIGKILLs after 10 s: an exit code of 0 means SIGTERM did it
  const code = await server.stop(10_000)
  t.equal(code, 0, `exited by itself on SIGTERM in ${Date.now() - started} ms`)
})

/** A socket that sends a request's headers, then trickles its body a byte at a time and never ends it. */
async function trickle (port: number): Promise<{ closed: Promise<string>, stop: () => void }> {
  const s = connect(port, '127.0.0.1')
  let data = ''
  s.on('data', (d) => { data += d.toString('latin1') })
  s.on('error', () => {})
  const closed = new Promise<string>((resolve) => s.on('close', () => resolve(data)))
  s.write(request('POST', '/messages', { 'Content-Type': 'application/json', 'Content-Length': '100000' }) + '{')
  const drip = setInterval(() => { if (!s.destroyed) s.write(' ') }, 100)
  closed.finally(() => clearInterval(drip)).catch(() => {})
  t.teardown(() => { clearInterval(drip); s.destroy() })
  return { closed, stop: () => { clearInterval(drip); s.destroy() } }
}

t.test('a body trickled byte by byte is cut at the request timeout, without the secret (attack finding)', async (t) => {
  const { app } = await testApp(t, { adminSecret: SECRET, server: { requestTimeoutMs: 1000 } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const slow = await trickle(port)
  // without a request timeout this socket stays open for as long as the client drips
  const head = await slow.closed
  t.match(head, /^HTTP\/1\.1 (408|401)/, `answered and closed: ${head.split('\r\n')[0] ?? '(nothing)'}`)
})

t.test('SIGTERM ends the server within the grace period while requests trickle (attack finding)', async (t) => {
  const url = await testDatabase(t)
  const server = await spawnServer(t, { DATABASE_URL: url, PLT_ADMIN_SECRET: SECRET, HOOKPOST_SHUTDOWN_GRACE_MS: '1000' })
  const port = Number(new URL(server.url).port)
  const slow = await Promise.all(Array.from({ length: 20 }, async () => await trickle(port)))
  // the server must have the sockets before it is told to stop
  await new Promise((resolve) => setImmediate(resolve))
  const code = await server.stop(10_000)
  t.equal(code, 0, 'exited by itself on SIGTERM, not by the SIGKILL 10 s later')
  await Promise.all(slow.map(async s => await s.closed))
  t.pass('every trickling socket was closed')
})

t.test('a GraphQL WebSocket that never sends connection_init is closed with 4408 (attack finding)', async (t) => {
  const { app, port } = await (async () => {
    const { app } = await testApp(t, { adminSecret: SECRET, server: { wsInitTimeoutMs: 300 } })
    await app.listen({ port: 0, host: '127.0.0.1' })
    return { app, port: (app.server.address() as { port: number }).port }
  })()
  // each socket's close is listened for from the start: the timeout may pass before the test looks
  const open = (): { ws: WebSocket, closed: Promise<number> } => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-transport-ws')
    return { ws, closed: new Promise((resolve) => ws.once('close', resolve)) }
  }
  const silent = open()
  const pinging = open()
  const inited = open()
  const acked = new Promise((resolve) => inited.ws.once('message', resolve))
  pinging.ws.once('open', () => pinging.ws.send(JSON.stringify({ type: 'ping' })))
  inited.ws.once('open', () => inited.ws.send(JSON.stringify({
    type: 'connection_init', payload: { 'x-platformatic-admin-secret': SECRET }
  })))
  t.equal(await silent.closed, 4408, 'silent: closed with 4408')
  t.equal(await pinging.closed, 4408, 'a ping is not connection_init: closed with 4408')
  await acked
  t.equal(inited.ws.readyState, WebSocket.OPEN, 'an initialised connection stays open past the timeout')
  inited.ws.close()
  await inited.closed
  t.ok(app.server.listening)
})

/** A graphql-transport-ws client: its messages as they come, and its close code. */
interface WsClient { ws: WebSocket, messages: any[], closed: Promise<number>, next: () => Promise<any> }

function wsClient (port: number): WsClient {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-transport-ws')
  const messages: any[] = []
  const waiting: Array<(m: any) => void> = []
  ws.on('message', (d) => {
    const m = JSON.parse(d.toString())
    const w = waiting.shift()
    if (w !== undefined) w(m)
    else messages.push(m)
  })
  const closed = new Promise<number>((resolve) => ws.once('close', resolve))
  const next = async (): Promise<any> => messages.length > 0
    ? messages.shift()
    : await new Promise((resolve) => waiting.push(resolve))
  return { ws, messages, closed, next }
}

t.test('connection_init that mercurius refuses to read does not stop the 4408 clock (attack finding)', async (t) => {
  const { app } = await testApp(t, { adminSecret: SECRET, server: { wsInitTimeoutMs: 300 } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  for (const raw of ['{"type":"connection_init","__proto__":{}}', '{"type":"connection_init","constructor":{"prototype":{}}}']) {
    const c = wsClient(port)
    c.ws.once('open', () => c.ws.send(raw))
    t.equal(await c.closed, 4408, `${raw}: closed with 4408`)
  }
})

t.test('subscriptions are validated as queries are: spec rules, cost, and a 16 KiB frame (attack finding)', async (t) => {
  const { app } = await testApp(t, { adminSecret: SECRET })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const c = wsClient(port)
  await new Promise((resolve) => c.ws.once('open', resolve))
  c.ws.send(JSON.stringify({ type: 'connection_init', payload: { 'x-platformatic-admin-secret': SECRET } }))
  t.equal((await c.next()).type, 'connection_ack')
  // two root fields: the spec's SingleFieldSubscriptions rule, which mercurius never ran
  c.ws.send(JSON.stringify({
    id: '1', type: 'subscribe', payload: { query: 'subscription { a: messageFailed { messageId } b: messageFailed { messageId } }' }
  }))
  const refused = await c.next()
  t.equal(refused.type, 'error', 'an invalid subscription is an error')
  t.match(JSON.stringify(refused.payload), /only one top level field/i)
  // the same, as an AST object, which skips parsing altogether
  const ast = parse('subscription { a: messageFailed { messageId } b: messageFailed { messageId } }')
  c.ws.send(JSON.stringify({ id: '2', type: 'subscribe', payload: { query: ast } }))
  t.equal((await c.next()).type, 'error', 'an AST is judged the same')
  // 50,000 aliases: 900 KB that mercurius would parse before any hook of ours
  const huge = Array.from({ length: 50_000 }, (_, i) => `a${i}: messageId`).join(' ')
  c.ws.send(JSON.stringify({ id: '3', type: 'subscribe', payload: { query: `subscription { messageFailed { ${huge} } }` } }))
  t.equal(await c.closed, 1009, 'a frame over 16 KiB closes the socket (1009, message too big)')
})

t.test('SIGTERM ends the server within the grace period while a WebSocket client stops reading (attack finding)', async (t) => {
  const url = await testDatabase(t)
  const server = await spawnServer(t, { DATABASE_URL: url, PLT_ADMIN_SECRET: SECRET, HOOKPOST_SHUTDOWN_GRACE_MS: '1000' })
  const c = wsClient(Number(new URL(server.url).port))
  await new Promise((resolve) => c.ws.once('open', resolve))
  c.ws.send(JSON.stringify({ type: 'connection_init', payload: { 'x-platformatic-admin-secret': SECRET } }))
  t.equal((await c.next()).type, 'connection_ack')
  // the client reads nothing more: ws would wait 30 s for its close handshake
  ;(c.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
  const code = await server.stop(10_000)
  t.equal(code, 0, 'exited by itself on SIGTERM, not by the SIGKILL 10 s later')
})

t.test('the WebSocket guard: live ids are unique, subscriptions capped, non-objects refused (attack finding)', async (t) => {
  const { app } = await testApp(t, { adminSecret: SECRET })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const ready = async (): Promise<WsClient> => {
    const c = wsClient(port)
    await new Promise((resolve) => c.ws.once('open', resolve))
    c.ws.send(JSON.stringify({ type: 'connection_init', payload: { 'x-platformatic-admin-secret': SECRET } }))
    t.equal((await c.next()).type, 'connection_ack')
    return c
  }
  const subscribe = (c: WsClient, id: string, query = 'subscription { messageDelivered { messageId } }'): void =>
    c.ws.send(JSON.stringify({ id, type: 'subscribe', payload: { query } }))

  // a live id used again: mercurius overwrote the first, which then held the subscriber count for good
  const dup = await ready()
  subscribe(dup, 'a')
  subscribe(dup, 'a')
  t.equal(await dup.closed, 4409, 'a second subscribe with a live id is closed with 4409')

  // an id is free again once the client completes it, or once the server ends it (an error)
  const reuse = await ready()
  subscribe(reuse, 'x', 'subscription { nope }')
  t.equal((await reuse.next()).type, 'error', 'an invalid subscription ends with an error')
  subscribe(reuse, 'x')
  subscribe(reuse, 'y')
  reuse.ws.send(JSON.stringify({ id: 'y', type: 'complete' }))
  subscribe(reuse, 'y')
  // 99 more fill the cap of 100 (x and y are live); the next is refused
  for (let i = 0; i < 98; i++) subscribe(reuse, `n${i}`)
  subscribe(reuse, 'one-too-many')
  t.equal(await reuse.closed, 4400, 'the 101st live subscription closes the socket (4400)')
  await eventually(async () => !app.listener.hasSubscribers, 10_000)
  t.pass('every subscription was let go: this process no longer says it has subscribers')

  for (const raw of ['null', '5', '[]', '"x"']) {
    const c = wsClient(port)
    c.ws.once('open', () => c.ws.send(raw))
    t.equal(await c.closed, 4400, `a message ${raw}: closed with 4400, before mercurius throws and logs a stack`)
  }
})
