// The delivery loop (lib/delivery/worker.ts) with its ports faked and a fake clock: claims, sends,
// fairness, recording and stopping, without PostgreSQL and without sleeps.
import t from 'tap'
import pino from 'pino'
import { UNHOLD_AFTER_CLOSE_MS, Worker, type WorkerOptions } from '../lib/delivery/worker.js'
import { FakeClock } from './fake-clock.js'
import { FakeClaims, FakeSend, fail, ok, queue, row, settle } from './engine-fakes.js'
import { signal } from './signals.js'

function setup (t: { teardown: (fn: () => unknown) => void }, over: Partial<WorkerOptions> = {}) {
  const clock = new FakeClock()
  const db = new FakeClaims()
  const http = new FakeSend()
  let canClaim = true
  const worker = new Worker({
    claims: db,
    send: http.send,
    clock,
    random: () => 0.5,
    log: pino({ level: 'silent' }),
    canClaim: () => canClaim,
    concurrency: 4,
    queueConcurrency: 2,
    batchSize: 5,
    bufferBytes: 1024 * 1024,
    leaseMs: 60_000,
    pollMs: 2000,
    ...over
  })
  t.teardown(async () => {
    http.answerAll(ok())
    await worker.stop()
  })
  return { clock, db, http, worker, block: (v: boolean) => { canClaim = !v } }
}

t.test('claims, sends within the limits, records the outcomes in one statement', async (t) => {
  const { clock, db, http, worker } = setup(t)
  db.due = [row(1), row(1), row(1), row(2), row(2)]
  const claimed = signal<[{ count: number }]>(worker, 'claimed')
  worker.start()
  t.equal((await claimed)[0].count, 5)
  await settle()
  t.same(http.calls.map(c => c.row.queueId).sort(), [1, 1, 2, 2], '4 slots, at most 2 per queue')
  t.same(http.calls.map(c => c.attempt), [1, 1, 1, 1])
  const delivered = signal(worker, 'delivered')
  http.answerAll(ok(), 1)
  await delivered
  await settle()
  t.equal(http.calls.length, 3, 'the third message of queue 1 took a freed slot')
  const flushed = signal<[unknown[]]>(worker, 'flushed')
  clock.advance(50)
  t.equal((await flushed)[0].length, 2, 'the two outcomes in one batch')
})

t.test('calls that outrun the recording of their outcomes stop the claims until a batch is written', async (t) => {
  const { clock, db, http, worker } = setup(t,
    { concurrency: 50, queueConcurrency: 50, batchSize: 50, unrecordedMax: 100 })
  let open: () => void = () => {}
  db.completeGate = new Promise<void>(resolve => { open = resolve })
  db.due = Array.from({ length: 1000 }, () => row(1))
  worker.start()
  // every call answered at once, the clock moved past the flush delay, until nothing more moves
  const churn = async (rounds: number): Promise<void> => {
    for (let i = 0; i < rounds; i++) {
      await settle()
      http.answerAll(ok())
      await settle()
      clock.advance(50)
    }
  }
  await churn(30)
  const claims = db.requests.length
  const left = db.due.length
  t.ok(left > 0 && left < 1000, `claims stopped with ${left} of 1000 rows left (a backlog of 1,000,000 piled up ` +
    '250,000 outcomes in memory)')
  t.ok(worker.waitingOutcomes >= 100, `${worker.waitingOutcomes} outcomes wait to be written`)
  await churn(10)
  t.equal(db.requests.length, claims, 'no claim while they wait')
  const sent = http.calls.length
  t.equal(sent, 0, 'every claimed row was still sent')
  open()
  db.completeGate = undefined
  await churn(80)
  t.equal(db.due.length, 0, 'claims went on once the outcomes were written')
  t.equal(db.completed.flat().length, 1000, 'every outcome written')
})

t.test('a short claim sleeps until the next row is due, and a NOTIFY wakes it', async (t) => {
  const { clock, db, worker } = setup(t)
  db.nextDueAt = new Date(clock.now() + 700)
  const idle = signal<[number]>(worker, 'idle')
  worker.start()
  t.same(await idle, [700], 'asleep until the next row falls due')
  db.due = [row(1)]
  db.nextDueAt = null
  const claimed = signal<[{ count: number }]>(worker, 'claimed')
  const idle2 = signal<[number]>(worker, 'idle')
  worker.notify()
  t.equal((await claimed)[0].count, 1, 'woken without the clock moving')
  t.same(await idle2, [2000], 'nothing more due: pollMs')
})

