// Delivery-path benchmark: hookpost (the real server, a separate process) against a raw ceiling loop
// written here with pg + undici, on one database, against one local receiver, in one run.
//
//   npx tsx bench/delivery.ts        (or: npm run bench)
//
// Phases, in this order, each on its own queue (the raw loop on its own table):
//   raw   the minimal loop (bench/raw-loop.ts) on N rows pre-inserted in raw_messages_<round>
//   pre   hookpost on N rows pre-inserted in hookpost.messages, made due all at once
//         raw and pre alternate for BENCH_ROUNDS rounds: each round's ratio compares two phases run
//         back to back, and the headline is the median round (one 20,000-message phase lasts about
//         two seconds, and this shared machine's speed drifts by a fifth between phases)
//   rest  hookpost on N messages posted through POST /messages at concurrency BENCH_REST_C
//   lat   commit-to-receipt latency: plain SQL INSERTs at a steady BENCH_LAT_RATE msg/s
//   ret   retention under load: BENCH_RETENTION_N delivered messages a week old (one attempt each), then
//         pre-inserted backlogs of N delivered in BENCH_ROUNDS pairs, without and then with retention
//         (lib/services/retention.ts itself, run here on the bench's pool) deleting that history meanwhile;
//         the median pair's ratio is the figure
//   fan   events (issue: fan-out): in BENCH_ROUNDS rounds, FAN_N direct messages on FAN_Q queues, then
//         FAN_N / FAN_Q events published (hookpost.publish) to FAN_Q queues subscribed to their type, both
//         pre-inserted and made due at once as in "pre"; the median round's ratio is the figure. Then
//         PostgreSQL's execution time (EXPLAIN ANALYZE) per resulting message of hookpost.enqueue and of
//         hookpost.publish, and of one publish with 1,000 queues of which FAN_Q match (off unless listed)
//   scale hookpost pre-inserted once per backlog in BENCH_BACKLOGS (e.g. 20000,100000,1000000), each
//         against the first: is throughput flat in the backlog? (after the others; off unless listed)
// "pre" and "raw" are prepared alike: rows inserted with a far-future due time, VACUUM ANALYZE,
// CHECKPOINT, then one transaction makes them all due (hookpost: + NOTIFY). The clock starts just
// before that COMMIT and stops when the receiver has seen the N-th distinct message id.
//
// Environment:
//   DATABASE_URL          PostgreSQL to bench on (loopback only); a fresh database hookpost_bench_<random>
//                         is created there and dropped at the end. Unset or empty: an embedded PostgreSQL
//                         (lib/db/embedded.ts) is started on ./data/bench for the run and stopped at the end
//                         (the postgres CPU column then counts it and any other PostgreSQL on the machine)
//   BENCH_N               messages per throughput phase (default 20000)
//   BENCH_ROUNDS          raw + pre rounds, and ret's without + with pairs (default 3)
//   BENCH_QUEUES          pre and scale phases spread their messages over this many queues, round robin (default 1)
//   BENCH_BACKLOGS        comma list of backlogs for the scale phase (default none: no scale phase)
//   BENCH_RETENTION_N     delivered history for the ret phase (default 1000000)
//   BENCH_SERVERS         server processes, all delivering (HOOKPOST_ALL_PROCESSES_DELIVER=true) when more
//                         than 1 (default 1); the API is the first one's; cpu server and RSS are their sums
//   BENCH_WARMUP          messages through each path before it is measured, not counted (default 1000)
//   BENCH_REST_C          POST /messages concurrency (default 32)
//   BENCH_LAT_N, BENCH_LAT_RATE   latency phase: messages and msg/s (default 1000 at 100/s)
//   BENCH_RAW_BATCH, BENCH_RAW_CONCURRENCY, BENCH_RAW_PIPELINE   raw loop: claim size (200),
//                         calls in flight (64), claims outstanding (2)
//   BENCH_RECEIVER        child (default: its own process) or inproc (in the bench process)
//   BENCH_PHASES          comma list of raw,pre,rest,lat,scale (default raw,pre,rest,lat, and scale when
//                         BENCH_BACKLOGS is set)
//   BENCH_SERVER_ROOT     run the server from this copy of the repository instead (A/B a change to lib/)
//   BENCH_SERVER_NODE_ARGS  extra node flags for the server, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
//   BENCH_STALL_MS        fail a phase whose receiver sees nothing new for this long (default 30000)
//   BENCH_TIMEOUT_MS      global deadline; past it the server is killed, the db dropped, exit 1 (default 600000)
//   HOOKPOST_*            passed through to the server (HOOKPOST_BATCH_SIZE, HOOKPOST_DELIVERY_CONCURRENCY, ...)
//   PLT_ADMIN_SECRET      passed through to the server; sent as X-PLATFORMATIC-ADMIN-SECRET when set
//   BENCH_DASHBOARD       streams of the dashboard's live overview (GET /dashboard/api/overview/stream) held
//                         open, and read, for the whole run: what an open dashboard costs delivery (default 0)
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { Pool } from 'undici'
import { DEFAULTS, defaultQueueConcurrency } from '../lib/config.js'
import { CHANNELS, notify as notifyStatement } from '../lib/db/channels.js'
import {
  createBenchDatabase, drive, envInt, fmt, freePort, gitRevision, machineCpuMs, makeBody, nproc, onCleanup, percentile,
  peakRssMb, postgresCpuMs, processCpuMs, round, runMain, serverAlive, serverPid, serverPids, startServer, table,
  waitForHealth,
  adminQuery
} from './harness.js'
import { rawTableSql, runRawLoop, type RawLoopStats } from './raw-loop.js'
import { pino } from 'pino'
import { Retention } from '../lib/services/retention.js'
import { nowMs, startReceiver, type Receiver, type TagStats } from './receiver.js'

const N = envInt('BENCH_N', 20_000, 1, 10_000_000)
const WARMUP = envInt('BENCH_WARMUP', 1000, 0, 1_000_000)
const ROUNDS = envInt('BENCH_ROUNDS', 3, 1, 20)
const REST_C = envInt('BENCH_REST_C', 32, 1, 1024)
const LAT_N = envInt('BENCH_LAT_N', 1000, 1, 1_000_000)
const LAT_RATE = envInt('BENCH_LAT_RATE', 100, 1, 100_000)
const RAW_BATCH = envInt('BENCH_RAW_BATCH', 200, 1, 10_000)
const RAW_C = envInt('BENCH_RAW_CONCURRENCY', 64, 1, 4096)
const RAW_PIPELINE = envInt('BENCH_RAW_PIPELINE', 2, 1, 16)
const STALL_MS = envInt('BENCH_STALL_MS', 30_000, 1000, 3_600_000)
const TIMEOUT_MS = envInt('BENCH_TIMEOUT_MS', 10 * 60_000, 1000, 24 * 3600_000)
const RECEIVER_MODE = process.env.BENCH_RECEIVER === 'inproc' ? 'inproc' : 'child'
const QUEUES = envInt('BENCH_QUEUES', 1, 1, 10_000)
const SERVERS = envInt('BENCH_SERVERS', 1, 1, 16)
const RETENTION_N = envInt('BENCH_RETENTION_N', 1_000_000, 1, 10_000_000)
// the fan phase: messages per side, and endpoints per event
const FAN_N = envInt('BENCH_FAN_N', 10_000, 10, 1_000_000)
const FAN_Q = envInt('BENCH_FAN_QUEUES', 10, 1, 100)
// the fan phase's cost samples: statements EXPLAIN ANALYZEd per kind, and queues in all for the last one
const FAN_SAMPLES = 200
const FAN_ALL_QUEUES = 1000
const BACKLOGS = (process.env.BENCH_BACKLOGS ?? '').split(',').map(s => s.trim()).filter(s => s !== '').map(Number)
if (BACKLOGS.some(n => !Number.isInteger(n) || n < 1 || n > 10_000_000)) throw new Error('BENCH_BACKLOGS: integers 1..10000000')
const PHASES = new Set((process.env.BENCH_PHASES ?? `raw,pre,rest,lat${BACKLOGS.length > 0 ? ',scale' : ''}`)
  .split(',').map(s => s.trim()).filter(s => s !== ''))
