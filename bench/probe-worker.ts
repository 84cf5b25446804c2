// Diagnostic, not a benchmark: runs lib/delivery/worker.ts in this process on BENCH_N pre-inserted
// messages, with every statement the worker sends timed and counted, and in-flight / buffered calls
// sampled, to see where a delivery pass spends its time. Its figures explain bench/delivery.ts.
//
//   npx tsx bench/probe-worker.ts
//
// Environment: DATABASE_URL, BENCH_N (20000), BENCH_QUEUES (1: messages spread over this many queues),
// PROBE_CONCURRENCY (64), PROBE_QUEUE_CONCURRENCY (the server's default: c - c/8), PROBE_BATCH (200),
// BENCH_TIMEOUT_MS (120000), PROBE_TRACE (print the first n statements), PROBE_HEAP_PROFILE (write a
// .heapprofile of every allocation, collected or not, in the delivery window), PROBE_PROFILE (write a
// .cpuprofile of the delivery window only to this path), PROBE_LIB_DIR (load worker.ts, database.ts, executor.ts and
// sender.ts from <dir>/delivery instead of lib/delivery: to try a change without touching lib/).
import { DEVELOPMENT_POLICY } from '../lib/domain/ssrf.js'
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import pino from 'pino'
import { DEFAULTS, defaultQueueConcurrency } from '../lib/config.js'
import { migrate } from '../lib/db/migrate.js'
import { pathToFileURL } from 'node:url'
import { createBenchDatabase, envInt, fmt, machineCpuMs, onCleanup, percentile, postgresCpuMs, round, table, runMain } from './harness.js'
import { nowMs, startReceiver } from './receiver.js'

const N = envInt('BENCH_N', 20_000, 1, 10_000_000)
const QUEUES = envInt('BENCH_QUEUES', 1, 1, 1000)
const C = envInt('PROBE_CONCURRENCY', 64, 1, 10_000)
const QC = envInt('PROBE_QUEUE_CONCURRENCY', defaultQueueConcurrency(C), 1, 10_000)
const BATCH = envInt('PROBE_BATCH', 200, 1, 5000)
const TIMEOUT_MS = envInt('BENCH_TIMEOUT_MS', 120_000, 1000, 3_600_000)

const LIB_DIR = process.env.PROBE_LIB_DIR !== undefined && process.env.PROBE_LIB_DIR !== ''
  ? pathToFileURL(process.env.PROBE_LIB_DIR.replace(/\/?$/, '/')).href
  : new URL('../lib/', import.meta.url).href
const { Worker } = await import(new URL('delivery/worker.ts', LIB_DIR).href) as typeof import('../lib/delivery/worker.js')
const { createDispatcher } = await import(new URL('delivery/sender.ts', LIB_DIR).href) as typeof import('../lib/delivery/sender.js')
const { sendClaimed } = await import(new URL('delivery/executor.ts', LIB_DIR).href) as typeof import('../lib/delivery/executor.js')
const { pgClaims } = await import(new URL('delivery/database.ts', LIB_DIR).href) as typeof import('../lib/delivery/database.js')

interface Stat { count: number, ms: number[], rows: number[] }

