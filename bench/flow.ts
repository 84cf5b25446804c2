// Flow control's costs and throughput (README "Flow control and endpoint health"), each as a pair of
// runs on one server, back to back, on this machine:
//
//   beside     unlimited queues, delivered/s alone and then beside limited queues that have a backlog
//              of their own (the limited queues' rows must not slow the others: at most 5% less)
//   rated      100 queues limited to 50/s each: the calls per second sustained in all (5,000 asked)
//   slots      one queue, unlimited and then with a maxConcurrency (a concurrency limit held across
//              processes, what River users measure as a global limit's cost)
//   ordered    one queue, 1,000 ordering keys of 20 messages each against the same 20,000 unordered
//
// Usage: DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npx tsx bench/flow.ts
//   BENCH_FLOW              comma list of the pairs above (default all)
//   BENCH_N                 messages per run (default 20000)
//   BENCH_SLOTS             maxConcurrency of the slots pair (default 64)
//   BENCH_SERVERS           delivering processes (default 1; more deliver together)
//   BENCH_BESIDE_RATE       the beside pair's limited queues' rate, per queue and second (default 50; at 1
//                           their own calls are nearly none, and what is left is their backlog's presence)
import pg from 'pg'
import {
  createBenchDatabase, envInt, freePort, makeBody, onCleanup, round, runMain, startServer
} from './harness.js'
import { nowMs, startReceiver, type Receiver } from './receiver.js'

const N = envInt('BENCH_N', 20_000, 100, 10_000_000)
const SLOTS = envInt('BENCH_SLOTS', 64, 1, 10_000)
const SERVERS = envInt('BENCH_SERVERS', 1, 1, 8)
const BESIDE_RATE = envInt('BENCH_BESIDE_RATE', 50, 1, 100_000)
const PAIRS = (process.env.BENCH_FLOW ?? 'beside,rated,slots,ordered').split(',').map(s => s.trim())
const BODY_TEXT = JSON.stringify(makeBody())
const FAR = '2999-01-01T00:00:00Z'

interface Ctx { db: pg.Pool, api: string, receiver: Receiver, receiverOrigin: string }

async function api (ctx: Ctx, path: string, body: object): Promise<any> {
  const res = await fetch(`${ctx.api}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body)
  })
  if (res.status >= 300) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`)
  return await res.json()
}

let tags = 0
async function queues (ctx: Ctx, n: number, settings: object): Promise<{ tag: string, ids: number[] }> {
  const tag = `t${++tags}`
  const ids: number[] = []
  for (let i = 0; i < n; i++) {
    ids.push((await api(ctx, '/queues', { name: `${tag}-${i}`, callbackUrl: `${ctx.receiverOrigin}/r/${tag}`, ...settings })).id)
  }
  return { tag, ids }
}

/** n messages round robin over the queues, far in the future; keys: the ordering key of the g-th */
async function insert (ctx: Ctx, ids: number[], n: number, keys?: number): Promise<void> {
  await ctx.db.query(`INSERT INTO hookpost.messages (queue_id, body, body_json, "when", ordering_key)
    SELECT ($1::bigint[])[1 + g % cardinality($1::bigint[])], $2, true, $3::timestamptz,
      CASE WHEN $5::integer > 0 THEN 'k' || (g % $5::integer) END
    FROM generate_series(1, $4) g`, [ids, BODY_TEXT, FAR, n, keys ?? 0])
}

/** Make the queues' rows due at once (NOTIFY); returns when, by the receiver's clock. */
async function go (ctx: Ctx, ids: number[]): Promise<number> {
  await ctx.db.query('VACUUM ANALYZE hookpost.messages')
  const c = await ctx.db.connect()
  try {
    await c.query('BEGIN')
    await c.query('UPDATE hookpost.messages SET run_at = now() WHERE queue_id = ANY($1::bigint[]) AND sent_at IS NULL', [ids])
    await c.query('NOTIFY hookpost_messages')
    const t0 = nowMs()
    await c.query('COMMIT')
    return t0
  } finally {
    c.release()
  }
}