const DASHBOARDS = envInt('BENCH_DASHBOARD', 0, 0, 64)
const SERVER_NODE_ARGS = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(/\s+/).filter(s => s !== '')
const ADMIN_SECRET = process.env.PLT_ADMIN_SECRET !== undefined && process.env.PLT_ADMIN_SECRET !== '' ? process.env.PLT_ADMIN_SECRET : undefined
for (const p of PHASES) if (!['raw', 'pre', 'rest', 'lat', 'scale', 'ret', 'fan'].includes(p)) throw new Error(`BENCH_PHASES: unknown phase ${p}`)

/** the server's delivery settings as it will resolve them (lib/config.ts) */
function serverSettings (): Record<string, number> {
  const int = (name: string, fallback: number): number => {
    const v = process.env[name]
    return v === undefined || v.trim() === '' ? fallback : Number(v)
  }
  const concurrency = int('HOOKPOST_DELIVERY_CONCURRENCY', DEFAULTS.concurrency)
  return {
    batchSize: int('HOOKPOST_BATCH_SIZE', DEFAULTS.batchSize),
    concurrency,
    queueConcurrency: int('HOOKPOST_QUEUE_CONCURRENCY', defaultQueueConcurrency(concurrency)),
    dbPoolSize: int('HOOKPOST_DB_POOL_SIZE', DEFAULTS.poolSize),
    pollMs: int('HOOKPOST_POLL_MS', DEFAULTS.pollMs)
  }
}

const BODY = makeBody()
const BODY_TEXT = JSON.stringify(BODY)
const BODY_BYTES = Buffer.byteLength(BODY_TEXT)
const FAR_FUTURE = '2999-01-01T00:00:00Z'

function apiHeaders (): Record<string, string> {
  const h: Record<string, string> = { 'content-type': 'application/json' }
  if (ADMIN_SECRET !== undefined) h['x-platformatic-admin-secret'] = ADMIN_SECRET
  return h
}

// ---------------------------------------------------------------------------------------------
// measurement helpers

interface CpuSnap {
  at: number, bench: number, receiver: number, server: number, pg: number, busy: number, irq: number, total: number
}
/** CPU per delivered message over a phase, by process, microseconds */
function cpuPerMessage (c: CpuShare, seconds: number, n: number): Record<string, number> {
  const us = (pct: number): number => round(pct / 100 * seconds * 1e6 / n, 0)
  const recv = Number.isNaN(c.receiver) ? 0 : c.receiver
  return {
    cpuUsPerMsgServer: us(c.server),
    cpuUsPerMsgPostgres: us(c.postgres),
    cpuUsPerMsgReceiver: us(recv),
    cpuUsPerMsgIrq: us(c.irq),
    cpuUsPerMsgAll: us(c.server + c.postgres + recv + c.irq)
  }
}

/** CPU used during a phase, in % of one core (200 = two cores flat out) */
export interface CpuShare {
  bench: number, receiver: number, server: number, postgres: number, irq: number, other: number, machineBusyPct: number
}

let receiver: Receiver
const CORES = nproc()

async function cpuSnap (): Promise<CpuSnap> {
  const m = machineCpuMs()
  const u = process.cpuUsage()
  return {
    at: nowMs(),
    bench: (u.user + u.system) / 1000,
    receiver: receiver.mode === 'child' ? await receiver.cpuMs() : 0,
    server: serverPids().reduce((sum, pid) => sum + processCpuMs(pid), 0),
    pg: postgresCpuMs(),
    busy: m.busy,
    irq: m.irq,
    total: m.total
  }
}

function cpuShare (a: CpuSnap, b: CpuSnap): CpuShare {
  const wall = b.at - a.at
  const pct = (x: number, y: number): number => round(100 * (y - x) / wall, 0)
  const bench = pct(a.bench, b.bench)
  const recv = receiver.mode === 'child' ? pct(a.receiver, b.receiver) : 0
  const server = pct(a.server, b.server)
  const postgres = pct(a.pg, b.pg)
  // interrupts (softirq: the loopback TCP stack) are charged to no process
  const irq = pct(a.irq, b.irq)
  // all cores: 100 = the whole machine busy
  const machineBusyPct = round(100 * (b.busy - a.busy) / (b.total - a.total), 0)
  return {
    bench,
    receiver: receiver.mode === 'child' ? recv : NaN,
    server,
    postgres,
    irq,
    // what none of ours used: other processes on the machine (another test run, an install...)
    other: Math.max(0, round(machineBusyPct * CORES - bench - recv - server - postgres - irq, 0)),
    machineBusyPct
  }
}

/** CPU used by processes not ours over a quiet second before the phases, % of one core. */
async function backgroundLoad (): Promise<number> {
  const a = await cpuSnap()
  await sleep(1000)
  return cpuShare(a, await cpuSnap()).other
}

/** Until the receiver has seen n distinct ids on tag; fails when nothing new arrives for STALL_MS. */
async function untilReceived (tag: string): Promise<TagStats> {
  let last = -1
  let lastChange = Date.now()
  for (;;) {
    const s = await receiver.stats(tag)
    if (s.doneAt !== null) return s
    if (s.distinct !== last) {
      last = s.distinct
      lastChange = Date.now()
    } else if (Date.now() - lastChange > STALL_MS) {
      throw new Error(`phase ${tag}: the receiver got ${s.distinct}/${s.expected} ids and nothing new for ${STALL_MS} ms`)
    }
    if (!serverAlive() && !tag.startsWith('raw')) throw new Error(`phase ${tag}: the server died`)
    await sleep(50)
  }
}

