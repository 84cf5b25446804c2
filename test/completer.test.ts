// lib/delivery/completer.ts on a fake clock and a fake complete(): when outcomes are written, in what
// batches, with what retry time, and what a failed write does.
import t from 'tap'
import pino from 'pino'
import { Completer } from '../lib/delivery/completer.js'
import type { Completion } from '../lib/delivery/sql.js'
import { FakeClock } from './fake-clock.js'
import { FakeClaims, fail, ok, queue, row, settle } from './engine-fakes.js'

function setup (random = () => 0.5) {
  const clock = new FakeClock(1_000_000)
  const db = new FakeClaims()
  const flushed: Completion[][] = []
  const log = pino({ level: 'silent' })
  const completer = new Completer({ complete: db.complete, clock, log, random, onFlushed: (b) => flushed.push(b) })
  return { clock, db, flushed, completer }
}

t.test('a few outcomes are written together 50 ms after the first', async (t) => {
  const { clock, db, completer } = setup()
  completer.record(row(1), 1, ok())
  clock.advance(30)
  completer.record(row(1), 1, ok())
  await settle()
  t.equal(db.completed.length, 0, 'not yet')
  clock.advance(20)
  await settle()
  t.same(db.completed.map(b => b.length), [2], 'one statement for both')
})

t.test('200 waiting are written at once, in one statement', async (t) => {
  const { db, completer } = setup()
  for (let i = 0; i < 200; i++) completer.record(row(1), 1, ok())
  await settle()
  t.same(db.completed.map(b => b.length), [200])
  t.equal(completer.waiting, 0)
})

t.test('a failure gets its retry time from the backoff; exhausted retries get none', async (t) => {
  const { clock, completer } = setup(() => 0.5)
  const q = queue({ maxRetries: 2, backoffBaseMs: 1000, backoffJitter: 'equal' })
  const first = completer.record(row(1, { retries: 0, queue: q }), 1, fail(500))
  t.equal(first.retryAt!.getTime() - clock.now(), 750, 'equal jitter of 1000 ms with random 0.5')
  const second = completer.record(row(1, { retries: 1, queue: q }), 2, fail(500))
  t.equal(second.retryAt!.getTime() - clock.now(), 1500)
  t.equal(completer.record(row(1, { retries: 2, queue: q }), 3, fail(500)).retryAt, null, 'dead')
  t.equal(completer.record(row(1), 1, ok()).retryAt, null, 'a success has none')
})

t.test('a failed write keeps its batch and tries again after a backoff', async (t) => {
  const { clock, db, completer } = setup()
  db.failComplete = 1
  completer.record(row(1), 1, ok())
  clock.advance(50)
  await settle()
  t.equal(db.completed.length, 0)
  t.equal(completer.waiting, 1, 'kept')
  clock.advance(100)
  await settle()
  t.same(db.completed.map(b => b.length), [1], 'written on the second try')
})

t.test('stop() writes what waits, and gives up after a few failures', async (t) => {
  const { clock, db, completer } = setup()
  completer.record(row(1), 1, ok())
  await completer.stop()
  t.same(db.completed.map(b => b.length), [1])
  completer.restart()
  db.failComplete = 100
  completer.record(row(1), 1, ok())
  const stopping = completer.stop()
  for (let i = 0; i < 10; i++) { await settle(); clock.advance(5000) }
  await stopping
  t.equal(completer.waiting, 1, 'left to the lease')
})

t.test('a Retry-After date is read against the completer\'s clock, not the wall clock (review finding)', async (t) => {
  const { clock, completer } = setup()
  // the fake clock is at 1970 + 1000 s: against Date.now() this date would be long past, a zero delay
  const at = new Date(clock.now() + 5000).toUTCString()
  const c = completer.record(row(1), 1, { ...fail(503), retryAfter: at })
  t.equal(c.retryAt?.getTime(), clock.now() + 5000, 'retried when the receiver asked, by this clock')
})

t.test('an outcome that frees a slot or an ordering key is written at once, with what comes meanwhile', async (t) => {
  const { db, completer } = setup()
  completer.record(row(1, { slot: 2 }), 1, ok())
  // the first is being written: these wait for it, then go together, with no timer
  completer.record(row(1, { ordered: true }), 1, ok())
  completer.record(row(1), 1, ok())
  // attack round: an urgent flush that found nothing to write scheduled itself again, forever, and the
  // event loop never reached this point
  await new Promise(resolve => setImmediate(resolve))
  await settle()
  t.same(db.completed.map(b => b.length), [1, 2], 'no 50 ms wait')
  t.same(db.completed[0]!.map(c => [c.slotted, c.ordered]), [[true, false]])
  t.equal(completer.waiting, 0)
})
