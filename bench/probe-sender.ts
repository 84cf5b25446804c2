// Diagnostic, not a benchmark: the CPU this process spends per HTTP call, with no database at all,
// for hookpost's sender (lib/delivery/sender.ts: the shared Agent, the SSRF interceptor, our
// dispatch handler, the delivery headers) against the raw loop's undici Pool.request + body.dump(),
// both at 64 calls in flight against the bench receiver in its own process. It tells how much of
// the worker's CPU per message is the HTTP call itself.
//
//   npx tsx bench/probe-sender.ts
//
// Environment: BENCH_N (calls per variant and round, default 20000), BENCH_ROUNDS (3), BENCH_TIMEOUT_MS (120000).
import { performance } from 'node:perf_hooks'
import { Pool } from 'undici'
import { createDispatcher, send } from '../lib/delivery/sender.js'
import { DEVELOPMENT_POLICY } from '../lib/domain/ssrf.js'
import { drive, envInt, fmt, makeBody, onCleanup, runMain, table } from './harness.js'
import { startReceiver } from './receiver.js'

const N = envInt('BENCH_N', 20_000, 1, 10_000_000)
const ROUNDS = envInt('BENCH_ROUNDS', 3, 1, 20)
const TIMEOUT_MS = envInt('BENCH_TIMEOUT_MS', 120_000, 1000, 3_600_000)
const C = 64

async function main (): Promise<void> {
  const receiver = await startReceiver('child')
  onCleanup(async () => await receiver.close())
  const origin = `http://127.0.0.1:${receiver.port}`
  const body = JSON.stringify(makeBody())
  const http = new Pool(origin, { connections: C, pipelining: 1, keepAliveTimeout: 60_000 })
  const dispatcher = createDispatcher(DEVELOPMENT_POLICY)
  onCleanup(async () => { await http.close(); await dispatcher.close() })

  const variants: Record<string, (tag: string, i: number) => Promise<void>> = {
    'undici Pool.request (raw loop)': async (tag, i) => {
      const res = await http.request({ path: `/r/${tag}`, method: 'POST', headers: { 'content-type': 'application/json', 'x-hookpost-message-id': String(i) }, body })
      await res.body.dump()
    },
    'hookpost send()': async (tag, i) => {
      const r = await send(dispatcher, {
        messageId: i,
        queueId: 1,
        attempt: 1,
        url: `${origin}/r/${tag}`,
        method: 'POST',
        queueHeaders: {},
        headers: {},
        body,
        timeoutMs: 30_000,
        idempotencyKey: null,
        eventId: null,
        eventType: null,
        signingSecrets: null
      })
      if (!r.ok) throw new Error(`send failed: ${r.error ?? ''}`)
    }
  }
  const results = new Map<string, Array<{ us: number, perSec: number }>>()
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [name, call] of Object.entries(variants)) {
      const tag = `${name.split(' ')[0]!}-${round}`
      await receiver.expect(tag, { n: N, bodyBytes: Buffer.byteLength(body) })
      await drive(C, 1000, async (i) => await call(`${tag}-warm`, i)) // connections open, code warm
      const cpu0 = process.cpuUsage()
      const t0 = performance.now()
      await drive(C, N, async (i) => await call(tag, i))
      const wall = performance.now() - t0
      const cpu = process.cpuUsage(cpu0)
      const list = results.get(name) ?? []
      list.push({ us: (cpu.user + cpu.system) / N, perSec: N / (wall / 1000) })
      results.set(name, list)
    }
  }
  const rows = [...results].map(([name, list]) => {
    const us = list.map(r => r.us).sort((a, b) => a - b)
    return [name, fmt(us[Math.floor((us.length - 1) / 2)]!, 1), us.map(u => fmt(u, 1)).join(' / '), fmt(list.map(r => r.perSec).sort((a, b) => a - b)[Math.floor((list.length - 1) / 2)]!)]
  })
  process.stdout.write(['', `CPU of this process per call, ${fmt(N)} calls x ${ROUNDS} rounds, ${C} in flight, ${Buffer.byteLength(body)}-byte body`, '',
    ...table(['sender', 'median us/call', 'rounds', 'calls/s'], rows), ''].join('\n'))
}

runMain(main, TIMEOUT_MS)