/** Until hookpost.messages shows every message of the queue sent; returns when (nowMs), and the checks. */
async function untilDbSent (
  db: pg.Pool, queueIds: number | number[], n: number
): Promise<{ at: number, attempts: number, failed: number }> {
  const ids = Array.isArray(queueIds) ? queueIds : [queueIds]
  const until = Date.now() + 30_000
  for (;;) {
    const { rows } = await db.query<{ sent: number, failed: number }>(
      `SELECT count(*) FILTER (WHERE sent_at IS NOT NULL)::int AS sent, count(*) FILTER (WHERE failed)::int AS failed
       FROM hookpost.messages WHERE queue_id = ANY($1::bigint[])`, [ids])
    const at = nowMs()
    if (rows[0]!.sent === n) {
      const a = await db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM hookpost.attempts a JOIN hookpost.messages m ON m.id = a.message_id WHERE m.queue_id = ANY($1::bigint[])', [ids])
      return { at, attempts: a.rows[0]!.n, failed: rows[0]!.failed }
    }
    if (Date.now() > until) throw new Error(`queues ${ids.join(',')}: the database shows ${rows[0]!.sent}/${n} sent 30 s after the receiver had them all`)
    await sleep(10)
  }
}

/** the longest silence at the receiver during a phase, and when it began */
function gap (s: TagStats): Record<string, number> {
  return { maxGapMs: round(s.maxGapMs, 1), maxGapAtMs: round(s.maxGapAfterMs, 0) }
}

function checkReceived (s: TagStats): string[] {
  const notes: string[] = []
  if (s.requests !== s.distinct) notes.push(`${s.requests - s.distinct} duplicate deliveries`)
  if (s.badBodies > 0) notes.push(`${s.badBodies} bodies of the wrong size`)
  if (s.retried > 0) notes.push(`${s.retried} deliveries with attempt > 1`)
  return notes
}

// ---------------------------------------------------------------------------------------------
// phases

export interface Throughput {
  phase: string
  n: number
  seconds: number
  deliveredPerSec: number
  /** from the start until the database recorded every message as sent */
  dbSeconds: number
  cpu: CpuShare
  notes: string[]
  extra: Record<string, number>
}

interface Ctx {
  db: pg.Pool
  databaseUrl: string
  origin: string
  receiverOrigin: string
  queues: Record<string, number>
  /** the pre and scale phases' queues (BENCH_QUEUES of them), by tag */
  queueSets: Record<string, number[]>
}

async function makeDue (
  db: pg.Pool, updateSql: string, values: unknown[], notify: boolean
): Promise<{ snap: CpuSnap, t0: number }> {
  const c = await db.connect()
  try {
    await c.query('BEGIN')
    await c.query(updateSql, values)
    if (notify) await c.query(notifyStatement(CHANNELS.messages))
    const snap = await cpuSnap()
    const t0 = nowMs()
    await c.query('COMMIT')
    return { snap, t0 }
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    c.release()
  }
}

