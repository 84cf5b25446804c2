// lib/delivery/sender.ts against real HTTP servers on 127.0.0.1: what is sent, what is kept of the
// answer, and how each failure is classified.
import t from 'tap'
import { createServer } from 'node:net'
import {
  createDispatcher, cutShort, RESPONSE_SNIPPET_BYTES, send, type Call, type Cut
} from '../lib/delivery/sender.js'
import { DEVELOPMENT_POLICY } from '../lib/domain/ssrf.js'
import { receiver } from './helpers.js'

function call (url: string, over: Partial<Call> = {}): Call {
  return {
    messageId: 7,
    queueId: 3,
    attempt: 2,
    url,
    method: 'POST',
    queueHeaders: { 'x-q': 'q' },
    headers: { 'x-m': 'm' },
    body: '{"a":1}',
    timeoutMs: 5000,
    idempotencyKey: 'k-1',
    eventId: null,
    eventType: null,
    signingSecrets: null,
    ...over
  }
}

t.test('a 2xx: method, path, body and headers as given; ours on top', async (t) => {
  const target = await receiver(t, (_r, res) => { res.statusCode = 204; res.end() })
  const d = createDispatcher(DEVELOPMENT_POLICY)
  t.teardown(async () => await d.close())
  const r = await send(d, call(`${target.url}/hook?x=1`))
  t.match(r, { ok: true, status: 204, errorKind: null, error: null })
  t.ok(r.durationMs >= 0 && r.startedAt instanceof Date)
  const [req] = target.requests
  t.equal(req!.url, '/hook?x=1')
  t.equal(req!.body, '{"a":1}')
  t.match(req!.headers, {
    'x-q': 'q',
    'x-m': 'm',
    'x-hookpost-message-id': '7',
    'x-hookpost-attempt': '2',
    'x-hookpost-queue-id': '3',
    'idempotency-key': 'k-1'
  })
  t.match(req!.headers['user-agent'], /^hookpost\//)
})

t.test('signed when the queue has secrets; GET sends no body', async (t) => {
  const target = await receiver(t)
  const d = createDispatcher(DEVELOPMENT_POLICY)
  t.teardown(async () => await d.close())
  const secret = 'whsec_' + Buffer.from('0123456789abcdef0123456789abcdef').toString('base64')
  await send(d, call(target.url, { signingSecrets: [secret] }))
  await send(d, call(target.url, { method: 'GET' }))
  t.equal(target.requests[0]!.headers['webhook-id'], '7')
  t.match(target.requests[0]!.headers['webhook-signature'], /^v1,/)
  t.equal(target.requests[1]!.method, 'GET')
  t.equal(target.requests[1]!.body, '')
})

t.test('an error status: not ok, the first 4 KB of the body and Retry-After kept', async (t) => {
  const target = await receiver(t, (_r, res) => {
    res.statusCode = 429
    res.setHeader('retry-after', '3')
    res.end('x'.repeat(10_000))
  })
  const d = createDispatcher(DEVELOPMENT_POLICY)
  t.teardown(async () => await d.close())
  const r = await send(d, call(target.url))
  t.match(r, { ok: false, status: 429, errorKind: 'http', error: 'HTTP 429', retryAfter: '3' })
  t.equal(r.responseBody!.length, RESPONSE_SNIPPET_BYTES)
  const again = await send(d, call(target.url))
  t.equal(again.status, 429, 'the rest of the body was read: the connection is reusable')
})

t.test('Retry-After sent twice is kept as both values; an informational 103 before the answer is not the answer', async (t) => {
  const target = await receiver(t, (_r, res) => {
    res.writeEarlyHints({ link: '</style.css>; rel=preload' })
    res.statusCode = 503
    res.setHeader('Retry-After', ['7', '9'])
    res.end('busy')
  })
  const d = createDispatcher(DEVELOPMENT_POLICY)
  t.teardown(async () => await d.close())
  t.match(await send(d, call(target.url)), { ok: false, status: 503, retryAfter: ['7', '9'], responseBody: 'busy' })
})

t.test('a redirect is a failure, never followed', async (t) => {
  const target = await receiver(t, (_r, res) => {
    res.statusCode = 302
    res.setHeader('location', '/elsewhere')
    res.end()
  })
  const d = createDispatcher(DEVELOPMENT_POLICY)
  t.teardown(async () => await d.close())
  t.match(await send(d, call(target.url)), { ok: false, status: 302, errorKind: 'http' })
  t.equal(target.requests.length, 1)
})

t.test('cut short by the deadline sweep: a timeout; by shutdown: a network error with the reason', async (t) => {
  const hang = await receiver(t, () => {})
  const d = createDispatcher(DEVELOPMENT_POLICY)
  t.teardown(async () => await d.close())
  const cut: Cut = { reason: undefined, abort: undefined }
  const pending = send(d, call(hang.url), cut)
  await hang.waitFor(1)
  cutShort(cut, Object.assign(new Error('deadline'), { name: 'TimeoutError' }))
  t.match(await pending, { ok: false, status: null, errorKind: 'timeout', error: /deadline/ })
  const cut2: Cut = { reason: undefined, abort: undefined }
  cutShort(cut2, new Error('shutting down'))
  t.match(await send(d, call(hang.url), cut2), { ok: false, errorKind: 'network', error: /shutting down/ },
    'cut before it started: never sent')
  t.equal(hang.requests.length, 1)
})

t.test('refused connection: connect; a reset mid-answer: network', async (t) => {
  const closed = createServer()
  await new Promise<void>(resolve => closed.listen(0, '127.0.0.1', resolve))
  const port = (closed.address() as { port: number }).port
  await new Promise<void>(resolve => closed.close(() => resolve()))
  const reset = createServer((s) => { s.once('data', () => s.resetAndDestroy()) })
  await new Promise<void>(resolve => reset.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { reset.close() })
  const d = createDispatcher(DEVELOPMENT_POLICY)
  t.teardown(async () => await d.close())
  t.match(await send(d, call(`http://127.0.0.1:${port}/`)), { ok: false, errorKind: 'connect', error: /ECONNREFUSED/ })
  const resetPort = (reset.address() as { port: number }).port
  t.match(await send(d, call(`http://127.0.0.1:${resetPort}/`)), { ok: false, status: null, errorKind: 'network' })
})

t.test('a target the SSRF policy refuses is blocked before any connection', async (t) => {
  const target = await receiver(t)
  const d = createDispatcher({ allowPrivateNetworks: false, ssrfAllow: [] })
  t.teardown(async () => await d.close())
  t.match(await send(d, call(target.url)), { ok: false, errorKind: 'blocked' })
  t.equal(target.requests.length, 0)
})
