// Traces: a traceparent given at enqueue (REST header, event, SQL headers) is continued by a span per
// attempt, exported over OTLP/HTTP to a real local receiver, and the endpoint gets the span's context.
// Without an endpoint configured, nothing of OpenTelemetry is loaded and the context is passed on as given.
import { readdirSync, readFileSync } from 'node:fs'
import t from 'tap'
import { deliveringApp, eventually, post, receiver, type Received } from './helpers.js'

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT = '00f067aa0ba902b7'
const TRACEPARENT = `00-${TRACE}-${PARENT}-01`

interface Span {
  traceId: string
  spanId: string
  parentSpanId: string
  name: string
  kind: number
  status?: { code?: number }
  attributes: Array<{ key: string, value: Record<string, unknown> }>
}

/** The spans a receiver of OTLP/HTTP JSON exports got, each with its attributes as a plain object. */
function spans (exports: Received[]): Array<Span & { attrs: Record<string, unknown> }> {
  return exports.flatMap(r => (JSON.parse(r.body).resourceSpans ?? []).flatMap((rs: any) =>
    rs.scopeSpans.flatMap((ss: any) => ss.spans.map((s: Span) => ({
      ...s,
      attrs: Object.fromEntries(s.attributes.map(a => {
        const v = Object.values(a.value)[0]
        return [a.key, typeof v === 'string' && 'intValue' in a.value ? Number(v) : v]
      }))
    })))))
}

t.test('a span per attempt, child of the enqueue\'s traceparent; the receiver gets the span\'s context', async (t) => {
  const otlp = await receiver(t)
  let calls = 0
  // the first attempt fails: two attempts, two spans
  const target = await receiver(t, (_r, res) => { res.statusCode = calls++ === 0 ? 500 : 200; res.end() })
  const { app, pool } = await deliveringApp(t, {
    tracing: { url: `${otlp.url}/v1/traces`, headers: { 'x-api-key': 'k' }, serviceName: 'hookpost-test', exportDelayMs: 20 }
  })
  const q = await post(app, '/queues', { name: 'traced', callbackUrl: target.url, backoffBaseMs: 10, backoffJitter: 'none' })
  const res = await app.inject({
    method: 'POST',
    url: '/messages',
    headers: { traceparent: TRACEPARENT, tracestate: 'vendor=x' },
    payload: { queueId: q.id, body: { a: 1 } }
  })
  t.equal(res.statusCode, 200)
  const m = res.json()
  t.same(m.headers, { traceparent: TRACEPARENT, tracestate: 'vendor=x' }, 'stored with the message')
  const got = await target.waitFor(2)
  const sent = got.map(r => String(r.headers.traceparent))
  t.ok(sent.every(h => h.startsWith(`00-${TRACE}-`)), `the enqueue's trace id reaches the receiver: ${sent.join(' ')}`)
  t.notOk(sent.some(h => h.includes(PARENT)), 'under a span of its own, not the enqueuer\'s')
  t.not(sent[0], sent[1], 'a span per attempt')
  t.equal(got[0]!.headers.tracestate, 'vendor=x', 'tracestate passed on')

  await eventually(async () => spans(otlp.requests).length >= 2)
  const exported = spans(otlp.requests)
  t.equal(otlp.requests[0]!.url, '/v1/traces')
  t.equal(otlp.requests[0]!.headers['x-api-key'], 'k', 'the configured headers go with each export')
  t.match(JSON.parse(otlp.requests[0]!.body).resourceSpans[0].resource.attributes,
    [{ key: 'service.name', value: { stringValue: 'hookpost-test' } }])
  const [first, second] = exported.sort((a, b) => Number(a.attrs['hookpost.attempt']) - Number(b.attrs['hookpost.attempt']))
  for (const [i, s] of [first!, second!].entries()) {
    t.equal(s.traceId, TRACE)
    t.equal(s.parentSpanId, PARENT, 'a child of the enqueue\'s context')
    t.equal(s.kind, 3, 'a client span')
    t.equal(`00-${s.traceId}-${s.spanId}-01`, sent[i], 'the span the receiver was told of')
    t.equal(s.attrs['hookpost.message.id'], m.id)
    t.equal(s.attrs['hookpost.queue.id'], q.id)
    t.equal(s.attrs['hookpost.attempt'], i + 1)
    t.equal(s.attrs['server.address'], '127.0.0.1')
  }
  t.equal(first!.attrs['http.response.status_code'], 500)
  t.equal(first!.status?.code, 2, 'the failed attempt is an error')
  t.equal(second!.attrs['http.response.status_code'], 200)
  t.notOk(JSON.stringify(otlp.requests.map(r => r.body)).includes(target.url.split('//')[1]! + '/'), 'no URL path')

  // an event's context reaches its fan-out messages; one given in SQL headers is used the same way
  const sub = await post(app, '/queues', { name: 'sub', callbackUrl: `${target.url}/sub`, eventTypes: ['order.*'] })
  const other = `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`
  const ev = await app.inject({ method: 'POST', url: '/events', headers: { traceparent: other }, payload: { type: 'order.created', payload: { n: 1 } } })
  t.equal(ev.statusCode, 200, ev.body)
  await pool.query("SELECT hookpost.enqueue($1, 'from sql', jsonb_build_object('traceparent', $2::text))",
    [sub.id, `00-${'3'.repeat(32)}-${'4'.repeat(16)}-00`])
  const all = await target.waitFor(4)
  const subs = all.filter(r => r.url === '/sub').map(r => String(r.headers.traceparent))
  t.ok(subs.some(h => h.startsWith(`00-${'1'.repeat(32)}-`)), 'the event\'s trace')
  t.ok(subs.some(h => h.startsWith(`00-${'3'.repeat(32)}-`)), 'the SQL enqueue\'s trace')
})