async function phaseRaw (ctx: Ctx, roundNo: number): Promise<Throughput & { loop: RawLoopStats }> {
  // the same durability for delivery state as hookpost's worker pool (lib/engine.ts)
  const db = new pg.Pool({ connectionString: ctx.databaseUrl, max: RAW_PIPELINE + 2, application_name: 'hookpost-bench-raw', options: '-c synchronous_commit=off' })
  db.on('error', () => {})
  const http = new Pool(ctx.receiverOrigin, { connections: RAW_C, pipelining: 1, keepAliveTimeout: 60_000 })
  const opts = { db, http, batch: RAW_BATCH, concurrency: RAW_C, pipeline: RAW_PIPELINE }
  try {
    if (WARMUP > 0 && roundNo === 1) {
      await ctx.db.query(rawTableSql('raw_warmup'))
      await ctx.db.query('INSERT INTO raw_warmup (body, run_at) SELECT $1, now() FROM generate_series(1, $2)', [BODY_TEXT, WARMUP])
      await receiver.expect('raw-warmup', { n: WARMUP, bodyBytes: BODY_BYTES })
      await runRawLoop({ ...opts, table: 'raw_warmup', path: '/r/raw-warmup' })
      await untilReceived('raw-warmup')
    }
    const table = `raw_messages_${roundNo}`
    const tag = `raw-${roundNo}`
    await ctx.db.query(rawTableSql(table))
    await ctx.db.query(`INSERT INTO ${table} (body, run_at) SELECT $1, $2::timestamptz FROM generate_series(1, $3)`, [BODY_TEXT, FAR_FUTURE, N])
    await ctx.db.query(`VACUUM ANALYZE ${table}`)
    await ctx.db.query('CHECKPOINT')
    await receiver.expect(tag, { n: N, bodyBytes: BODY_BYTES })
    const { snap, t0 } = await makeDue(ctx.db, `UPDATE ${table} SET run_at = now() WHERE sent_at IS NULL`, [], false)
    const loop = await runRawLoop({ ...opts, table, path: `/r/${tag}` })
    const dbAt = nowMs()
    const s = await untilReceived(tag)
    const end = await cpuSnap()
    const { rows } = await ctx.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE sent_at IS NOT NULL`)
    if (rows[0]!.n !== N) throw new Error(`${tag}: ${rows[0]!.n}/${N} rows marked sent`)
    const seconds = (s.doneAt! - t0) / 1000
    return {
      phase: 'raw',
      n: N,
      seconds,
      deliveredPerSec: N / seconds,
      dbSeconds: (dbAt - t0) / 1000,
      cpu: cpuShare(snap, end),
      notes: checkReceived(s),
      loop,
      extra: {
        firstArrivalMs: round(s.firstAt! - t0, 1),
        ...gap(s),
        claims: loop.claims,
        meanClaimRows: round(loop.claimedRows / loop.claims, 1),
        claimMsMean: round(loop.claimMsMean, 2),
        completeMsMean: round(loop.completeMsMean, 2)
      }
    }
  } finally {
    await http.close()
    await db.end()
  }
}

async function warmHookpost (ctx: Ctx): Promise<void> {
  if (WARMUP === 0) return
  // through the API at the REST concurrency: warms both the enqueue and the delivery path
  await receiver.expect('warmup', { n: WARMUP, bodyBytes: BODY_BYTES })
  await postMessages(ctx, ctx.queues.warmup!, WARMUP)
  await untilReceived('warmup')
  await untilDbSent(ctx.db, ctx.queues.warmup!, WARMUP)
}

async function postMessages (ctx: Ctx, queueId: number, n: number): Promise<void> {
  const pool = new Pool(ctx.origin, { connections: REST_C, pipelining: 1 })
  const payload = JSON.stringify({ queueId, body: BODY })
  const h = apiHeaders()
  try {
    await drive(REST_C, n, async () => {
      const res = await pool.request({ path: '/messages', method: 'POST', headers: h, body: payload })
      const text = await res.body.text()
      if (res.statusCode !== 200) throw new Error(`POST /messages answered ${res.statusCode}: ${text.slice(0, 300)}`)
    })
  } finally {
    await pool.close()
  }
}

/**
 * n messages on the queues of tag, round robin, due in the far future (the insert trigger copies "when"
 * to run_at); returns the size of each body
 */
async function insertDirect (ctx: Ctx, tag: string, n: number): Promise<number> {
  await ctx.db.query(`INSERT INTO hookpost.messages (queue_id, body, body_json, "when")
    SELECT ($1::bigint[])[1 + g % cardinality($1::bigint[])], $2, true, $3::timestamptz FROM generate_series(1, $4) g`,
  [ctx.queueSets[tag]!, BODY_TEXT, FAR_FUTURE, n])
  return BODY_BYTES
}

/** the event type the queues of a fan phase's tag are subscribed to (bench.<tag>.*) */
const fanType = (tag: string): string => `bench.${tag}.created`

/** n messages on the queues of tag as n / (its queues) events, each fanned out to all of them, far in the future */
async function insertEvents (ctx: Ctx, tag: string, n: number): Promise<number> {
  await ctx.db.query('SELECT hookpost.publish($1, $2::jsonb, \'{}\', $3::timestamptz) FROM generate_series(1, $4)',
    [fanType(tag), BODY_TEXT, FAR_FUTURE, Math.ceil(n / ctx.queueSets[tag]!.length)])
  // published as jsonb (SQL's type for it), the payload is sent as PostgreSQL writes jsonb out
  return (await ctx.db.query<{ n: number }>('SELECT octet_length($1::jsonb::text) AS n', [BODY_TEXT])).rows[0]!.n
}

/**
 * n messages pre-inserted on the queues of tag, round robin, then made due at once. Statistics are
 * taken while they are all far in the future, as in production after a backlog builds up: the
 * claim then runs on statistics made stale by the mass update, which is the case to be fast in.
 */
async function phasePre (ctx: Ctx, tag: string, n: number, insert = insertDirect): Promise<Throughput> {
  const qs = ctx.queueSets[tag]!
  const bodyBytes = await insert(ctx, tag, n)
  await ctx.db.query('VACUUM ANALYZE hookpost.messages')
  await ctx.db.query('CHECKPOINT')
  await receiver.expect(tag, { n, bodyBytes })
  const { snap, t0 } = await makeDue(ctx.db,
    'UPDATE hookpost.messages SET run_at = now() WHERE queue_id = ANY($1::bigint[]) AND sent_at IS NULL AND NOT failed', [qs], true)
  const s = await untilReceived(tag)
  const end = await cpuSnap()
  const dbDone = await untilDbSent(ctx.db, qs, n)
  const seconds = (s.doneAt! - t0) / 1000
  const notes = checkReceived(s)
  if (dbDone.attempts !== n) notes.push(`${dbDone.attempts} attempt rows for ${n} messages`)
  const cpu = cpuShare(snap, end)
  return {
    phase: 'pre',
    n,
    seconds,
    deliveredPerSec: n / seconds,
    dbSeconds: (dbDone.at - t0) / 1000,
    cpu,
    notes,
    extra: {
      queues: qs.length,
      firstArrivalMs: round(s.firstAt! - t0, 1),
      ...gap(s),
      ...cpuPerMessage(cpu, seconds, n),
      // since the server started: the largest phase so far sets it
      serverPeakRssMb: serverPids().reduce((sum, pid) => sum + peakRssMb(pid), 0)
    }
  }
}

async function phaseRest (ctx: Ctx): Promise<Throughput> {
  const q = ctx.queues.rest!
  await ctx.db.query('CHECKPOINT')
  await receiver.expect('rest', { n: N, bodyBytes: BODY_BYTES })
  const snap = await cpuSnap()
  const t0 = nowMs()
  await postMessages(ctx, q, N)
  const postedAt = nowMs()
  const s = await untilReceived('rest')
  const end = await cpuSnap()
  const dbDone = await untilDbSent(ctx.db, q, N)
  const seconds = (s.doneAt! - t0) / 1000
  const notes = checkReceived(s)
  if (dbDone.attempts !== N) notes.push(`${dbDone.attempts} attempt rows for ${N} messages`)
  const postSeconds = (postedAt - t0) / 1000
  return {
    phase: 'rest',
    n: N,
    seconds,
    deliveredPerSec: N / seconds,
    dbSeconds: (dbDone.at - t0) / 1000,
    cpu: cpuShare(snap, end),
    notes,
    extra: {
      ...gap(s),
      postsPerSec: round(N / postSeconds, 1),
      postSeconds: round(postSeconds, 3),
      deliveredAfterLastPostMs: round(s.doneAt! - postedAt, 1)
    }
  }
}

export interface Latency {
  n: number
  rate: number
  achievedRate: number
  /** commit (the INSERT's reply) to receipt */
  p50Ms: number
  p99Ms: number
  maxMs: number
  minMs: number
  /** INSERT sent to receipt: includes the commit itself */
  fromSendP50Ms: number
  fromSendP99Ms: number
  insertP50Ms: number
  insertP99Ms: number
  scheduleLagMaxMs: number
  cpu: CpuShare
  notes: string[]
}

async function phaseLatency (ctx: Ctx): Promise<Latency> {
  const q = ctx.queues.lat!
  // a separate pool, default durability (synchronous_commit as the server has it): an application's INSERT
  const db = new pg.Pool({ connectionString: ctx.databaseUrl, max: 4, application_name: 'hookpost-bench-lat' })
  db.on('error', () => {})
  try {
    const warm = await Promise.all(Array.from({ length: 4 }, async () => await db.connect()))
    for (const c of warm) c.release()
    await receiver.expect('lat', { n: LAT_N, bodyBytes: BODY_BYTES, keepTimes: true })
    const insert = { name: 'bench_lat_insert', text: 'INSERT INTO hookpost.messages (queue_id, body, body_json) VALUES ($1, $2, true) RETURNING id' }
    const sentAt = new Map<number, number>()
    const committedAt = new Map<number, number>()
    const inserts: Array<Promise<void>> = []
    const intervalMs = 1000 / LAT_RATE
    let lagMax = 0
    const snap = await cpuSnap()
    const start = nowMs() + 5
    for (let i = 0; i < LAT_N; i++) {
      const due = start + i * intervalMs
      const wait = due - nowMs()
      // no spinning for the last sub-millisecond: a blocked event loop would read INSERT replies late
      if (wait > 0) await sleep(wait)
      lagMax = Math.max(lagMax, nowMs() - due)
      inserts.push((async () => {
        const t = nowMs()
        const { rows } = await db.query<{ id: string }>({ ...insert, values: [q, BODY_TEXT] })
        const id = Number(rows[0]!.id)
        committedAt.set(id, nowMs())
        sentAt.set(id, t)
      })())
    }
    await Promise.all(inserts)
    const lastInsert = Math.max(...committedAt.values())
    const s = await untilReceived('lat')
    const end = await cpuSnap()
    const arrivals = await receiver.times('lat')
    const fromCommit: number[] = []
    const fromSend: number[] = []
    const insertMs: number[] = []
    for (const [id, at] of arrivals) {
      fromCommit.push(at - committedAt.get(id)!)
      fromSend.push(at - sentAt.get(id)!)
      insertMs.push(committedAt.get(id)! - sentAt.get(id)!)
    }
    const asc = (a: number, b: number): number => a - b
    fromCommit.sort(asc); fromSend.sort(asc); insertMs.sort(asc)
    const notes = checkReceived(s)
    const early = fromCommit.filter(x => x < 0).length
    if (early > 0) notes.push(`${early} arrived before the INSERT's reply was read (negative commit-to-receipt)`)
    return {
      n: LAT_N,
      rate: LAT_RATE,
      achievedRate: LAT_N / ((lastInsert - start) / 1000),
      p50Ms: percentile(fromCommit, 0.5),
      p99Ms: percentile(fromCommit, 0.99),
      maxMs: fromCommit[fromCommit.length - 1]!,
      minMs: fromCommit[0]!,
      fromSendP50Ms: percentile(fromSend, 0.5),
      fromSendP99Ms: percentile(fromSend, 0.99),
      insertP50Ms: percentile(insertMs, 0.5),
      insertP99Ms: percentile(insertMs, 0.99),
      scheduleLagMaxMs: lagMax,
      cpu: cpuShare(snap, end),
      notes
    }
  } finally {
    await db.end()
  }
}