async function main (): Promise<void> {
  const { url } = await createBenchDatabase()
  const recv = await startReceiver('child')
  onCleanup(async () => await recv.close())

  const admin = new pg.Pool({ connectionString: url, max: 2 })
  onCleanup(async () => await admin.end())
  await migrate(admin)
  const queueIds: number[] = []
  for (let q = 0; q < QUEUES; q++) {
    const { rows } = await admin.query<{ id: string }>('INSERT INTO hookpost.queues (name, callback_url) VALUES ($1, $2) RETURNING id',
      [`probe-${q}`, `http://127.0.0.1:${recv.port}/r/probe`])
    queueIds.push(Number(rows[0]!.id))
  }
  const body = JSON.stringify({ pad: 'x'.repeat(1000) })
  await admin.query(`INSERT INTO hookpost.messages (queue_id, body, body_json)
    SELECT ($1::bigint[])[1 + i % $3], $2, true FROM generate_series(0, $4 - 1) AS i`, [queueIds, body, QUEUES, N])
  await admin.query('VACUUM ANALYZE hookpost.messages')
  await admin.query('CHECKPOINT')
  await recv.expect('probe', { n: N, bodyBytes: Buffer.byteLength(body) })

  // the worker's pool as lib/engine.ts builds it, with query() timed per statement
  const pool = new pg.Pool({
    connectionString: url,
    max: 3,
    options: '-c synchronous_commit=off',
    types: {
      getTypeParser: (oid: number, format?: any) =>
        oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)
    } as any
  })
  onCleanup(async () => await pool.end())
  const stats = new Map<string, Stat>()
  // PROBE_TRACE=n prints the first n statements with their timing: what the loop asked for and got
  const traceN = envInt('PROBE_TRACE', 0, 0, 100_000)
  const trace: string[] = []
  let tStart = 0
  const query = pool.query.bind(pool) as (q: any, v?: any) => Promise<pg.QueryResult>
  ;(pool as any).query = async (q: any, v?: any) => {
    const name: string = typeof q === 'string' ? q.trim().split(/\s+/).slice(0, 2).join(' ') : (q.name ?? q.text.trim().split(/\s+/).slice(0, 2).join(' '))
    const t0 = performance.now()
    const busy = worker.inFlightCount
    const r = await query(q, v)
    if (trace.length < traceN && tStart > 0) {
      const args = name === 'hookpost_claim' ? ` limit=${q.values[0]} skip=${(q.values[3] as unknown[]).length}` : name === 'hookpost_complete' ? ` batch=${(q.values[0] as unknown[]).length}` : ''
      trace.push(`${fmt(t0 - tStart, 1).padStart(9)} ms ${name}${args} -> ${r.rowCount} rows in ${fmt(performance.now() - t0, 1)} ms (in flight ${busy} -> ${worker.inFlightCount})`)
    }
    const s = stats.get(name) ?? { count: 0, ms: [], rows: [] }
    s.count++
    s.ms.push(performance.now() - t0)
    s.rows.push(r.rowCount ?? 0)
    stats.set(name, s)
    if (name === 'hookpost_claim' && tStart > 0) {
      const x = sec()
      x.claims++
      x.claimedRows += r.rowCount ?? 0
      if (r.rowCount === 0) x.emptyClaims++
    }
    return r
  }
  const dispatcher = createDispatcher(DEVELOPMENT_POLICY)
  onCleanup(async () => await dispatcher.close())
  const worker = new Worker({
    claims: pgClaims(pool, 60_000, 'probe'),
    send: sendClaimed(dispatcher),
    log: pino({ level: 'warn' }),
    concurrency: C,
    queueConcurrency: QC,
    batchSize: BATCH,
    bufferBytes: DEFAULTS.bufferBytes,
    leaseMs: 60_000,
    pollMs: 2000,
    canClaim: () => true
  })
  let flushed = 0
  let flushes = 0
  const countFlush = (b: unknown[]): void => { flushed += b.length; flushes++ }
  worker.on('flushed', countFlush)

  // per-second timeline: what the loop did, and the longest stretch with no statement running
  interface Sec {
    claims: number, emptyClaims: number, claimedRows: number, flushes: number, flushedRows: number, inFlight: number[]
  }
  const secs: Sec[] = []
  const sec = (): Sec => {
    const i = Math.floor((performance.now() - tStart) / 1000)
    while (secs.length <= i) {
      secs.push({ claims: 0, emptyClaims: 0, claimedRows: 0, flushes: 0, flushedRows: 0, inFlight: [] })
    }
    return secs[i]!
  }
  const secFlush = (b: unknown[]): void => { const x = sec(); x.flushes++; x.flushedRows += b.length }
  worker.on('flushed', secFlush)
  const inFlight: number[] = []
  const buffered: number[] = []
  const sampler = setInterval(() => {
    inFlight.push(worker.inFlightCount)
    if (tStart > 0) sec().inFlight.push(worker.inFlightCount)
    buffered.push((worker as unknown as { producer: { waiting: number } }).producer.waiting)
  }, 5)
  const delay = monitorEventLoopDelay({ resolution: 1 })
  delay.enable()
  const elu0 = performance.eventLoopUtilization()
  const cpu0 = process.cpuUsage()
  const pg0 = postgresCpuMs()
  const m0 = machineCpuMs()
  const r0 = await recv.cpuMs()
  const profilePath = process.env.PROBE_PROFILE
  const heapPath = process.env.PROBE_HEAP_PROFILE
  const wanted = (p: string | undefined): p is string => p !== undefined && p !== ''
  const session = wanted(profilePath) || wanted(heapPath) ? new Session() : undefined
  session?.connect()
  if (wanted(profilePath)) {
    await session!.post('Profiler.enable')
    await session!.post('Profiler.start')
  }
  if (wanted(heapPath)) {
    // every allocation sampled, kept or collected: what the delivery path allocates per message
    await session!.post('HeapProfiler.enable')
    await session!.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true } as any)
  }
  const t0 = nowMs()
  tStart = performance.now()
  worker.start()
  let s = await recv.stats('probe')
  while (s.doneAt === null) {
    if (nowMs() - t0 > TIMEOUT_MS - 5000) throw new Error(`only ${s.distinct}/${N} delivered`)
    await sleep(20)
    s = await recv.stats('probe')
  }
  const seconds = (s.doneAt - t0) / 1000
  if (wanted(profilePath)) writeFileSync(profilePath, JSON.stringify((await session!.post('Profiler.stop')).profile))
  if (wanted(heapPath)) writeFileSync(heapPath, JSON.stringify((await session!.post('HeapProfiler.stopSampling')).profile))
  session?.disconnect()
  const cpu = process.cpuUsage(cpu0)
  const pgPct = 100 * (postgresCpuMs() - pg0) / (seconds * 1000)
  const m1 = machineCpuMs()
  const recvPct = 100 * (await recv.cpuMs() - r0) / (seconds * 1000)
  const elu = performance.eventLoopUtilization(elu0)
  clearInterval(sampler)
  delay.disable()
  await worker.stop(5000)

  const avg = (a: number[]): number => a.length === 0 ? NaN : a.reduce((x, y) => x + y, 0) / a.length
  const out = ['', `worker probe (${LIB_DIR}delivery): ${fmt(N)} messages over ${QUEUES} queue(s), concurrency ${C}, queueConcurrency ${QC}, batch ${BATCH}`, '']
  out.push(`delivered/s ${fmt(N / seconds)} (${fmt(seconds, 2)} s); process cpu ${fmt(100 * (cpu.user + cpu.system) / 1000 / (seconds * 1000))}% of one core; event loop utilisation ${fmt(100 * elu.utilization)}%, delay p99 ${fmt(delay.percentile(99) / 1e6, 1)} ms`)
  out.push(`cpu, % of one core: postgres ${fmt(pgPct)}, receiver ${fmt(recvPct)}, machine busy ${fmt(100 * (m1.busy - m0.busy) / (m1.total - m0.total))}% of all cores`)
  out.push(`calls in flight: mean ${fmt(avg(inFlight), 1)} (of ${C}); claimed but not started: mean ${fmt(avg(buffered), 1)}; outcomes flushed ${fmt(flushed)} in ${fmt(flushes)} flushes`)
  out.push(`receiver: ${s.requests} requests, ${s.distinct} distinct`)
  out.push('')
  const rows = [...stats.entries()].map(([name, st]) => {
    const ms = [...st.ms].sort((a, b) => a - b)
    const empty = st.rows.filter(r => r === 0).length
    return [
      name, fmt(st.count), fmt(avg(st.rows), 1), fmt(empty),
      fmt(avg(st.ms), 2), fmt(percentile(ms, 0.99), 2), fmt(st.ms.reduce((a, b) => a + b, 0) / 1000, 2)
    ]
  })
  out.push(...table(['statement', 'count', 'rows mean', 'empty', 'ms mean', 'ms p99', 'total s'], rows))
  out.push('', ...table(['second', 'claims', 'empty', 'rows claimed', 'flushes', 'rows flushed', 'in flight mean'],
    secs.map((x, i) => [
      String(i), String(x.claims), String(x.emptyClaims), String(x.claimedRows),
      String(x.flushes), String(x.flushedRows), fmt(avg(x.inFlight), 1)
    ])))
  if (trace.length > 0) out.push('', ...trace)
  process.stdout.write(out.join('\n') + '\n')
  process.stdout.write(JSON.stringify({ deliveredPerSec: round(N / seconds, 1), meanInFlight: round(avg(inFlight), 1), meanBuffered: round(avg(buffered), 1), flushes, statements: Object.fromEntries([...stats].map(([k, v]) => [k, { count: v.count, rowsMean: round(avg(v.rows), 1), msMean: round(avg(v.ms), 3) }])) }) + '\n')
}

runMain(main, TIMEOUT_MS)
