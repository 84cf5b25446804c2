// The claim policy and fairness of lib/delivery/producer.ts, pure: no database, no clock.
import t from 'tap'
import { BORROW_MAX_MS, Producer, SKIP_CLAIM_BACKOFF_MS, type ProducerOptions } from '../lib/delivery/producer.js'
import { type ClaimedRow, LANE_CHUNK } from '../lib/delivery/sql.js'
import { queue, row } from './engine-fakes.js'

const opts = (over: Partial<ProducerOptions> = {}): ProducerOptions =>
  ({ batchSize: 10, queueConcurrency: 2, bufferBytes: 1024 * 1024, leaseMs: 60_000, pollMs: 2000, ...over })

function take (p: Producer, req = p.plan(0), rows: ClaimedRow[] = [], at = 0): boolean {
  return p.claimed(req, rows, rows.length, at)
}

t.test('an empty buffer claims at once, a full batch', async (t) => {
  const p = new Producer(opts())
  t.equal(p.claimWait(0), 0)
  t.match(p.plan(0), {
    limit: 10, skipQueues: [], recentMs: undefined, maxBytes: 1024 * 1024, queueMaxBytes: 128 * 1024
  })
})

t.test('a batch ready beyond the free slots: no claim until calls finish', async (t) => {
  const p = new Producer(opts({ queueConcurrency: 100 }))
  take(p, p.plan(0), Array.from({ length: 10 }, () => row(1)))
  t.equal(p.claimWait(0), 2000, 'ten ready to send: wait (a finished call asks again)')
  const sent = p.next(0, [])!
  t.equal(p.claimWait(0), 0, 'nine ready: claim, so the next batch overlaps the sending')
  p.done(sent)
  t.equal(p.bufferedBytes, 9 * 1024)
})

t.test('a queue at its limit plus a batch is skipped; after a short skipping claim, the next waits', async (t) => {
  const p = new Producer(opts())
  const rows = Array.from({ length: 12 }, () => row(7))
  t.ok(take(p, p.plan(0), rows.slice(0, 10)), 'a full claim asks for more at once')
  take(p, p.plan(0), rows.slice(10))
  t.ok(p.next(0, []) !== undefined && p.next(0, []) !== undefined, 'two in flight, the queue limit')
  t.equal(p.next(0, []), undefined, 'the third waits for a slot')
  t.equal(p.claimWait(0), 0, 'nothing else is ready: claim')
  const req = p.plan(100)
  t.same(req.skipQueues, [7], 'queue 7 holds 2 + 10: skipped')
  t.equal(req.recentMs, undefined, 'the first skipping claim looks at every due row')
  t.notOk(p.claimed(req, [], 0, 100), 'short: sleep')
  t.equal(p.claimWait(150), SKIP_CLAIM_BACKOFF_MS - 50, 'the next skipping claim waits out the backoff')
  t.equal(p.claimWait(300), 0)
  const bounded = p.plan(300)
  t.equal(bounded.recentMs, 300 - 100 + 1000, 'then only rows due since the last one, plus the margin')
  p.notified(false)
  t.equal(p.claimWait(301), 0, 'a NOTIFY lifts the backoff')
  t.equal(p.plan(301).recentMs, undefined, 'and the next skipping claim looks at everything again')
})

t.test('the same rule for the pass and for the wake-up after a call: the byte budget', async (t) => {
  const p = new Producer(opts({ bufferBytes: 100_000, queueConcurrency: 100 }))
  take(p, p.plan(0), [row(1, { size: 80_000 })])
  t.equal(p.claimWait(0), 2000, 'over 3/4 of the bytes held: no claim')
  const r = p.next(0, [])!
  p.done(r)
  t.equal(p.claimWait(0), 0)
  t.equal(p.plan(0).limit, 2, 'rows of 80 KB: a claim asks for as many as fit in 100 KB, not a batch')
})