/** retention as the leader runs it (lib/services/retention.ts: its statement, batches and pacing), until stopped */
function retentionLoop (db: pg.Pool): { stop: () => Promise<{ deleted: number, seconds: number }> } {
  let deleted = 0
  const t0 = nowMs()
  const retention = new Retention(db, { deliveredHours: 168, deadHours: 0, onDeleted: (_k, n) => { deleted += n } },
    pino({ level: 'silent' }))
  retention.start()
  return {
    stop: async () => {
      await retention.stop()
      return { deleted, seconds: (nowMs() - t0) / 1000 }
    }
  }
}

interface RetentionRound {
  without: Throughput
  with: Throughput
  ratio: number
  deleted: number
  deletedPerSec: number
}
interface RetentionRun { rounds: RetentionRound[], median: RetentionRound }

/** BENCH_ROUNDS pairs, without then with retention, back to back; the headline is the median pair's ratio */
async function phaseRetention (ctx: Ctx): Promise<RetentionRun> {
  const [q] = ctx.queueSets['ret-history']!
  await ctx.db.query(`INSERT INTO hookpost.messages (queue_id, body, body_json, "when", sent_at, attempts)
    SELECT $1, $2, true, now() - interval '8 days', now() - interval '8 days', 1 FROM generate_series(1, $3)`,
  [q, BODY_TEXT, RETENTION_N])
  await ctx.db.query(`INSERT INTO hookpost.attempts (message_id, attempt, started_at, duration_ms, status_code)
    SELECT id, 1, sent_at, 2, 200 FROM hookpost.messages WHERE queue_id = $1`, [q])
  const rounds: RetentionRound[] = []
  for (let i = 1; i <= ROUNDS; i++) {
    const without = await phasePre(ctx, `ret-without-${i}`, N)
    const loop = retentionLoop(ctx.db)
    const withRetention = await phasePre(ctx, `ret-with-${i}`, N)
    const { deleted, seconds } = await loop.stop()
    const ratio = withRetention.deliveredPerSec / without.deliveredPerSec
    rounds.push({ without, with: withRetention, ratio, deleted, deletedPerSec: deleted / seconds })
  }
  const median = [...rounds].sort((a, b) => a.ratio - b.ratio)[Math.floor(rounds.length / 2)]!
  return { rounds, median }
}

interface FanRound { direct: Throughput, events: Throughput, ratio: number }
interface FanCost {
  /** PostgreSQL execution time per resulting message, ms: hookpost.enqueue, and hookpost.publish to FAN_Q queues */
  enqueueMsPerMessage: number
  publishMsPerMessage: number
  /** one publish's execution time with FAN_ALL_QUEUES queues of which FAN_Q match, ms */
  publishManyQueuesP50Ms: number
  publishManyQueuesP99Ms: number
}
interface FanRun { rounds: FanRound[], median: FanRound, cost: FanCost }

