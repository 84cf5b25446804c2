// Memory check, not a speed benchmark: the real server (a child process, built as `npm start` runs it)
// delivers BENCH_MEMORY_N bodies of BENCH_MEMORY_BODY_BYTES to an endpoint that holds every answer
// BENCH_MEMORY_HOLD_MS, and the server's resident memory must stay under BENCH_MEMORY_MAX_MB. The
// worker claims far faster than such an endpoint answers, so the bodies it holds, waiting or being
// sent, are bounded only by its byte cap (hooks.bufferBytes). Exits 1 when the limit is passed or the
// run fails. Takes about 40 s (most of it the insert and the 2 GB through loopback twice).
//
//   npx tsx bench/memory.ts
//
// RSS is the kernel's figure for the server's pid: VmHWM (its peak, no sampling gap) from
// /proc/PID/status, and VmRSS sampled every RSS_SAMPLE_MS for the curve. The bodies are inserted with
// plain SQL (repeat('x', n): PostgreSQL compresses them to almost nothing, the server still reads
// and sends every byte).
//
// Environment:
//   DATABASE_URL              as for bench/delivery.ts (loopback only; unset: embedded PostgreSQL)
//   BENCH_MEMORY_N            messages (default 2000)
//   BENCH_MEMORY_BODY_BYTES   body size (default 1048576, the API's bodyLimit)
//   BENCH_MEMORY_HOLD_MS      how long the endpoint holds each answer (default 200)
//   BENCH_MEMORY_MAX_MB       the limit on the server's peak RSS, in MB of 10^6 bytes (default 400)
//   BENCH_STALL_MS            fail when the endpoint sees nothing new for this long (default 30000)
//   BENCH_TIMEOUT_MS          global deadline; past it the server is killed, the db dropped, exit 1 (default 300000)
//   BENCH_SERVER_ROOT         run the server from this copy of the repository (A/B a change to lib/)
//   BENCH_SERVER_NODE_ARGS    extra node flags for the server, e.g. "--trace-gc" or "--max-semi-space-size=4"
//   HOOKPOST_*                passed through to the server (HOOKPOST_DELIVERY_BUFFER_BYTES, ...)
//   PLT_ADMIN_SECRET          passed through to the server; sent as X-PLATFORMATIC-ADMIN-SECRET when set
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { Pool } from 'undici'
import { DEFAULTS } from '../lib/config.js'
import {
  createBenchDatabase, envInt, fmt, freePort, gitRevision, onCleanup, round, runMain, serverAlive, serverPid,
  startServer, table, waitForHealth
} from './harness.js'

const N = envInt('BENCH_MEMORY_N', 2000, 1, 1_000_000)
const BODY_BYTES = envInt('BENCH_MEMORY_BODY_BYTES', 1024 * 1024, 1, 256 * 1024 * 1024)
const HOLD_MS = envInt('BENCH_MEMORY_HOLD_MS', 200, 0, 60_000)
const MAX_MB = envInt('BENCH_MEMORY_MAX_MB', 400, 1, 1_000_000)
const STALL_MS = envInt('BENCH_STALL_MS', 30_000, 1000, 3_600_000)
const TIMEOUT_MS = envInt('BENCH_TIMEOUT_MS', 5 * 60_000, 1000, 24 * 3600_000)
const RSS_SAMPLE_MS = 50
const MB = 1e6
const SERVER_NODE_ARGS = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(/\s+/).filter(s => s !== '')
const ADMIN_SECRET = process.env.PLT_ADMIN_SECRET !== undefined && process.env.PLT_ADMIN_SECRET !== '' ? process.env.PLT_ADMIN_SECRET : undefined

/** VmRSS and VmHWM of a process, bytes; null when it is gone */
function memory (pid: number): { rss: number, hwm: number } | null {
  let text: string
  try { text = readFileSync(`/proc/${pid}/status`, 'utf8') } catch { return null }
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') }
}