t.test('without an endpoint: the context is passed on as given; a body\'s own wins; invalid ones are ignored', async (t) => {
  const target = await receiver(t)
  const { app } = await deliveringApp(t)
  const q = await post(app, '/queues', { name: 'plain', callbackUrl: target.url })
  const send = async (headers: Record<string, string>, body: object): Promise<any> =>
    (await app.inject({ method: 'POST', url: '/messages', headers, payload: { queueId: q.id, ...body } })).json()
  const a = await send({ traceparent: TRACEPARENT }, { body: 'a' })
  const own = `00-${'5'.repeat(32)}-${'6'.repeat(16)}-01`
  const b = await send({ traceparent: TRACEPARENT }, { body: 'b', headers: { TraceParent: own } })
  const bad = await Promise.all([
    `00-${'0'.repeat(32)}-${PARENT}-01`, `00-${TRACE}-${'0'.repeat(16)}-01`, `ff-${TRACE}-${PARENT}-01`, 'nonsense'
  ].map(async (h, i) => await send({ traceparent: h }, { body: `bad${i}` })))
  t.same(a.headers, { traceparent: TRACEPARENT })
  t.same(b.headers, { TraceParent: own }, 'the body\'s own context is kept')
  t.same(bad.map(x => x.headers), [{}, {}, {}, {}], 'an invalid traceparent is ignored, as the spec asks')
  const got = await target.waitFor(6)
  t.equal(got.find(r => r.body === 'a')!.headers.traceparent, TRACEPARENT, 'passed on as given')

  // attack round: 64 headers of the body's own plus the context would store 66, which no PUT takes back
  const full = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`x-h${i}`, 'v']))
  const c = await send({ traceparent: TRACEPARENT, tracestate: 'a=1' }, { body: 'c', headers: full })
  t.equal(Object.keys(c.headers).length, 64, 'at the limit the context is dropped, not stored past it')
  // what a PUT of it would check (a sent message is not editable: the schema is the point here)
  const { checkHeaders } = await import('../lib/domain/headers.js')
  t.doesNotThrow(() => checkHeaders(c.headers), 'and its headers are ones a PUT takes back')
})

t.test('a collector that refuses spans is logged (once a minute at most); one that hangs does not hold shutdown', async (t) => {
  const { Writable } = await import('node:stream')
  const { createServer } = await import('node:http')
  const pino = (await import('pino')).default
  const { startTracing, TRACE_SHUTDOWN_MS } = await import('../lib/delivery/tracing.js')
  let logged = ''
  const log = pino({ level: 'warn' }, new Writable({ write (chunk, _enc, cb) { logged += String(chunk); cb() } }))
  const refusing = await receiver(t, (_r, res) => { res.statusCode = 500; res.end('no') })
  // a fake attempt: what the span wraps does not matter here
  const row: any = { id: 1, queueId: 1, headers: {}, eventType: null, eventId: null, queue: { callbackUrl: 'http://127.0.0.1:9/x', method: 'POST' } }
  const ok = async () => ({ ok: true, status: 200, errorKind: null, error: null }) as any
  const a = await startTracing({ url: `${refusing.url}/v1/traces`, headers: {}, serviceName: 's', exportDelayMs: 10 }, log)
  for (let i = 0; i < 3; i++) await a.traced(ok)(row, 1, new AbortController().signal as any)
  await eventually(async () => /the collector did not take spans/.test(logged))
  await a.shutdown()
  t.equal(logged.match(/the collector did not take spans/g)!.length, 1, 'said once, with the count')

  // accepts the connection, never answers
  const hung = createServer(() => {})
  await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { hung.closeAllConnections(); hung.close() })
  const b = await startTracing({ url: `http://127.0.0.1:${(hung.address() as any).port}/v1/traces`, headers: {}, serviceName: 's', exportDelayMs: 60_000 }, log)
  await b.traced(ok)(row, 1, new AbortController().signal as any)
  await b.shutdown()
  t.match(logged, /the last spans were not exported in time/, `shutdown gave up after ${TRACE_SHUTDOWN_MS} ms and said so`)
})

t.test('OpenTelemetry is imported by lib/delivery/tracing.ts alone, and only dynamically', async (t) => {
  const files = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap(e =>
    e.isDirectory() ? files(`${dir}/${e.name}`) : e.name.endsWith('.ts') ? [`${dir}/${e.name}`] : [])
  const importers = files('lib').filter(f => readFileSync(f, 'utf8').includes('@opentelemetry/'))
  t.same(importers, ['lib/delivery/tracing.ts'])
  t.notMatch(readFileSync('lib/delivery/tracing.ts', 'utf8'), /^import [^'"]*from '@opentelemetry/m, 'no static import')
})
