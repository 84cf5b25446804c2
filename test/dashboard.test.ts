// The dashboard's server side: its pages (served from the package, small, under a strict content
// policy, holding no data), its live overview stream (SSE under the admin secret, capped, ended on
// close, one read a second whatever the number of streams) and its crons with their next ticks.
// What a browser does with them is test/browser.test.ts.
import { Socket } from 'node:net'
import { gzipSync } from 'node:zlib'
import pg from 'pg'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { dashboardFiles } from '../lib/dashboard/pages.js'
import { MAX_BEHIND_TICKS, MAX_OVERVIEW_STREAMS, OverviewFeed } from '../lib/http/overview-feed.js'
import { eventually, post, silentLog, testApp } from './helpers.js'

const SECRET = 'dashboard-test-secret'
const HEADERS = { 'x-platformatic-admin-secret': SECRET }

async function listening (app: FastifyInstance): Promise<string> {
  return await app.listen({ port: 0, host: '127.0.0.1' })
}

/** The SSE events of a response, one at a time: next() resolves with { event, data }. */
function events (res: Response): { next: () => Promise<{ event: string, data: any }>, cancel: () => Promise<void> } {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader()
  let buffered = ''
  return {
    async next () {
      for (;;) {
        const end = buffered.indexOf('\n\n')
        if (end >= 0) {
          const frame = buffered.slice(0, end)
          buffered = buffered.slice(end + 2)
          const event = /^event: (.*)$/m.exec(frame)?.[1]
          const data = /^data: (.*)$/m.exec(frame)?.[1]
          if (event !== undefined && data !== undefined) return { event, data: JSON.parse(data) }
          continue
        }
        const { value, done } = await reader.read()
        if (done) throw new Error('the stream ended')
        buffered += value
      }
    },
    cancel: async () => { await reader.cancel() }
  }
}

