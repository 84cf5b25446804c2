// Fakes for the worker's ports (lib/delivery/database.ts Claims, executor.ts Send): a queue table in
// memory with the claim rules the policy relies on (due order, skipped queues, limit). For unit tests
// of the policy only; the real claim is tested against PostgreSQL in delivery.test.ts.
import type { CircuitTurn, Complete, DeadLetter, DisabledQueue } from '../lib/delivery/completer.js'
import type { Claims } from '../lib/delivery/database.js'
import type { ClaimRequest } from '../lib/delivery/producer.js'
import type { Cut, Result } from '../lib/delivery/sender.js'
import type { ClaimedRow, Completion, LimitedQueueState, QueueTarget } from '../lib/delivery/sql.js'

let nextId = 1

export function queue (over: Partial<QueueTarget> = {}): QueueTarget {
  return {
    callbackUrl: 'http://127.0.0.1:9/hook',
    method: 'POST',
    headers: {},
    timeoutMs: 30_000,
    maxRetries: 3,
    backoffBaseMs: 1000,
    backoffMaxMs: 60_000,
    backoffJitter: 'none',
    signingSecrets: null,
    probe: false,
    ...over
  }
}

export function row (queueId: number, over: Partial<ClaimedRow> = {}): ClaimedRow {
  const id = nextId++
  return {
    id,
    queueId,
    body: 'x',
    headers: {},
    retries: 0,
    attempts: 0,
    idempotencyKey: null,
    eventId: null,
    eventType: null,
    slot: null,
    ordered: false,
    when: new Date(0),
    claimToken: `t${id}`,
    size: 1024,
    queue: queue(),
    ...over
  }
}

export function ok (status = 200): Result {
  return {
    ok: true,
    status,
    errorKind: null,
    error: null,
    responseBody: '',
    retryAfter: undefined,
    startedAt: new Date(0),
    durationMs: 1
  }
}

export function fail (status: number | null = 500): Result {
  return {
    ok: false,
    status,
    errorKind: status === null ? 'network' : 'http',
    error: 'x',
    responseBody: null,
    retryAfter: undefined,
    startedAt: new Date(0),
    durationMs: 1
  }
}

/** One outcome as the completer hands it to complete(): a first attempt of a claimed message. */
export function completion (id: number, claimToken: string, queueId: number, result: Result,
  over: Partial<Completion> = {}): Completion {
  return {
    id,
    claimToken,
    queueId,
    attempt: 1,
    when: new Date(),
    retryAt: null,
    parked: false,
    holdUntil: null,
    slotted: false,
    ordered: false,
    observedRate: 1,
    result,
    ...over
  }
}

/** Due rows in memory, claimed in order; every call recorded. */
export class FakeClaims implements Claims {
  due: ClaimedRow[] = []
  requests: ClaimRequest[] = []
  released: ClaimedRow[] = []
  completed: Completion[][] = []
  nextDueAt: Date | null = null
  dead: (c: Completion) => boolean = () => false
  failComplete = 0
  failRelease = 0
  /** while set, every complete waits for it: a database slow to record */
  completeGate: Promise<void> | undefined

  readonly claim = async (req: ClaimRequest): Promise<{ rows: ClaimedRow[], seen: number, limited: number[] }> => {
    this.requests.push(req)
    const eligible = this.due.filter(r => !req.skipQueues.includes(r.queueId)).slice(0, req.limit)
    this.due = this.due.filter(r => !eligible.includes(r))
    return { rows: eligible, seen: eligible.length, limited: [] }
  }

  readonly claimLimited = async (): Promise<{ rows: ClaimedRow[], states: LimitedQueueState[] }> =>
    ({ rows: [], states: [] })

  readonly laneQueues = async (): Promise<number[]> => []

  readonly nextDue = async (): Promise<Date | null> => this.nextDueAt

  readonly release = async (rows: ClaimedRow[]): Promise<void> => {
    if (this.failRelease > 0) {
      this.failRelease--
      throw new Error('Connection terminated unexpectedly')
    }
    this.released.push(...rows)
  }

  /** queues disabled by a written 410, once each */
  disabled = new Set<number>()
  /** queues whose circuit a written success closes */
  closing = new Set<number>()
  unheld: number[] = []

  readonly unhold = async (queueId: number): Promise<number> => {
    this.unheld.push(queueId)
    return 0
  }

  readonly complete: Complete = async (batch) => {
    if (this.completeGate !== undefined) await this.completeGate
    if (this.failComplete > 0) {
      this.failComplete--
      throw new Error('database away')
    }
    this.completed.push(batch)
    const disabled: DisabledQueue[] = []
    for (const c of batch) {
      if (!c.parked || this.disabled.has(c.queueId)) continue
      this.disabled.add(c.queueId)
      disabled.push({ id: c.queueId, name: `q${c.queueId}`, disabledAt: new Date(0), reason: 'gone' })
    }
    const dead = batch.filter(c => this.dead(c))
      .map((c): DeadLetter => ({ messageId: c.id, queueId: c.queueId, dlqMessageId: null }))
    const circuits: CircuitTurn[] = []
    for (const c of batch) {
      if (!c.result.ok || !this.closing.delete(c.queueId)) continue
      circuits.push({ id: c.queueId, name: `q${c.queueId}`, state: 'closed', consecutiveFailures: 0 })
    }
    return { dead, disabled, circuits, throttled: [] }
  }
}

/** A send whose calls stay open until the test answers them. */
export class FakeSend {
  readonly calls: Array<{ row: ClaimedRow, attempt: number, answer: (r: Result) => void }> = []

  readonly send = async (row: ClaimedRow, attempt: number, cut: Cut): Promise<Result> =>
    await new Promise<Result>((resolve) => {
      this.calls.push({ row, attempt, answer: resolve })
      const errorKind = (reason: Error) => reason.name === 'TimeoutError' ? 'timeout' : 'network'
      cut.abort = (reason) => resolve({ ...fail(null), errorKind: errorKind(reason), error: reason.message })
    })

  /** answer every open call of this queue (all queues: undefined) */
  answerAll (result: Result, queueId?: number): number {
    const open = this.calls.filter(c => queueId === undefined || c.row.queueId === queueId)
    for (const c of open) this.calls.splice(this.calls.indexOf(c), 1)
    for (const c of open) c.answer(result)
    return open.length
  }
}

/** Let promise callbacks (the fakes' answers, the loop's next pass) run. */
export async function settle (): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise(resolve => setImmediate(resolve))
}