/** The slow endpoint: reads each body to the end (counting, not keeping it), answers HOLD_MS later. */
async function startEndpoint (): Promise<{
  url: string, seen: Set<string>, badBodies: () => number, lastAt: () => number, close: () => Promise<void>
}> {
  const seen = new Set<string>()
  let bad = 0
  let last = Date.now()
  const server = createServer((req, res) => {
    let bytes = 0
    req.on('data', (c: Buffer) => { bytes += c.length })
    req.on('end', () => {
      seen.add(String(req.headers['x-hookpost-message-id']))
      if (bytes !== BODY_BYTES) bad++
      last = Date.now()
      setTimeout(() => res.end('ok'), HOLD_MS)
    })
  })
  server.keepAliveTimeout = 60_000
  server.listen(0, '127.0.0.1')
  await new Promise<void>((resolve) => server.once('listening', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/hook`,
    seen,
    badBodies: () => bad,
    lastAt: () => last,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

async function main (): Promise<void> {
  const revision = gitRevision()
  const { url: databaseUrl } = await createBenchDatabase()
  const endpoint = await startEndpoint()
  onCleanup(endpoint.close)
  const db = new pg.Pool({ connectionString: databaseUrl, max: 2, application_name: 'hookpost-bench-memory' })
  db.on('error', () => {})
  onCleanup(async () => await db.end())

  const port = await freePort()
  startServer(databaseUrl, port, SERVER_NODE_ARGS)
  const control = new Pool(`http://127.0.0.1:${port}`, { connections: 1 })
  let queueId: number
  try {
    await waitForHealth(control, 60_000)
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    if (ADMIN_SECRET !== undefined) headers['x-platformatic-admin-secret'] = ADMIN_SECRET
    const res = await control.request({ path: '/queues', method: 'POST', headers, body: JSON.stringify({ name: 'memory', callbackUrl: endpoint.url }) })
    const text = await res.body.text()
    if (res.statusCode !== 200) throw new Error(`POST /queues answered ${res.statusCode}: ${text}`)
    queueId = (JSON.parse(text) as { id: number }).id
  } finally {
    await control.close()
  }
  const pid = serverPid()!
  const idle = memory(pid)!
  process.stderr.write(`bench: server pid ${pid}, idle RSS ${fmt(idle.rss / MB, 1)} MB; inserting ${N} bodies of ${BODY_BYTES} bytes...\n`)

  const samples: Array<{ atMs: number, rss: number }> = []
  let t0 = Date.now()
  const sampler = setInterval(() => {
    const m = memory(pid)
    if (m !== null) samples.push({ atMs: Date.now() - t0, rss: m.rss })
  }, RSS_SAMPLE_MS)
  onCleanup(async () => clearInterval(sampler))

  // one statement: the worker sees them all at its commit (one NOTIFY)
  await db.query("INSERT INTO hookpost.messages (queue_id, body) SELECT $1, repeat('x', $2) FROM generate_series(1, $3)", [queueId, BODY_BYTES, N])
  t0 = Date.now()
  samples.length = 0
  process.stderr.write(`bench: inserted; delivering to an endpoint that answers after ${HOLD_MS} ms...\n`)
  for (;;) {
    if (endpoint.seen.size >= N) break
    if (!serverAlive()) throw new Error('the server died')
    if (Date.now() - endpoint.lastAt() > STALL_MS) throw new Error(`the endpoint got ${endpoint.seen.size}/${N} and nothing new for ${STALL_MS} ms`)
    await sleep(100)
  }
  const deliveredMs = Date.now() - t0
  for (;;) {
    const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM hookpost.messages WHERE queue_id = $1 AND sent_at IS NOT NULL', [queueId])
    if (rows[0]!.n === N) break
    if (Date.now() - t0 - deliveredMs > 30_000) throw new Error(`${rows[0]!.n}/${N} recorded as sent 30 s after the last arrival`)
    await sleep(100)
  }
  clearInterval(sampler)
  const end = memory(pid)!
  const peakSampled = Math.max(...samples.map(s => s.rss))
  // the curve, in tenths of the run
  const curve = Array.from({ length: 10 }, (_, i) => {
    const from = deliveredMs * i / 10
    const to = deliveredMs * (i + 1) / 10
    const inRange = samples.filter(s => s.atMs >= from && s.atMs < to)
    return inRange.length > 0 ? Math.max(...inRange.map(s => s.rss)) : NaN
  })

  const bufferBytes = process.env.HOOKPOST_DELIVERY_BUFFER_BYTES ?? String(DEFAULTS.bufferBytes)
  const ok = end.hwm < MAX_MB * MB && endpoint.badBodies() === 0
  const out: string[] = ['', 'hookpost memory check (bench/memory.ts)']
  out.push(`hookpost ${revision}; node ${process.version}; ${fmt(N)} bodies of ${fmt(BODY_BYTES)} bytes, endpoint holds each answer ${HOLD_MS} ms; HOOKPOST_DELIVERY_BUFFER_BYTES=${bufferBytes}`)
  out.push('')
  out.push(...table(['measure', 'value'], [
    ['server RSS idle, MB', fmt(idle.rss / MB, 1)],
    ['server RSS peak (VmHWM), MB', fmt(end.hwm / MB, 1)],
    ['server RSS peak sampled every 50 ms, MB', fmt(peakSampled / MB, 1)],
    ['server RSS at the end, MB', fmt(end.rss / MB, 1)],
    ['delivered in, s', fmt(deliveredMs / 1000, 2)],
    ['delivered/s', fmt(N / (deliveredMs / 1000), 0)],
    ['bodies of the wrong size', String(endpoint.badBodies())]
  ]))
  out.push(`RSS by tenth of the run, MB: ${curve.map(x => fmt(x / MB, 0)).join(' ')}`)
  out.push(`peak RSS ${fmt(end.hwm / MB, 1)} MB (limit ${MAX_MB} MB)  ${ok ? 'PASS' : 'FAIL'}`)
  out.push('')
  out.push(JSON.stringify({
    bench: 'memory',
    revision,
    node: process.version,
    n: N,
    bodyBytes: BODY_BYTES,
    holdMs: HOLD_MS,
    bufferBytes: Number(bufferBytes),
    maxMb: MAX_MB,
    rssIdleMb: round(idle.rss / MB, 1),
    rssPeakMb: round(end.hwm / MB, 1),
    rssPeakSampledMb: round(peakSampled / MB, 1),
    rssEndMb: round(end.rss / MB, 1),
    deliveredSeconds: round(deliveredMs / 1000, 2),
    badBodies: endpoint.badBodies(),
    pass: ok
  }))
  process.stdout.write(out.join('\n') + '\n')
  if (!ok) throw new Error(`peak RSS ${fmt(end.hwm / MB, 1)} MB; limit ${MAX_MB} MB${endpoint.badBodies() > 0 ? `; ${endpoint.badBodies()} bodies of the wrong size` : ''}`)
}

runMain(main, TIMEOUT_MS)
