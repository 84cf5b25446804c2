// lib/delivery/executor.ts on a fake clock: a Send that throws is recorded as a network failure,
// timed by the executor's clock.
import t from 'tap'
import { Executor } from '../lib/delivery/executor.js'
import type { Result } from '../lib/delivery/sender.js'
import { FakeClock } from './fake-clock.js'
import { row } from './engine-fakes.js'

t.test('a throwing send is a network failure, started and timed by the executor\'s clock (review finding)', async (t) => {
  const clock = new FakeClock(2_000_000)
  const done = new Promise<Result>((resolve) => {
    const ex = new Executor({
      concurrency: 1,
      clock,
      send: async () => { clock.advance(250); throw new Error('boom') },
      onDone: (_row, _attempt, result) => resolve(result)
    })
    ex.run(row(1))
  })
  const result = await done
  t.match(result, { ok: false, errorKind: 'network', error: 'boom' })
  t.equal(result.startedAt.getTime(), 2_000_000, 'started at the clock\'s time')
  t.equal(result.durationMs, 250, 'as long as the clock moved')
})