/** The median Execution Time of EXPLAIN ANALYZE of a statement run FAN_SAMPLES times, ms (and its p99). */
async function executionMs (db: pg.Pool, sql: string, values: unknown[]): Promise<{ p50: number, p99: number }> {
  const times: number[] = []
  for (let i = 0; i < FAN_SAMPLES; i++) {
    const { rows } = await db.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`, values)
    times.push((rows[0]!['QUERY PLAN'] as Array<{ 'Execution Time': number }>)[0]!['Execution Time'])
  }
  times.sort((a, b) => a - b)
  return { p50: percentile(times, 0.5), p99: percentile(times, 0.99) }
}

/**
 * BENCH_ROUNDS rounds of FAN_N direct messages then the same number as events (alternating), each
 * pre-inserted and made due at once; then what publishing costs PostgreSQL. The cost samples are due in
 * the far future: nothing is delivered while they are taken, and they stay behind.
 */
async function phaseFan (ctx: Ctx): Promise<FanRun> {
  const rounds: FanRound[] = []
  for (let i = 1; i <= ROUNDS; i++) {
    const direct = await phasePre(ctx, `fan-direct-${i}`, FAN_N)
    const events = await phasePre(ctx, `fan-events-${i}`, FAN_N, insertEvents)
    rounds.push({ direct, events, ratio: events.deliveredPerSec / direct.deliveredPerSec })
  }
  const median = [...rounds].sort((a, b) => a.ratio - b.ratio)[Math.floor(rounds.length / 2)]!
  const qs = ctx.queueSets['fan-cost']!
  const enqueue = await executionMs(ctx.db, 'SELECT hookpost.enqueue($1::bigint, $2::jsonb, \'{}\', $3::timestamptz)',
    [qs[0], BODY_TEXT, FAR_FUTURE])
  const publish = await executionMs(ctx.db, 'SELECT hookpost.publish($1, $2::jsonb, \'{}\', $3::timestamptz)',
    [fanType('fan-cost'), BODY_TEXT, FAR_FUTURE])
  // the other queues are subscribed to other types, some with a filter: none of them matches
  const others = FAN_ALL_QUEUES - (await ctx.db.query<{ n: number }>('SELECT count(*)::int AS n FROM hookpost.queues')).rows[0]!.n
  await ctx.db.query(`INSERT INTO hookpost.queues (name, callback_url, event_types, filter)
    SELECT 'bench-other-' || g, 'http://127.0.0.1:9/other', ARRAY['other.' || g || '.*', 'bench.x' || g], 
      CASE WHEN g % 2 = 0 THEN jsonb_build_object('tenant', g) END
    FROM generate_series(1, $1) g`, [Math.max(0, others)])
  await ctx.db.query('ANALYZE hookpost.queues')
  const many = await executionMs(ctx.db, 'SELECT hookpost.publish($1, $2::jsonb, \'{}\', $3::timestamptz)',
    [fanType('fan-cost'), BODY_TEXT, FAR_FUTURE])
  return {
    rounds,
    median,
    cost: {
      enqueueMsPerMessage: enqueue.p50,
      publishMsPerMessage: publish.p50 / qs.length,
      publishManyQueuesP50Ms: many.p50,
      publishManyQueuesP99Ms: many.p99
    }
  }
}

// ---------------------------------------------------------------------------------------------

async function createQueue (control: Pool, name: string, callbackUrl: string, more: object = {}): Promise<number> {
  const res = await control.request({ path: '/queues', method: 'POST', headers: apiHeaders(), body: JSON.stringify({ name, callbackUrl, ...more }) })
  const text = await res.body.text()
  if (res.statusCode !== 200) throw new Error(`POST /queues answered ${res.statusCode}: ${text}`)
  return (JSON.parse(text) as { id: number }).id
}

/** BENCH_DASHBOARD streams of the live overview, each read to the end of the run; frames counted. */
async function openDashboards (origin: string): Promise<void> {
  if (DASHBOARDS === 0) return
  const abort = new AbortController()
  let frames = 0
  for (let i = 0; i < DASHBOARDS; i++) {
    const res = await fetch(`${origin}/dashboard/api/overview/stream`, { headers: apiHeaders(), signal: abort.signal })
    if (res.status !== 200) throw new Error(`the overview stream answered ${res.status}`)
    const reader = res.body!.getReader()
    const read = async (): Promise<void> => {
      for (;;) {
        const { done, value } = await reader.read()
        if (done) return
        frames += Buffer.from(value).toString().split('event: overview').length - 1
      }
    }
    read().catch(() => {})
  }
  onCleanup(async () => {
    abort.abort()
    process.stderr.write(`bench: ${DASHBOARDS} dashboard stream(s) read ${frames} overview frames\n`)
  })
}

async function main (): Promise<void> {
  // lib/ may change while we run (others work in this tree): record what the server was started from
  const revision = gitRevision()
  const { name: dbName, url: databaseUrl } = await createBenchDatabase()
  const pgInfo = (await adminQuery(`SELECT current_setting('server_version') AS version,
    current_setting('synchronous_commit') AS sync, current_setting('fsync') AS fsync`)).rows[0] as { version: string, sync: string, fsync: string }

  receiver = await startReceiver(RECEIVER_MODE)
  onCleanup(async () => await receiver.close())
  const receiverOrigin = `http://127.0.0.1:${receiver.port}`

  const db = new pg.Pool({ connectionString: databaseUrl, max: 4, application_name: 'hookpost-bench' })
  db.on('error', () => {})
  onCleanup(async () => await db.end())

  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  const scaleOut = SERVERS > 1 ? { HOOKPOST_ALL_PROCESSES_DELIVER: 'true' } : {}
  startServer(databaseUrl, port, SERVER_NODE_ARGS, scaleOut)
  for (let i = 1; i < SERVERS; i++) startServer(databaseUrl, await freePort(), SERVER_NODE_ARGS, scaleOut)
  const control = new Pool(origin, { connections: 1 })
  const queues: Record<string, number> = {}
  const queueSets: Record<string, number[]> = {}
  try {
    await waitForHealth(control, 60_000)
    for (const tag of ['warmup', 'rest', 'lat']) queues[tag] = await createQueue(control, `bench-${tag}`, `${receiverOrigin}/r/${tag}`)
    const sets = [...Array.from({ length: ROUNDS }, (_, i) => `pre-${i + 1}`), ...BACKLOGS.map((_, i) => `scale-${i + 1}`),
      ...(PHASES.has('ret')
        ? ['ret-history', ...Array.from({ length: ROUNDS }, (_, i) => [`ret-without-${i + 1}`, `ret-with-${i + 1}`]).flat()]
        : [])]
    for (const tag of sets) {
      queueSets[tag] = []
      for (let k = 0; k < QUEUES; k++) queueSets[tag].push(await createQueue(control, `bench-${tag}-${k}`, `${receiverOrigin}/r/${tag}`))
    }
    const fanSets = PHASES.has('fan')
      ? ['fan-cost', ...Array.from({ length: ROUNDS }, (_, i) => [`fan-direct-${i + 1}`, `fan-events-${i + 1}`]).flat()]
      : []
    for (const tag of fanSets) {
      queueSets[tag] = []
      for (let k = 0; k < FAN_Q; k++) {
        queueSets[tag].push(await createQueue(control, `bench-${tag}-${k}`, `${receiverOrigin}/r/${tag}`,
          { eventTypes: [`bench.${tag}.*`] }))
      }
    }
  } finally {
    await control.close()
  }
  const ctx: Ctx = { db, databaseUrl, origin, receiverOrigin, queues, queueSets }
  await openDashboards(origin)
  const background = await backgroundLoad()
  const settings = serverSettings()
  process.stderr.write(`bench: db ${dbName}, server ${origin} (pid ${serverPid()}), receiver ${receiverOrigin} (${receiver.mode}, pid ${receiver.pid}); N=${N}, warm-up ${WARMUP}\n`)

  const step = async <T>(label: string, p: () => Promise<T>): Promise<T> => {
    process.stderr.write(`bench: ${label}...\n`)
    const t = nowMs()
    const r = await p()
    process.stderr.write(`bench: ${label} done in ${fmt((nowMs() - t) / 1000, 1)} s\n`)
    return r
  }
  const rounds: Array<{ raw?: Throughput, pre?: Throughput }> = []
  let warm = false
  for (let r = 1; r <= ROUNDS && (PHASES.has('raw') || PHASES.has('pre')); r++) {
    const raw = PHASES.has('raw') ? await step(`raw loop, round ${r}`, async () => await phaseRaw(ctx, r)) : undefined
    if (!warm && (PHASES.has('pre') || PHASES.has('rest'))) {
      await step('hookpost warm-up', async () => await warmHookpost(ctx))
      warm = true
    }
    const pre = PHASES.has('pre') ? await step(`hookpost, pre-inserted, round ${r}`, async () => await phasePre(ctx, `pre-${r}`, N)) : undefined
    rounds.push({ raw, pre })
  }
  if (!warm && PHASES.has('rest')) await step('hookpost warm-up', async () => await warmHookpost(ctx))
  // the headline round: the median of the per-round ratios (or of raw alone, or of pre alone)
  const roundRatio = (x: { raw?: Throughput, pre?: Throughput }): number => x.pre !== undefined && x.raw !== undefined
    ? x.pre.deliveredPerSec / x.raw.deliveredPerSec
    : (x.raw ?? x.pre)?.deliveredPerSec ?? NaN
  const byRatio = [...rounds].sort((a, b) => roundRatio(a) - roundRatio(b))
  const median = byRatio[Math.floor((byRatio.length - 1) / 2)]
  const raw = median?.raw
  const pre = median?.pre
  const rest = PHASES.has('rest') ? await step('hookpost, POST /messages', async () => await phaseRest(ctx)) : undefined
  const lat = PHASES.has('lat') ? await step(`latency at ${LAT_RATE} msg/s`, async () => await phaseLatency(ctx)) : undefined
  let ret: RetentionRun | undefined
  if (PHASES.has('ret')) {
    if (!warm) await step('hookpost warm-up', async () => await warmHookpost(ctx))
    warm = true
    ret = await step(`retention under load: ${fmt(RETENTION_N)} old, ${fmt(N)} delivered without and with it`,
      async () => await phaseRetention(ctx))
  }
  const fan = PHASES.has('fan')
    ? await step(`events: ${fmt(FAN_N)} direct messages against ${fmt(FAN_N / FAN_Q)} events to ${FAN_Q} queues`,
      async () => {
        if (!warm) await warmHookpost(ctx)
        warm = true
        return await phaseFan(ctx)
      })
    : undefined
  const scale: Throughput[] = []
  if (PHASES.has('scale')) {
    if (!warm) await step('hookpost warm-up', async () => await warmHookpost(ctx))
    for (const [i, n] of BACKLOGS.entries()) {
      // the previous phase's rows are delivered history now, as they would be in production
      scale.push(await step(`hookpost, backlog of ${fmt(n)} on ${QUEUES} queue(s)`, async () => await phasePre(ctx, `scale-${i + 1}`, n)))
    }
  }
  if (!serverAlive()) throw new Error('the server died during the run')

  // ---- report
  const nCpu = CORES
  const ratioPre = pre !== undefined && raw !== undefined ? pre.deliveredPerSec / raw.deliveredPerSec : NaN
  // against the median raw round: REST has one phase, not one per round
  const rawRates = rounds.flatMap(x => x.raw !== undefined ? [x.raw.deliveredPerSec] : []).sort((a, b) => a - b)
  const rawMedian = rawRates.length > 0 ? rawRates[Math.floor((rawRates.length - 1) / 2)]! : NaN
  const ratioRest = rest !== undefined ? rest.deliveredPerSec / rawMedian : NaN
  const verdict = (ok: boolean | undefined): string => ok === undefined ? 'n/a' : ok ? 'PASS' : 'MISS'
  const targets = {
    preOverRaw: verdict(Number.isNaN(ratioPre) ? undefined : ratioPre >= 0.6),
    restOverRaw: verdict(Number.isNaN(ratioRest) ? undefined : ratioRest >= 0.6),
    latencyP50: verdict(lat === undefined ? undefined : lat.p50Ms < 10),
    latencyP99: verdict(lat === undefined ? undefined : lat.p99Ms < 50)
  }

  const out: string[] = ['', 'hookpost delivery benchmark (bench/delivery.ts)']
  out.push(`hookpost ${revision}; nproc ${nCpu}, node ${process.version}, PostgreSQL ${pgInfo.version} (synchronous_commit=${pgInfo.sync}, fsync=${pgInfo.fsync})`)
  out.push(`body ${BODY_BYTES} bytes of JSON; receiver ${receiver.mode === 'child' ? 'in its own process' : 'in the bench process'}; warm-up ${WARMUP} per path`)
  out.push(`server: ${Object.entries(settings).map(([k, v]) => `${k}=${v}`).join(', ')}${SERVER_NODE_ARGS.length > 0 ? `; node ${SERVER_NODE_ARGS.join(' ')}` : ''}`)
  out.push(`raw loop: claims of ${RAW_BATCH}, ${RAW_C} calls in flight, ${RAW_PIPELINE} claims outstanding, synchronous_commit=off (as hookpost's worker)`)
  out.push('')
  const label: Record<string, string> = { raw: 'raw loop (pg + undici)', pre: 'hookpost, pre-inserted', rest: `hookpost, POST /messages c=${REST_C}` }
  const line = (r: Throughput, name: string, base: number): string[] => [
    name, fmt(r.n), fmt(r.seconds, 2), fmt(r.deliveredPerSec), Number.isNaN(base) ? '-' : `${fmt(100 * r.deliveredPerSec / base, 1)}%`,
    fmt(r.dbSeconds, 2), String(r.cpu.bench), String(r.cpu.receiver), String(r.cpu.server), String(r.cpu.postgres), String(r.cpu.irq), String(r.cpu.other), `${r.cpu.machineBusyPct}%`
  ]
  const rows: string[][] = []
  rounds.forEach((x, i) => {
    const base = x.raw?.deliveredPerSec ?? NaN
    const mark = ROUNDS > 1 ? ` #${i + 1}${x === median ? ' (median)' : ''}` : ''
    for (const r of [x.raw, x.pre]) if (r !== undefined) rows.push(line(r, label[r.phase]! + mark, base))
  })
  if (rest !== undefined) rows.push(line(rest, label.rest!, rawMedian))
  out.push(...table(['phase', 'n', 'seconds', 'delivered/s', 'of raw', 'db done s', 'cpu bench', 'cpu recv', 'cpu server', 'cpu pg', 'cpu irq', 'cpu other', 'machine busy'], rows))
  out.push('(cpu columns: % of one core over the phase; irq = interrupts, mostly loopback TCP; other = processes not ours; machine busy: % of all cores)')
  if (background > 10) out.push(`WARNING: processes not ours used ${background}% of a core before the phases began: figures are noisy`)
  const phases = [...rounds.flatMap((x, i) => [x.raw, x.pre].map(r => ({ r, name: `${r?.phase ?? ''}${ROUNDS > 1 ? ` #${i + 1}` : ''}` }))), { r: rest, name: 'rest' }]
  for (const { r, name } of phases) {
    if (r === undefined) continue
    if (Object.keys(r.extra).length > 0) out.push(`${name}: ${Object.entries(r.extra).map(([k, v]) => `${k} ${v}`).join(', ')}`)
    for (const note of r.notes) out.push(`${name}: WARNING ${note}`)
  }
  if (ret !== undefined) {
    out.push('')
    out.push(`retention under load: ${fmt(N)} delivered while ${fmt(RETENTION_N)} week-old messages wait for deletion`)
    for (const [i, r] of ret.rounds.entries()) {
      out.push(`  round ${i + 1}${r === ret.median ? ' (median)' : ''}: without retention running ` +
        `${fmt(r.without.deliveredPerSec)}/s; with it ${fmt(r.with.deliveredPerSec)}/s (${fmt(100 * r.ratio, 1)}%), ` +
        `retention deleting ${fmt(r.deletedPerSec)} rows/s (${fmt(r.deleted)} in all)`)
      for (const x of [r.without, r.with]) for (const note of x.notes) out.push(`ret: WARNING ${note}`)
    }
  }
  if (fan !== undefined) {
    out.push('')
    out.push(`events: ${fmt(FAN_N)} direct messages on ${FAN_Q} queues, against ${fmt(FAN_N / FAN_Q)} events each fanned out to ${FAN_Q} queues (both pre-inserted)`)
    for (const [i, r] of fan.rounds.entries()) {
      out.push(`  round ${i + 1}${r === fan.median ? ' (median)' : ''}: direct ${fmt(r.direct.deliveredPerSec)}/s, ` +
        `events ${fmt(r.events.deliveredPerSec)}/s (${fmt(100 * r.ratio, 1)}%)`)
      for (const x of [r.direct, r.events]) for (const note of x.notes) out.push(`fan: WARNING ${note}`)
    }
    const c = fan.cost
    out.push(`  PostgreSQL execution time per resulting message (median of ${FAN_SAMPLES}): hookpost.enqueue ${fmt(c.enqueueMsPerMessage, 3)} ms, ` +
      `hookpost.publish to ${FAN_Q} queues ${fmt(c.publishMsPerMessage, 3)} ms (${fmt(100 * c.publishMsPerMessage / c.enqueueMsPerMessage, 1)}%)`)
    out.push(`  one publish with ${FAN_ALL_QUEUES} queues of which ${FAN_Q} match: p50 ${fmt(c.publishManyQueuesP50Ms, 3)} ms, p99 ${fmt(c.publishManyQueuesP99Ms, 3)} ms (target < 2 ms)`)
  }
  if (scale.length > 0) {
    out.push('')
    out.push(`throughput by backlog, hookpost pre-inserted on ${QUEUES} queue(s), against the first backlog:`)
    out.push(...table(['backlog', 'seconds', 'delivered/s', 'of first', 'cpu us/msg all', 'server', 'postgres', 'receiver', 'irq', 'server peak RSS MB'],
      scale.map(r => [fmt(r.n), fmt(r.seconds, 2), fmt(r.deliveredPerSec), `${fmt(100 * r.deliveredPerSec / scale[0]!.deliveredPerSec, 1)}%`,
        ...['cpuUsPerMsgAll', 'cpuUsPerMsgServer', 'cpuUsPerMsgPostgres', 'cpuUsPerMsgReceiver', 'cpuUsPerMsgIrq', 'serverPeakRssMb']
          .map(k => String(r.extra[k]))])))
    for (const r of scale) for (const note of r.notes) out.push(`scale ${fmt(r.n)}: WARNING ${note}`)
  }
  if (lat !== undefined) {
    out.push('')
    out.push(`latency, commit of a plain SQL INSERT (its reply read) to receipt, at ${lat.rate} msg/s (achieved ${fmt(lat.achievedRate, 1)}), ${fmt(lat.n)} messages:`)
    out.push(...table(['measure', 'p50 ms', 'p99 ms', 'max ms'], [
      ['commit -> receipt', fmt(lat.p50Ms, 2), fmt(lat.p99Ms, 2), fmt(lat.maxMs, 2)],
      ['INSERT sent -> receipt', fmt(lat.fromSendP50Ms, 2), fmt(lat.fromSendP99Ms, 2), '-'],
      ['the INSERT itself', fmt(lat.insertP50Ms, 2), fmt(lat.insertP99Ms, 2), '-']
    ]))
    out.push(`min commit -> receipt ${fmt(lat.minMs, 2)} ms; pacing lag max ${fmt(lat.scheduleLagMaxMs, 2)} ms; cpu server ${lat.cpu.server}%, pg ${lat.cpu.postgres}%, other ${lat.cpu.other}%`)
    for (const note of lat.notes) out.push(`lat: WARNING ${note}`)
  }
  out.push('')
  const allRatios = rounds.filter(x => x.raw !== undefined && x.pre !== undefined).map(roundRatio)
  out.push(`hookpost pre-inserted / raw: ${fmt(100 * ratioPre, 1)}%  (target >= 60%)  ${targets.preOverRaw}${allRatios.length > 1 ? `   median of ${allRatios.map(x => `${fmt(100 * x, 1)}%`).join(', ')}` : ''}`)
  out.push(`hookpost REST / raw:         ${fmt(100 * ratioRest, 1)}%  (target >= 60%)  ${targets.restOverRaw}   (against the median raw round, ${fmt(rawMedian)}/s)`)
  out.push(`latency p50 ${fmt(lat?.p50Ms ?? NaN, 2)} ms (target < 10 ms)  ${targets.latencyP50}`)
  out.push(`latency p99 ${fmt(lat?.p99Ms ?? NaN, 2)} ms (target < 50 ms)  ${targets.latencyP99}`)
  out.push('')
  process.stdout.write(out.join('\n') + '\n')

  const fig = (r: Throughput | undefined): Record<string, unknown> | null => r === undefined
    ? null
    : {
        n: r.n,
        seconds: round(r.seconds, 3),
        deliveredPerSec: round(r.deliveredPerSec, 1),
        dbDoneSeconds: round(r.dbSeconds, 3),
        cpuPctOfOneCore: r.cpu,
        ...r.extra,
        warnings: r.notes
      }
  const json = {
    bench: 'delivery',
    revision,
    nproc: nCpu,
    node: process.version,
    postgres: { version: pgInfo.version, synchronousCommit: pgInfo.sync, fsync: pgInfo.fsync },
    bodyBytes: BODY_BYTES,
    receiver: receiver.mode,
    warmup: WARMUP,
    backgroundOtherCpuPct: background,
    server: { ...settings, nodeArgs: SERVER_NODE_ARGS },
    rawLoop: { batch: RAW_BATCH, concurrency: RAW_C, pipeline: RAW_PIPELINE },
    rounds: rounds.map(x => ({ raw: fig(x.raw), hookpostPreInserted: fig(x.pre), ratio: round(roundRatio(x), 4) })),
    results: {
      // the median round
      raw: fig(raw),
      hookpostPreInserted: fig(pre),
      hookpostRest: rest === undefined ? null : { ...fig(rest), concurrency: REST_C },
      latency: lat === undefined
        ? null
        : {
            source: 'plain SQL INSERT, one per message, autocommit; t0 = its reply',
            n: lat.n,
            rate: lat.rate,
            achievedRate: round(lat.achievedRate, 1),
            p50Ms: round(lat.p50Ms, 3),
            p99Ms: round(lat.p99Ms, 3),
            maxMs: round(lat.maxMs, 3),
            minMs: round(lat.minMs, 3),
            fromInsertSentP50Ms: round(lat.fromSendP50Ms, 3),
            fromInsertSentP99Ms: round(lat.fromSendP99Ms, 3),
            insertP50Ms: round(lat.insertP50Ms, 3),
            insertP99Ms: round(lat.insertP99Ms, 3),
            cpuPctOfOneCore: lat.cpu,
            warnings: lat.notes
          }
    },
    retention: ret === undefined
      ? null
      : {
          ratio: round(ret.median.ratio, 4),
          rounds: ret.rounds.map(r => ({
            without: fig(r.without),
            with: fig(r.with),
            ratio: round(r.ratio, 4),
            deleted: r.deleted,
            deletedPerSec: round(r.deletedPerSec, 1)
          }))
        },
    fan: fan === undefined
      ? null
      : {
          ratio: round(fan.median.ratio, 4),
          rounds: fan.rounds.map(r => ({ direct: fig(r.direct), events: fig(r.events), ratio: round(r.ratio, 4) })),
          cost: fan.cost
        },
    scale: scale.map(r => ({ ...fig(r), ofFirst: round(r.deliveredPerSec / scale[0]!.deliveredPerSec, 4) })),
    ratios: {
      preOverRaw: round(ratioPre, 4),
      preOverRawRounds: allRatios.map(x => round(x, 4)),
      restOverRaw: round(ratioRest, 4),
      rawMedianPerSec: round(rawMedian, 1)
    },
    targets
  }
  process.stdout.write(JSON.stringify(json, null, 2) + '\n')
}

runMain(main, TIMEOUT_MS)