t.test('the pages: no secret needed, no data in them, a strict policy, small, nothing outside the package', async (t) => {
  const { app } = await testApp(t, { adminSecret: SECRET })
  const page = await app.inject({ url: '/dashboard' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.headers['content-security-policy'], /default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'/)
  t.match(page.headers['content-security-policy'], /frame-ancestors 'none'/)
  t.equal(page.headers['x-content-type-options'], 'nosniff')
  t.notMatch(page.body, /https?:\/\//, 'the page names no other origin')
  // every file the page loads, directly or by import, is served
  const files = dashboardFiles()
  for (const [, linked] of page.body.matchAll(/"\/dashboard\/assets\/([\w.-]+)"/g)) t.ok(files.has(linked!), `index.html links ${linked}`)
  for (const name of files.keys()) {
    if (name === 'index.html') continue
    const res = await app.inject({ url: `/dashboard/assets/${name}` })
    t.equal(res.statusCode, 200, name)
    t.notMatch(res.body, /https?:\/\/(?!www\.w3\.org\/2000\/svg)/, `${name} fetches from no other origin`)
    for (const [, imported] of res.body.matchAll(/from '\.\/([\w-]+\.js)'/g)) t.ok(files.has(imported!), `${name} imports ${imported}`)
  }
  for (const bad of ['nope.js', '..%2Fpages.ts', '..%2F..%2Fpackage.json', 'index.html']) {
    t.equal((await app.inject({ url: `/dashboard/assets/${bad}` })).statusCode, 404, `${bad}: 404`)
  }
  const gzipped = [...files.values()].reduce((n, f) => n + gzipSync(f.body).length, 0)
  t.ok(gzipped < 200 * 1024, `the whole dashboard is ${(gzipped / 1024).toFixed(1)} KB gzipped (under 200 KB)`)
  // the data, in contrast, needs the secret
  t.equal((await app.inject({ url: '/dashboard/api/overview' })).statusCode, 401)
  t.equal((await app.inject({ url: '/dashboard/api/crons' })).statusCode, 401)
  t.equal((await app.inject({ url: '/dashboard/api/overview/stream', headers: { 'x-platformatic-admin-secret': 'wrong' } })).statusCode, 403)
})

t.test('the live overview: an event at once, then the backlog as it changes; closed with the app', async (t) => {
  const { app } = await testApp(t, { adminSecret: SECRET })
  const base = await listening(app)
  const q = await post(app, '/queues', { name: 'live', callbackUrl: 'http://127.0.0.1:9/live' }).catch(() => null)
  // post() sends no secret: the queue is made with it
  t.equal(q, null, 'the API refuses a request without the secret')
  const made = await app.inject({ method: 'POST', url: '/queues', headers: HEADERS, payload: { name: 'live', callbackUrl: 'http://127.0.0.1:9/live' } })
  const queue = made.json()

  const res = await fetch(`${base}/dashboard/api/overview/stream`, { headers: HEADERS })
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /^text\/event-stream/)
  t.equal(res.headers.get('cache-control'), 'no-store')
  const stream = events(res)
  const first = await stream.next()
  t.equal(first.event, 'overview')
  t.equal((await stream.next()).event, 'same', 'nothing changed: the next second says so, in a line')
  t.match(first.data, [{ id: queue.id, name: 'live', state: 'active', pending: 0 }])
  t.equal(first.data[0].perMinute.delivered.length, 60)

  await app.inject({ method: 'POST', url: '/messages', headers: HEADERS, payload: { queueId: queue.id, body: 'x' } })
  // within the next few frames (one a second): the engine is off here, so the message stays pending
  let seen = first
  for (let i = 0; i < 5 && seen.data[0]?.pending !== 1; i++) seen = await stream.next()
  t.equal(seen.data[0].pending, 1, 'the new message shows in the stream')
  t.equal(seen.data[0].due, 1)

  // app.close() ends the stream rather than waiting for it
  const closed = app.close()
  await t.rejects(async () => { for (;;) await stream.next() }, /the stream ended|terminated/, 'the stream ends')
  await closed
})

t.test('streams are capped per process, and a closed one frees its place', async (t) => {
  const { app } = await testApp(t, { adminSecret: SECRET })
  const base = await listening(app)
  const open: Array<{ abort: AbortController }> = []
  for (let i = 0; i < MAX_OVERVIEW_STREAMS; i++) {
    const abort = new AbortController()
    const res = await fetch(`${base}/dashboard/api/overview/stream`, { headers: HEADERS, signal: abort.signal })
    t.equal(res.status, 200)
    open.push({ abort })
  }
  t.teardown(() => { for (const o of open) o.abort.abort() })
  const refused = await fetch(`${base}/dashboard/api/overview/stream`, { headers: HEADERS })
  // a 4xx: a client over the cap is not the server failing, and is not logged as an error
  t.equal(refused.status, 429)
  t.match(await refused.json(), { code: 'HOOKPOST_ERR_TOO_MANY_STREAMS', message: /64 live streams are open/ })
  open.pop()!.abort.abort()
  const again = await eventually(async () => {
    const res = await fetch(`${base}/dashboard/api/overview/stream`, { headers: HEADERS })
    if (res.status === 200) return res
    await res.body?.cancel()
    return null
  })
  t.equal(again!.status, 200, 'a stream closed by its client frees its place')
  await again!.body!.cancel()
})

t.test('the feed: one read serves every stream, none runs without one, a failed read is a problem event', async (t) => {
  // an unreachable database: each read fails, and each stream is told so and kept
  const pool = new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:1/none', connectionTimeoutMillis: 500 })
  pool.on('error', () => {})
  t.teardown(async () => { await pool.end() })
  let reads = 0
  const query = pool.query.bind(pool)
  pool.query = ((...args: any[]) => { reads++; return (query as any)(...args) }) as any
  const feed = new OverviewFeed(pool, silentLog, { leaseMs: 60_000, everyMs: 50 })
  const a = feed.subscribe(new Socket())!
  const b = feed.subscribe(new Socket())!
  const frames = (s: NodeJS.ReadableStream) => {
    const got: string[] = []
    s.on('data', (d: Buffer) => got.push(d.toString()))
    return got
  }
  const fa = frames(a)
  const fb = frames(b)
  await eventually(async () => fa.some(f => f.startsWith('event: problem')) && fb.some(f => f.startsWith('event: problem')))
  const problem = JSON.parse(/data: (.*)/.exec(fa.find(f => f.startsWith('event: problem'))!)![1]!)
  t.match(problem.message, /database/, `said in words: ${problem.message}`)
  t.notOk(a.destroyed || b.destroyed, 'the streams are kept')
  t.equal(feed.open, 2)
  a.destroy()
  b.destroy()
  await eventually(async () => feed.open === 0)
  const after = reads
  // with no stream, no read: wait on several intervals' worth of a fresh subscriber's first frame instead of a sleep
  const c = feed.subscribe(new Socket())!
  const fc = frames(c)
  await eventually(async () => fc.some(f => f.startsWith('event: problem')))
  t.ok(reads - after <= 2, `a new stream starts reading again (${reads - after} read(s) since)`)
  // a client that reads nothing is cut after MAX_BEHIND_TICKS, while one that reads stays
  const socket = new Socket()
  const stalled = feed.subscribe(socket)!
  await eventually(async () => stalled.destroyed, 10_000)
  t.ok(socket.destroyed, `a stream not read for ${MAX_BEHIND_TICKS} ticks is cut, with its socket`)
  t.notOk(c.destroyed, 'the stream that reads is kept')
  feed.close()
  t.ok(c.destroyed, 'close() cuts the streams')
  t.equal(feed.subscribe(new Socket()), null, 'and takes no new one')
})

t.test('a stream opened just after the last one closed gets its overview at once, not a tick later', async (t) => {
  const { testDatabase, testPool } = await import('./helpers.js')
  const pool = testPool(t, await testDatabase(t))
  // a tick far away: only the first frame sent on subscribing can pass this test
  const feed = new OverviewFeed(pool, silentLog, { leaseMs: 60_000, everyMs: 60_000 })
  t.teardown(() => feed.close())
  const overviewIn = (s: NodeJS.ReadableStream) => {
    let text = ''
    s.on('data', (d: Buffer) => { text += d.toString() })
    return () => text.includes('event: overview')
  }
  const a = feed.subscribe(new Socket())!
  const gotA = overviewIn(a)
  await eventually(async () => gotA(), 5000)
  a.destroy()
  await eventually(async () => feed.open === 0)
  // not read yet, as a response whose piping has not begun: its retry line is still buffered
  const b = feed.subscribe(new Socket())!
  await new Promise(resolve => setImmediate(resolve))
  const got = overviewIn(b)
  await eventually(async () => got(), 5000)
  t.pass('the new stream has its overview')
})

t.test('crons with their next five ticks, paged, under the secret', async (t) => {
  const { app } = await testApp(t, { adminSecret: SECRET })
  const queue = (await app.inject({ method: 'POST', url: '/queues', headers: HEADERS, payload: { name: 'c', callbackUrl: 'http://127.0.0.1:9/c' } })).json()
  const cron = (await app.inject({ method: 'POST', url: '/crons', headers: HEADERS, payload: { queueId: queue.id, schedule: '*/5 * * * *', timezone: 'Asia/Kolkata' } })).json()
  const res = await app.inject({ url: '/dashboard/api/crons', headers: HEADERS })
  t.equal(res.statusCode, 200)
  const { total, crons } = res.json()
  t.equal(total, 1)
  t.match(crons[0], { id: cron.id, schedule: '*/5 * * * *', timezone: 'Asia/Kolkata', paused: false })
  const ticks = crons[0].nextTicks.map((s: string) => new Date(s).getTime())
  t.equal(ticks.length, 5)
  t.equal(new Date(crons[0].nextTicks[0]).toISOString(), new Date(cron.nextTickAt).toISOString(), 'the first is the scheduler\'s next tick')
  for (let i = 1; i < 5; i++) t.equal(ticks[i] - ticks[i - 1], 300_000, 'then every five minutes')
  t.equal((await app.inject({ url: '/dashboard/api/crons?offset=-1', headers: HEADERS })).statusCode, 400, 'a bad offset is a 400')
})