async function done (ctx: Ctx, tag: string, deadlineMs = 600_000): Promise<number> {
  const until = Date.now() + deadlineMs
  for (;;) {
    const s = await ctx.receiver.stats(tag)
    if (s.doneAt !== null) return s.doneAt
    if (Date.now() > until) throw new Error(`${tag}: ${s.distinct}/${s.expected} received`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

/** one run: n messages on fresh queues with these settings, delivered/s by the receiver */
async function run (ctx: Ctx, n: number, nQueues: number, settings: object, keys?: number): Promise<number> {
  const { tag, ids } = await queues(ctx, nQueues, settings)
  await insert(ctx, ids, n, keys)
  await ctx.receiver.expect(tag, { n, bodyBytes: Buffer.byteLength(BODY_TEXT) })
  const t0 = await go(ctx, ids)
  return n / ((await done(ctx, tag) - t0) / 1000)
}

// each pair's figures, printed as soon as it ends
const results = { push: (r: Record<string, unknown>): void => { process.stdout.write(JSON.stringify(r) + '\n') } }

async function beside (ctx: Ctx): Promise<void> {
  const alone = await run(ctx, N, 10, {})
  // 10 queues at BESIDE_RATE, 5,000 rows each, due together with the unlimited ones' and still draining after
  const limited = await queues(ctx, 10, { rateLimitPerSecond: BESIDE_RATE })
  await insert(ctx, limited.ids, 50_000)
  const { tag, ids } = await queues(ctx, 10, {})
  await insert(ctx, ids, N)
  await ctx.receiver.expect(tag, { n: N, bodyBytes: Buffer.byteLength(BODY_TEXT) })
  await ctx.receiver.expect(limited.tag, { n: 50_000, bodyBytes: Buffer.byteLength(BODY_TEXT) })
  const t0 = await go(ctx, [...ids, ...limited.ids])
  const withLimited = N / ((await done(ctx, tag) - t0) / 1000)
  // the limited rows left are not wanted: out of the way of the next pair
  await ctx.db.query('DELETE FROM hookpost.messages WHERE queue_id = ANY($1::bigint[]) AND sent_at IS NULL', [limited.ids])
  results.push({ pair: 'beside', limitedRate: BESIDE_RATE, aloneMsgPerSec: round(alone, 0), besideLimitedMsgPerSec: round(withLimited, 0), ratio: round(withLimited / alone, 3) })
}

async function rated (ctx: Ctx): Promise<void> {
  const per = 600
  const { tag, ids } = await queues(ctx, 100, { rateLimitPerSecond: 50 })
  await insert(ctx, ids, per * 100)
  await ctx.receiver.expect(tag, { n: per * 100, bodyBytes: Buffer.byteLength(BODY_TEXT), keepTimes: true })
  const t0 = await go(ctx, ids)
  const end = await done(ctx, tag)
  const times = (await ctx.receiver.times(tag)).map(([, at]) => at).sort((a, b) => a - b)
  // after the first second's burst (50 each), the rate: calls between t0 + 1 s and the end
  const after = times.filter(x => x >= t0 + 1000)
  const steady = after.length / ((end - (t0 + 1000)) / 1000)
  let worst = 0
  for (let s = t0 + 1000; s + 1000 <= end; s += 1000) {
    worst = Math.max(worst, times.filter(x => x >= s && x < s + 1000).length)
  }
  results.push({ pair: 'rated', queues: 100, perQueue: 50, asked: 5000, sustainedPerSec: round(steady, 0), worstSecond: worst, seconds: round((end - t0) / 1000, 1) })
}

async function slots (ctx: Ctx): Promise<void> {
  const free = await run(ctx, N, 1, {})
  const limited = await run(ctx, N, 1, { maxConcurrency: SLOTS })
  results.push({ pair: 'slots', maxConcurrency: SLOTS, unlimitedMsgPerSec: round(free, 0), limitedMsgPerSec: round(limited, 0), ratio: round(limited / free, 3) })
}

async function ordered (ctx: Ctx): Promise<void> {
  const plain = await run(ctx, N, 1, {})
  const keyed = await run(ctx, N, 1, {}, Math.max(1, Math.round(N / 20)))
  results.push({ pair: 'ordered', keys: Math.round(N / 20), perKey: 20, unorderedMsgPerSec: round(plain, 0), orderedMsgPerSec: round(keyed, 0), ratio: round(keyed / plain, 3) })
}

async function main (): Promise<void> {
  const { url } = await createBenchDatabase()
  const receiver = await startReceiver('child')
  onCleanup(async () => { await receiver.close() })
  const port = await freePort()
  startServer(url, port)
  for (let i = 1; i < SERVERS; i++) startServer(url, await freePort(), [], { HOOKPOST_ALL_PROCESSES_DELIVER: 'true' })
  const apiUrl = `http://127.0.0.1:${port}`
  for (let i = 0; ; i++) {
    try { if ((await fetch(`${apiUrl}/health`)).ok) break } catch {}
    if (i > 300) throw new Error('the server did not start')
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  const db = new pg.Pool({ connectionString: url, max: 4 })
  onCleanup(async () => { await db.end() })
  const ctx: Ctx = { db, api: apiUrl, receiver, receiverOrigin: `http://127.0.0.1:${receiver.port}` }
  // warm up: the server's first thousand deliveries
  await run(ctx, 1000, 1, {})
  for (const p of PAIRS) {
    if (p === 'beside') await beside(ctx)
    else if (p === 'rated') await rated(ctx)
    else if (p === 'slots') await slots(ctx)
    else if (p === 'ordered') await ordered(ctx)
    else throw new Error(`BENCH_FLOW: unknown pair ${p}`)
  }
}

runMain(main, 20 * 60_000)
