// lib/delivery/loop.ts on a fake clock: passes, sleeps, notify, error backoff and stop, with no sleeps.
import t from 'tap'
import pino from 'pino'
import { Loop } from '../lib/delivery/loop.js'
import { FakeClock } from './fake-clock.js'
import { signal } from './signals.js'

const log = pino({ level: 'silent' })

class Scripted extends Loop {
  passes = 0
  constructor (clock: FakeClock, private readonly script: Array<number | Error | (() => Promise<number>)>) {
    super(log, 'scripted', clock)
  }

  protected async pass (): Promise<number> {
    const step = this.script[Math.min(this.passes++, this.script.length - 1)]!
    if (step instanceof Error) throw step
    return typeof step === 'function' ? await step() : step
  }
}

t.test('sleeps what the pass asks, runs again when the clock gets there', async (t) => {
  const clock = new FakeClock()
  const loop = new Scripted(clock, [0, 500, 1000])
  t.teardown(async () => await loop.stop())
  const idle = signal<[number]>(loop, 'idle')
  loop.start()
  t.same(await idle, [500], 'a 0 runs the next pass at once; then it sleeps 500')
  t.equal(loop.passes, 2)
  const next = signal<[number]>(loop, 'idle')
  clock.advance(499)
  t.equal(loop.passes, 2, 'not before its time')
  clock.advance(1)
  t.same(await next, [1000])
  t.equal(loop.passes, 3)
})

t.test('notify() ends the sleep; a notify during a pass runs another pass right after it', async (t) => {
  const clock = new FakeClock()
  let release: (() => void) | undefined
  const slow = async (): Promise<number> => { await new Promise<void>(resolve => { release = resolve }); return 60_000 }
  const loop = new Scripted(clock, [60_000, slow, 60_000])
  t.teardown(async () => await loop.stop())
  let idle = signal(loop, 'idle')
  loop.start()
  await idle
  loop.notify()
  await new Promise(resolve => setImmediate(resolve))
  t.equal(loop.passes, 2, 'woken without the clock moving')
  idle = signal(loop, 'idle')
  loop.notify() // mid-pass
  release!()
  await idle
  t.equal(loop.passes, 3, 'the notify during pass 2 was not lost')
})

t.test('errors back off 200, 400, 800 ms ... capped at 5 s, and reset after a good pass', async (t) => {
  const clock = new FakeClock()
  const boom = new Error('boom')
  const loop = new Scripted(clock, [boom, boom, boom, boom, boom, boom, boom, 1000, boom])
  t.teardown(async () => await loop.stop())
  const sleeps: number[] = []
  loop.on('idle', (ms) => sleeps.push(ms))
  loop.start()
  for (let i = 0; i < 9; i++) {
    await signal(loop, 'idle')
    clock.advance(sleeps.at(-1)!)
  }
  t.same(sleeps.slice(0, 9), [200, 400, 800, 1600, 3200, 5000, 5000, 1000, 200])
})

t.test('stop() waits for the pass in flight and ends the loop', async (t) => {
  const clock = new FakeClock()
  let release: (() => void) | undefined
  let finished = false
  const slow = async (): Promise<number> => {
    await new Promise<void>(resolve => { release = resolve })
    finished = true
    return 0
  }
  const loop = new Scripted(clock, [slow])
  loop.start()
  await new Promise(resolve => setImmediate(resolve))
  let stopped = false
  const stopping = loop.stop().then(() => { stopped = true })
  await new Promise(resolve => setImmediate(resolve))
  t.notOk(stopped, 'still waiting for the pass')
  release!()
  await stopping
  t.ok(finished && !loop.active, 'stopped after the pass ended')
  t.equal(loop.passes, 1, 'no pass after stop, although the last asked for one at once')
  t.equal(clock.pending, 0, 'no timer left behind')
})