t.test('a failed probe gives back the rest of its queue only once the outcome (which opens the circuit again) is written', async (t) => {
  const { db, http, worker } = setup(t, { concurrency: 4, queueConcurrency: 4, batchSize: 10 })
  const half = queue({ probe: true })
  db.due = [row(1, { queue: half }), row(1, { queue: half }), row(1, { queue: half })]
  worker.start()
  await signal(worker, 'idle')
  t.equal(http.calls.length, 1, 'one probe at a time')
  const failed = signal(worker, 'failed')
  http.answerAll(fail(500), 1)
  await failed
  t.equal(db.released.length, 0, 'nothing given back before the outcome is written (it would be due at once: another probe)')
  t.equal(http.calls.length, 0, 'and no second probe')
  const released = signal(worker, 'released')
  await worker.flush()
  await released
  t.equal(db.released.length, 2)
})

t.test('attack round: a closed circuit\'s held rows are made due again a second later, for claims that held them meanwhile', async (t) => {
  const { clock, db, http, worker } = setup(t)
  db.due = [row(1)]
  db.closing.add(1)
  worker.start()
  await signal(worker, 'claimed')
  await settle()
  const flushed = signal(worker, 'flushed')
  http.answerAll(ok())
  await settle()
  clock.advance(50)
  await flushed
  t.same(db.unheld, [], 'not at once: the closing flush has made its own rows due')
  const unheld = signal<[{ queueId: number, count: number }]>(worker, 'unheld')
  clock.advance(UNHOLD_AFTER_CLOSE_MS)
  t.same((await unheld)[0], { queueId: 1, count: 0 })
  t.same(db.unheld, [1], 'once, for the queue whose circuit closed')
})

t.test('a due time JS cannot count with is a poll, never a spin (attack round: year 290000 spun the loop)', async (t) => {
  const { db, worker } = setup(t)
  for (const at of [new Date(Number.NaN), Infinity as unknown as Date, -Infinity as unknown as Date]) {
    db.nextDueAt = at
    const idle = signal<[number]>(worker, 'idle')
    if (worker.active) worker.notify()
    else worker.start()
    t.same(await idle, [2000], `${String(at)}: asleep for pollMs`)
  }
})

t.test('a saturated queue is skipped by the next claim; other queues are still served', async (t) => {
  const { db, http, worker } = setup(t, { concurrency: 8, queueConcurrency: 2, batchSize: 5 })
  db.due = Array.from({ length: 20 }, () => row(1))
  worker.start()
  await signal(worker, 'idle')
  t.equal(http.calls.length, 2, 'queue 1 at its limit')
  const skipping = db.requests.at(-1)!
  t.same(skipping.skipQueues, [1], 'holding 2 + 5: the next claim skips it')
  db.due.push(row(2))
  const claimed = signal(worker, 'claimed')
  worker.notify()
  await claimed
  await settle()
  t.same(http.calls.map(c => c.row.queueId).sort(), [1, 1, 2], 'queue 2 gets a slot at once')
})

t.test('a failure is recorded with its retry time and announced as retried; dead as dead', async (t) => {
  const { clock, db, http, worker } = setup(t)
  const q = queue({ maxRetries: 1, backoffBaseMs: 1000, backoffJitter: 'none' })
  db.due = [row(1, { queue: q }), row(2, { queue: q, retries: 1 })]
  db.dead = (c) => c.queueId === 2
  worker.start()
  await signal(worker, 'claimed')
  await settle()
  const failed = signal<[{ retryAt: Date | null }]>(worker, 'failed', (e) => e.retryAt !== null)
  const retried = signal<[{ retryAt: Date | null, attempt: number }]>(worker, 'retried')
  const dead = signal<[{ messageId: number }]>(worker, 'dead')
  const now = clock.now()
  http.answerAll(fail(500))
  t.equal((await failed)[0].retryAt!.getTime(), now + 1000)
  clock.advance(50)
  t.equal((await retried)[0].attempt, 1)
  t.ok((await dead)[0].messageId > 0)
})