t.test('a queue near half the bytes is skipped, and one claim gives a queue at most an eighth', async (t) => {
  const p = new Producer(opts({ bufferBytes: 100_000, queueConcurrency: 100, batchSize: 100 }))
  take(p, p.plan(0), [row(1, { size: 20_000 }), row(1, { size: 20_000 })])
  t.same(p.plan(0).skipQueues, [1], '40 KB held > (1/2 - 1/8) of 100 KB')
  t.equal(p.plan(0).queueMaxBytes, 12_500)
})

t.test('round-robin: a queue that got a slot goes to the back', async (t) => {
  const p = new Producer(opts({ queueConcurrency: 10 }))
  take(p, p.plan(0), [row(1), row(1), row(1), row(2), row(3)])
  const order = [p.next(0, []), p.next(0, []), p.next(0, []), p.next(0, []), p.next(0, [])].map(r => r?.queueId)
  t.same(order, [1, 2, 3, 1, 1])
})

t.test('a row whose lease would end before its call could goes back instead of out', async (t) => {
  const p = new Producer(opts({ leaseMs: 60_000 }))
  const slow = row(1, { queue: queue({ timeoutMs: 40_000 }) })
  take(p, p.plan(0), [slow], 0)
  const expired: ClaimedRow[] = []
  // lease: max(60 s, 40 s + 30 s) = 70 s, less a 5 s margin; a call of 40 s must start by 25 s
  t.equal(p.next(25_001, expired), undefined)
  t.same(expired, [slow])
  t.equal(p.bufferedBytes, 0)
})

t.test('rows that waited half their lease are stale; drain gives back all that wait', async (t) => {
  const p = new Producer(opts({ queueConcurrency: 1 }))
  const [a, b, c] = [row(1), row(1), row(2)]
  take(p, p.plan(0), [a!, b!], 0)
  take(p, p.plan(10_000), [c!], 10_000)
  t.equal(p.next(10_000, []), a, 'a goes out')
  t.same(p.stale(30_001), [b], 'b waited more than 30 s')
  t.same(p.drain(), [c])
  t.equal(p.waiting, 0)
  p.done(a!)
  t.equal(p.bufferedBytes, 0)
})

t.test('a lone queue whose calls are quick borrows the slots kept for others; a slow one, or one beside another, does not', async (t) => {
  const p = new Producer(opts({ queueConcurrency: 2 }))
  take(p, p.plan(0), Array.from({ length: 6 }, () => row(1)))
  const a = p.next(0, [])!
  p.next(0, [])
  t.equal(p.next(0, []), undefined, 'at its limit, and no call has ended yet: nothing known of its speed')
  p.done(a, 5)
  t.ok(p.next(0, []), 'a slot of its own again')
  t.ok(p.next(0, []) !== undefined && p.next(0, []) !== undefined, 'quick calls and nobody else waiting: two more, borrowed')

  const q = new Producer(opts({ queueConcurrency: 2 }))
  take(q, q.plan(0), [...Array.from({ length: 4 }, () => row(1)), row(2), row(2), row(2)])
  const first = q.next(0, [])!
  q.done(first, 5)
  const order = Array.from({ length: 5 }, () => q.next(0, [])?.queueId)
  t.same(order, [2, 1, 2, 1, undefined], 'each queue to its limit; both have rows waiting: nobody borrows')

  const slow = new Producer(opts({ queueConcurrency: 1 }))
  take(slow, slow.plan(0), Array.from({ length: 3 }, () => row(1)))
  slow.done(slow.next(0, [])!, BORROW_MAX_MS)
  t.ok(slow.next(0, []), 'its own slot')
  t.equal(slow.next(0, []), undefined, 'calls of BORROW_MAX_MS on average: it keeps to its limit')
})

