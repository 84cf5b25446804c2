// The benchmark's webhook receiver: a node:http server on 127.0.0.1, port 0, answering 200 "ok".
// It counts distinct x-hookpost-message-id values per path (/r/<tag>), so a phase is over when its
// tag has seen all of its ids, and keeps arrival times for the tags that ask for them (latency).
//
// Times are process.hrtime (CLOCK_MONOTONIC on Linux), in ms: the same clock in every process on the
// machine, so arrival times taken in a child can be subtracted from commit times taken in the parent.
//
// It runs in the bench process or, by default, in a child process of its own (startReceiver('child')),
// so that the raw loop, which runs in the bench process, does not share a core with the receiver.
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'

export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6

export interface TagStats {
  tag: string
  expected: number
  /** requests received, duplicates included */
  requests: number
  distinct: number
  /** requests whose body length differed from the expected one */
  badBodies: number
  /** requests with x-hookpost-attempt other than 1 (hookpost only) */
  retried: number
  firstAt: number | null
  /** when the expected-th distinct id arrived; null until then */
  doneAt: number | null
  /** the longest wait between two arrivals: a stalled sender shows here */
  maxGapMs: number
  /** when that longest wait began, ms after the first arrival */
  maxGapAfterMs: number
}

interface TagState extends TagStats {
  seen: Set<number>
  /** id -> arrival time, for tags that keep times */
  times: Map<number, number> | null
  bodyBytes: number
  lastAt: number
}

export interface ExpectOptions { n: number, bodyBytes: number, keepTimes?: boolean }

/** The receiver itself, wherever it runs. */
class ReceiverCore {
  private readonly tags = new Map<string, TagState>()
  private unknown = 0
  readonly server: Server

  constructor () {
    this.server = createServer({ keepAliveTimeout: 120_000 }, (req, res) => this.handle(req, res))
    // idle connections between phases must survive: a reconnect inside a measured phase costs
    this.server.keepAliveTimeout = 120_000
    this.server.headersTimeout = 130_000
  }

  async listen (): Promise<number> {
    this.server.listen(0, '127.0.0.1')
    await once(this.server, 'listening')
    return (this.server.address() as AddressInfo).port
  }

  expect (tag: string, o: ExpectOptions): void {
    this.tags.set(tag, {
      tag,
      expected: o.n,
      requests: 0,
      distinct: 0,
      badBodies: 0,
      retried: 0,
      firstAt: null,
      doneAt: null,
      maxGapMs: 0,
      maxGapAfterMs: 0,
      lastAt: 0,
      seen: new Set(),
      times: o.keepTimes === true ? new Map() : null,
      bodyBytes: o.bodyBytes
    })
  }

  stats (tag: string): TagStats {
    const s = this.tags.get(tag)
    if (s === undefined) throw new Error(`receiver: unknown tag ${tag}`)
    const { seen: _seen, times: _times, bodyBytes: _b, lastAt: _l, ...out } = s
    return out
  }

  times (tag: string): Array<[number, number]> {
    return [...(this.tags.get(tag)?.times ?? new Map<number, number>()).entries()]
  }

  get unknownRequests (): number { return this.unknown }

  private handle (req: IncomingMessage, res: ServerResponse): void {
    const at = nowMs()
    let bytes = 0
    req.on('data', (chunk: Buffer) => { bytes += chunk.length })
    req.on('end', () => {
      const tag = req.url?.startsWith('/r/') === true ? req.url.slice(3) : ''
      const s = this.tags.get(tag)
      const id = Number(req.headers['x-hookpost-message-id'])
      if (s === undefined || !Number.isInteger(id)) {
        this.unknown++
      } else {
        s.requests++
        s.firstAt ??= at
        if (s.requests > 1 && at - s.lastAt > s.maxGapMs) {
          s.maxGapMs = at - s.lastAt
          s.maxGapAfterMs = s.lastAt - s.firstAt
        }
        s.lastAt = at
        if (bytes !== s.bodyBytes) s.badBodies++
        const attempt = req.headers['x-hookpost-attempt']
        if (attempt !== undefined && attempt !== '1') s.retried++
        if (!s.seen.has(id)) {
          s.seen.add(id)
          s.distinct++
          s.times?.set(id, at)
          if (s.distinct === s.expected) s.doneAt = at
        }
      }
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' })
      res.end('ok')
    })
  }
}