t.test('a call past its queue timeout is cut short and recorded as a timeout', async (t) => {
  const { clock, db, worker } = setup(t)
  db.due = [row(1, { queue: queue({ timeoutMs: 1000 }) })]
  worker.start()
  await signal(worker, 'claimed')
  const failed = signal<[{ result: { errorKind: string } }]>(worker, 'failed')
  clock.advance(1000)
  t.equal((await failed)[0].result.errorKind, 'timeout')
})

t.test('no claim while the worker lock is not held', async (t) => {
  const { db, worker, block } = setup(t)
  block(true)
  db.due = [row(1)]
  worker.start()
  t.same(await signal(worker, 'idle'), [2000])
  t.equal(db.requests.length, 0)
})

t.test('stop: waiting claims go back; calls in flight get the grace, then are cut and released', async (t) => {
  const { clock, db, http, worker } = setup(t, { concurrency: 1 })
  db.due = [row(1), row(1), row(1)]
  worker.start()
  await signal(worker, 'claimed')
  await settle()
  t.equal(http.calls.length, 1)
  const stopping = worker.stop(5000)
  await settle()
  t.equal(db.released.length, 2, 'the two waiting went back at once')
  clock.advance(5000)
  await stopping
  t.equal(db.released.length, 3, 'the call cut off by shutdown went back too, not recorded as an attempt')
  t.equal(db.completed.length, 0)
  t.notOk(worker.active)
})

t.test('a 410 Gone parks the message and disables its queue once; its waiting rows go back, others flow', async (t) => {
  const { db, http, worker } = setup(t, { concurrency: 4, queueConcurrency: 1, batchSize: 10 })
  db.due = [row(1), row(1), row(1), row(2)]
  worker.start()
  await signal(worker, 'idle')
  t.equal(http.calls.length, 2, 'one call per queue')
  const failed = signal<[{ retryAt: Date | null }]>(worker, 'failed')
  // the queue is disabled by the statement that records the outcome (written at once: rows were waiting),
  // and told then; its waiting rows go back after it
  const disabled = signal<[{ id: number }]>(worker, 'disabled')
  const released = signal(worker, 'released')
  http.answerAll(fail(410), 1)
  t.equal((await failed)[0].retryAt, null, 'not retried')
  t.match((await disabled)[0], { id: 1 })
  await released
  t.same(db.released.map(r => r.queueId), [1, 1], "queue 1's waiting rows were given back once that was written")
  const delivered = signal(worker, 'delivered')
  http.answerAll(ok(), 2)
  await delivered
  await worker.flush()
  const recorded = db.completed.flat()
  t.same(recorded.map(c => [c.queueId, c.parked, c.retryAt]), [[1, true, null], [2, false, null]], 'recorded as parked, not dead')
  t.same([...db.disabled], [1])
})

t.test('a limited claim that fails does not stop the plain claim', async (t) => {
  const { db, http, worker } = setup(t)
  const plain = db.claim
  const asked: number[] = []
  let first = true
  // the plain claim meets queue 9 as limited once; its limited claim always fails
  Object.assign(db, {
    claim: async (req: Parameters<typeof plain>[0]) => {
      const r = await plain(req)
      if (!first) return r
      first = false
      return { ...r, limited: [9] }
    },
    claimLimited: async (ids: number[]) => {
      asked.push(...ids)
      throw new Error('value out of range: overflow')
    }
  })
  db.due = [row(1)]
  worker.start()
  await settle()
  t.equal(http.calls.length, 1)
  db.due.push(row(1))
  worker.notify()
  await settle()
  t.ok(asked.includes(9), 'the limited claim was tried, and failed')
  t.equal(http.calls.length, 2, 'the other queues were still claimed and sent (attack round: every queue stopped)')
})

t.test('attack round: a release that fails (connections cut) is tried again, not left for the lease', async (t) => {
  const { clock, db, http, worker } = setup(t, { concurrency: 1 })
  db.due = [row(1), row(1), row(1)]
  worker.start()
  await signal(worker, 'claimed')
  await settle()
  t.equal(http.calls.length, 1)
  db.failRelease = 2
  worker.giveBackQueue(1)
  await settle()
  t.equal(db.released.length, 0, 'the first try failed')
  clock.advance(200)
  await settle()
  t.equal(db.released.length, 0, 'and the second')
  const released = signal(worker, 'released')
  clock.advance(400)
  await released
  t.equal(db.released.length, 2, 'the third gave the two waiting rows back, long before their lease')
})