t.test('limited queues: asked when due, and a queue the limited claim no longer knows (deleted) leaves', async (t) => {
  const p = new Producer(opts())
  p.laneChecked([], 0)
  p.markLimited([7, 8])
  t.same(p.plan(0).skipQueues, [], 'the plain claim does not skip them: their rows are out of its range')
  const req = p.limitedPlan(0)!
  t.same(req.queueIds, [7, 8])
  // 7 has a rate: its next call in 40 ms; 8 was deleted meanwhile and has no state
  const seven = { queueId: 7, limited: true, active: true, nextAtMs: 0, rateNextMs: 40, slotsLeft: null, unlaned: 0 }
  p.limitedClaimed(req, [], [seven], 0)
  t.equal(p.limitedWait(0), 40, 'asked again when its rate allows')
  p.limitedFailed({ queueIds: [8], rooms: [1] }, 0, 5)
  t.equal(p.limitedWait(0), 40, 'the deleted one is gone (attack round: it stayed due at once, and the loop spun)')
  t.equal(p.limitedPlan(10), undefined)
  // a failed limited claim: asked again after the backoff, not at once
  p.limitedFailed({ queueIds: [7], rooms: [1] }, 50, 1000)
  t.equal(p.limitedWait(50), 1000)
})

t.test('a full buffer: no limited claim, and no wait of 0 that would spin the loop', async (t) => {
  const p = new Producer(opts({ batchSize: 1, queueConcurrency: 100 }))
  p.markLimited([7])
  const req = p.limitedPlan(0)!
  // ten rows fill a buffer of 10 x batchSize
  const rows = Array.from({ length: 10 }, () => row(7))
  const seven = { queueId: 7, limited: true, active: true, nextAtMs: 0, rateNextMs: 0, slotsLeft: null, unlaned: 0 }
  p.limitedClaimed(req, rows, [seven], 0)
  p.laneChecked([], 0)
  t.equal(p.limitedPlan(1), undefined)
  t.equal(p.limitedWait(1), Number.POSITIVE_INFINITY, 'attack round: it was 0, and the loop spun without yielding')
})

t.test('the limited lane: queues found there are asked at once, and one handed back leaves when its last rows are', async (t) => {
  const p = new Producer(opts())
  t.ok(p.laneCheckDue(0), 'looked at first')
  t.equal(p.limitedWait(0), 0, 'at once')
  p.markLimited([7])
  const seven = {
    queueId: 7, limited: true, active: true, nextAtMs: 500, rateNextMs: null, slotsLeft: null, unlaned: 0
  }
  p.limitedClaimed(p.limitedPlan(0)!, [], [seven], 0)
  p.laneChecked([7, 9], 0)
  t.notOk(p.laneCheckDue(1999), 'then every pollMs')
  t.ok(p.laneCheckDue(2000))
  t.same(p.limitedPlan(30)!.queueIds, [9], 'a queue found in the lane is asked at once; one known keeps its time')
  p.notified(false)
  t.notOk(p.laneCheckDue(30), 'a plain NOTIFY does not look at the lane')
  p.notified(true)
  t.ok(p.laneCheckDue(30), "a NOTIFY 'lane' does")
  t.equal(p.limitedWait(30), 0, 'at once')
  p.laneChecked([], 30)
  // 9 is no longer limited: a full chunk of its rows went back to the plain claim, then the rest
  const nine = { queueId: 9, limited: false, active: true, nextAtMs: null, rateNextMs: null, slotsLeft: null }
  p.limitedClaimed(p.limitedPlan(100)!, [], [seven, { ...nine, unlaned: LANE_CHUNK }], 100)
  t.same(p.limitedPlan(200)?.queueIds, [9], 'asked again while rows may be left')
  p.limitedClaimed({ queueIds: [9], rooms: [2] }, [], [{ ...nine, unlaned: 3 }], 200)
  t.equal(p.limitedPlan(300), undefined, 'gone with its last rows')
  t.same(p.limitedPlan(600)?.queueIds, [7])
})