/** What the bench sees of the receiver, in either mode. */
export interface Receiver {
  mode: 'inproc' | 'child'
  port: number
  pid: number
  expect: (tag: string, o: ExpectOptions) => Promise<void>
  stats: (tag: string) => Promise<TagStats>
  times: (tag: string) => Promise<Array<[number, number]>>
  /** CPU time of the process the receiver runs in, ms (user + system) */
  cpuMs: () => Promise<number>
  close: () => Promise<void>
}

interface Request { rid: number, op: 'expect' | 'stats' | 'times' | 'cpu' | 'close', tag?: string, o?: ExpectOptions }

function cpuMsOfThisProcess (): number {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

export async function startReceiver (mode: 'inproc' | 'child'): Promise<Receiver> {
  if (mode === 'inproc') {
    const core = new ReceiverCore()
    const port = await core.listen()
    return {
      mode,
      port,
      pid: process.pid,
      expect: async (tag, o) => { core.expect(tag, o) },
      stats: async (tag) => core.stats(tag),
      times: async (tag) => core.times(tag),
      cpuMs: async () => cpuMsOfThisProcess(),
      close: async () => {
        core.server.closeAllConnections()
        await new Promise<void>((resolve) => core.server.close(() => resolve()))
      }
    }
  }
  const child = fork(fileURLToPath(import.meta.url), [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, HOOKPOST_BENCH_RECEIVER_CHILD: '1' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  let rid = 0
  const waiting = new Map<number, { resolve: (v: any) => void, reject: (e: Error) => void }>()
  const exited = new Error('the receiver process exited')
  child.on('message', (m: { rid: number, ok: boolean, value?: unknown, error?: string }) => {
    const w = waiting.get(m.rid)
    if (w === undefined) return
    waiting.delete(m.rid)
    if (m.ok) w.resolve(m.value)
    else w.reject(new Error(`receiver: ${m.error ?? 'failed'}`))
  })
  child.on('exit', () => { for (const w of waiting.values()) w.reject(exited); waiting.clear() })
  const call = async <T>(op: Request['op'], tag?: string, o?: ExpectOptions): Promise<T> => {
    if (child.exitCode !== null || child.signalCode !== null) throw exited
    const r = ++rid
    const p = new Promise<T>((resolve, reject) => waiting.set(r, { resolve, reject }))
    child.send({ rid: r, op, tag, o } satisfies Request)
    return await p
  }
  const [ready] = await Promise.race([
    once(child, 'message') as Promise<[{ port: number }]>,
    once(child, 'exit').then(() => { throw exited })
  ])
  return {
    mode,
    port: ready.port,
    pid: child.pid!,
    expect: async (tag, o) => { await call('expect', tag, o) },
    stats: async (tag) => await call<TagStats>('stats', tag),
    times: async (tag) => await call<Array<[number, number]>>('times', tag),
    cpuMs: async () => await call<number>('cpu'),
    close: async () => { await closeChild(child, call) }
  }
}

async function closeChild (child: ChildProcess, call: (op: Request['op']) => Promise<unknown>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const gone = once(child, 'exit')
  await Promise.race([call('close').catch(() => {}), new Promise(resolve => setTimeout(resolve, 2000))])
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
  await gone
  clearTimeout(timer)
}

// child-process entry: serve, and answer the parent over IPC
if (process.env.HOOKPOST_BENCH_RECEIVER_CHILD === '1' && process.send !== undefined) {
  const core = new ReceiverCore()
  const port = await core.listen()
  // the parent going away (killed bench) must not leave us behind
  process.on('disconnect', () => process.exit(0))
  process.on('message', (m: Request) => {
    try {
      let value: unknown
      switch (m.op) {
        case 'expect': core.expect(m.tag!, m.o!); break
        case 'stats': value = core.stats(m.tag!); break
        case 'times': value = core.times(m.tag!); break
        case 'cpu': value = cpuMsOfThisProcess(); break
        case 'close':
          core.server.closeAllConnections()
          core.server.close()
          process.send!({ rid: m.rid, ok: true }, () => process.exit(0))
          return
      }
      process.send!({ rid: m.rid, ok: true, value })
    } catch (err) {
      process.send!({ rid: m.rid, ok: false, error: (err as Error).message })
    }
  })
  process.send({ port })
}
