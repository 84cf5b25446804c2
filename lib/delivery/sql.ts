// The delivery engine's statements. Hot ones are named, so pg prepares them once per connection.
import { arrayLiteral } from '../db/arrays.js'
import type { Statement } from '../db/query.js'
import { SUBSCRIBERS_LOCK, WORKER_LOCK_CLASS } from '../db/locks.js'
import { LEASE_SLACK_MS, leaseFor, MAX_QUEUE_TIMEOUT_MS } from './lease.js'
import type { Result } from './sender.js'

// defined once, in lib/db/query.ts; retention and metrics still import it from here
export type { Statement }

/**
 * The session every delivery-path statement runs in (the engine's pool: claim, flush, release, the
 * reaper, retention, metrics):
 *  - synchronous_commit off: a crash can only forget that a message was sent or claimed, and then it
 *    is sent again (at-least-once); enqueues keep full durability on the app's pool;
 *  - no parallel workers and no sequential scans over messages: right after a mass update (a backlog
 *    made due, a day replayed) the statistics are stale, and a plan made from them can scan where the
 *    index answers in a millisecond (retention's deletes did). Every statement here has an index path
 *    (test/plans.test.ts EXPLAINs each on 200k rows with stale statistics);
 *  - no JIT: with fresh statistics of a large backlog, a claim is estimated above jit_above_cost and
 *    compiled on every run, for a statement that reads a few hundred rows (a skipping claim that read
 *    nothing took 70 ms, of which 0.2 ms was execution, on a backlog of 1,000,000).
 */
export const DELIVERY_SESSION_OPTIONS = '-c synchronous_commit=off -c max_parallel_workers_per_gather=0 ' +
  '-c enable_seqscan=off -c jit=off'

/** What a claim needs of a message's queue: read once per queue per claim, shared by its rows. */
export interface QueueTarget {
  callbackUrl: string
  method: string
  headers: Record<string, string>
  timeoutMs: number
  maxRetries: number
  backoffBaseMs: number
  backoffMaxMs: number
  backoffJitter: 'full' | 'equal' | 'none'
  /** secrets that sign this delivery: the current one, and the previous one during a rotation */
  signingSecrets: string[] | null
  /** the queue's circuit is half-open: one call at a time probes it (producer.ts) */
  probe: boolean
}

/**
 * A queue whose calls are limited across processes (migrations/012.do.sql): a rate, a concurrency or a
 * throttle. Its rows are claimed by claimLimited, never by claim: they are kept in the limited lane
 * (messages.limited, migrations/013.do.sql), out of the plain claim's range. The insert trigger there
 * spells this rule too: SQL cannot import it.
 */
const LIMITED_SQL = (q: string): string =>
  `(${q}.rate_limit_per_second IS NOT NULL OR ${q}.max_concurrency IS NOT NULL OR ${q}.throttle_rate IS NOT NULL)`

/**
 * What a claim does with a due row of an ordering key (migrations/012.do.sql): 'send' when no earlier
 * message of its key is pending; 'wait' when one is, read again under a share lock (its latest
 * version: one that has just been sent or died is no longer pending); else 'skip', left due for the
 * next claim (the earlier one is being written right now, or was, after this statement's snapshot).
 * Waiting on the snapshot's word alone could leave a message waiting for an outcome already written,
 * whose statement found nothing waiting to wake. The share lock is taken on a message whose outcome is
 * being written only by skipping it: claims never wait.
 */
const ORDER_TURN_SQL = (m: string): string => `CASE WHEN ${m}.order_key IS NULL THEN 'send'
          WHEN NOT EXISTS (SELECT 1 FROM hookpost.messages p WHERE p.queue_id = ${m}.queue_id
            AND p.order_key = ${m}.order_key AND p.id < ${m}.id AND p.sent_at IS NULL AND NOT p.failed) THEN 'send'
          WHEN EXISTS (SELECT 1 FROM hookpost.messages p WHERE p.queue_id = ${m}.queue_id
            AND p.order_key = ${m}.order_key AND p.id < ${m}.id AND p.sent_at IS NULL AND NOT p.failed
            FOR SHARE SKIP LOCKED) THEN 'wait'
          ELSE 'skip' END`

// a claimed row's columns, and its queue's settings on the first row of each queue (claim, claimLimited)
const CLAIMED_COLUMNS_SQL = `c.id, c.locked_at::text AS "claimToken", c.queue_id AS "queueId",
        CASE WHEN NOT c.parked THEN c.body END AS body, c.headers, c.retries, c.attempts, c.parked,
        c.size, c.idempotency_key AS "idempotencyKey", c.event_id AS "eventId", c.event_type AS "eventType",
        (extract(epoch FROM c."when") * 1000)::float8 AS "whenMs", c.slot, c.order_key IS NOT NULL AS ordered,
        CASE WHEN row_number() OVER (PARTITION BY c.queue_id) = 1 THEN (
          SELECT json_build_object('callbackUrl', q.callback_url, 'method', q.method, 'headers', q.headers,
            'timeoutMs', q.timeout_ms, 'maxRetries', q.max_retries, 'backoffBaseMs', q.backoff_base_ms,
            'backoffMaxMs', q.backoff_max_ms, 'backoffJitter', q.backoff_jitter, 'probe', q.circuit_state = 'open',
            'signingSecrets', CASE WHEN q.signing_secret IS NOT NULL THEN array_remove(ARRAY[q.signing_secret,
              CASE WHEN q.previous_signing_secret_until > now() THEN q.previous_signing_secret END], NULL) END)
          FROM hookpost.queues q WHERE q.id = c.queue_id) END AS queue`

export interface ClaimedRow {
  id: number
  queueId: number
  body: string | null
  headers: Record<string, string>
  retries: number
  attempts: number
  idempotencyKey: string | null
  /** a fan-out message's event (migrations/010.do.sql): sent as x-hookpost-event-id and -type */
  eventId: number | null
  eventType: string | null
  /** when the message was due first: delivery latency is measured from it */
  when: Date
  /**
   * locked_at as text (microseconds intact): names this claim, so a late outcome of an older claim of
   * the same message changes nothing
   */
  claimToken: string
  /** what the row is taken to hold in memory, bytes: body and headers as stored, plus CLAIM_ROW_OVERHEAD_BYTES */
  size: number
  /** the queue's concurrency slot this call holds (claimLimited), freed when its outcome is written */
  slot: number | null
  /** it has an ordering key: its outcome lets the key's next message go */
  ordered: boolean
  queue: QueueTarget
}

/** A claimed row's fixed share of the worker's memory beyond its body and headers (its objects and strings), bytes */
export const CLAIM_ROW_OVERHEAD_BYTES = 1024
// body and headers as stored: octet_length and pg_column_size read a TOASTed value's size, never decompress it
const CLAIM_SIZE_SQL = `(coalesce(octet_length(body), 0) + pg_column_size(headers) + ${CLAIM_ROW_OVERHEAD_BYTES})`

/** A claim's rows as they come: the queue is on the first row of each queue only. */
export type ClaimResultRow = Omit<ClaimedRow, 'queue' | 'when'> & {
  whenMs: number
  queue: QueueTarget | null
  seen: number
  /** its queue is paused or disabled: parked by the claim, not to be sent (it still counts in seen) */
  parked: boolean
  /** not claimed: its queue is limited (claimLimited's); one such row per queue */
  limited?: boolean
}

/**
 * Claim due messages: SKIP LOCKED so concurrent claimers never block or share a row, and run_at
 * pushed past the lease so a crashed claimer's messages fall due again by themselves. The lease is
 * lease.ts's leaseFor(), in SQL: it outlives the queue's timeout, so a live call is never handed on.
 * Queues the producer counts as saturated (producer.ts: their limit plus a batch held, or most of their
 * share of the buffer's bytes) are skipped, so a slow endpoint cannot fill the claim.
 * The queue's settings come once per queue, as JSON on its first row, not repeated on all 200 rows:
 * parsing them per row was a measurable share of the worker's CPU. "when" comes as epoch ms, which
 * is cheaper to read than a timestamp's text.
 * Rows are taken in due order while their sizes (ClaimedRow.size) add up to at most maxBytes, and
 * those of one queue to at most queueMaxBytes, so one queue's large bodies cannot take the whole
 * budget. The first row (of the claim; of a queue) is taken whatever its size: a message larger than
 * the budget is still delivered. Every row says how many due rows the claim locked (`seen`): more
 * than it took when the budget left some out.
 */
export function claim (limit: number, leaseMs: number, workerId: string, skipQueues: number[], recentMs?: number,
  maxBytes = Number.MAX_SAFE_INTEGER, queueMaxBytes = maxBytes): Statement {
  // recentMs: only rows due in the last recentMs, an index range rather than a walk over every due row
  // of the skipped queues (see SKIP_RECENT_MARGIN_MS in producer.ts); its own statement, so that the
  // bound is always an index condition
  const recent = recentMs !== undefined
  // A skipping claim over every due row walks past all of the skipped queues' rows before it can say
  // that nothing else is due: with one saturated queue and a backlog of 100,000, 60-330 ms every
  // pollMs, while its calls ran dry (bench/probe-worker.ts, PROBE_TRACE). So it first asks, one index
  // probe per queue (messages_queue_due_idx), whether any other queue has a row due, and walks only
  // then: a one-time filter, evaluated once before the walk. A queue whose due rows are all in the
  // limited lane answers yes too, and the walk runs as it would without the probe.
  const skipping = skipQueues.length > 0 && !recent
  return {
    name: recent ? 'hookpost_claim_recent' : skipping ? 'hookpost_claim_skipping' : 'hookpost_claim',
    text: `WITH due AS (
        SELECT id, queue_id, run_at, order_key, ${CLAIM_SIZE_SQL} AS size FROM hookpost.messages
        WHERE sent_at IS NULL AND NOT failed AND NOT limited AND run_at <= now() AND queue_id <> ALL($4::bigint[])
          ${recent ? "AND run_at > now() - $7::integer * interval '1 millisecond'" : ''}
          ${skipping
            // (LIMIT 1 keeps it a probe per queue: as a semi-join, it was planned as a merge over every
            // due row of the index, the skipped queues' included)
            ? `AND EXISTS (SELECT 1 FROM hookpost.queues q CROSS JOIN LATERAL (
              SELECT 1 FROM hookpost.messages o WHERE o.queue_id = q.id AND o.sent_at IS NULL AND NOT o.failed
                AND o.run_at <= now() LIMIT 1) o WHERE q.id <> ALL($4::bigint[]))`
            : ''}
        ORDER BY run_at
        LIMIT $1
        FOR UPDATE SKIP LOCKED
      ),
      total AS (SELECT coalesce(sum(size), 0) AS bytes, count(*)::integer AS seen FROM due),
      -- Nearly always all of it fits, and the running totals, whose sorts were a tenth of the claim's
      -- time, are skipped (a one-time filter). Else running totals, per queue and then over what each
      -- queue keeps, a level above FOR UPDATE (no window beside it); rows locked above and left out
      -- here are unlocked when the statement ends. Every size is positive, so a running total equals
      -- the row's size on the first row only
      fits AS (
        SELECT id, size, queue_id, order_key FROM due WHERE (SELECT bytes FROM total) <= least($5::bigint, $6::bigint)
        UNION ALL
        SELECT id, size, queue_id, order_key FROM (
          SELECT id, size, queue_id, order_key,
            sum(size) OVER (ORDER BY run_at, id ROWS UNBOUNDED PRECEDING) AS upto FROM (
            SELECT id, run_at, size, queue_id, order_key,
              sum(size) OVER (PARTITION BY queue_id ORDER BY run_at, id ROWS UNBOUNDED PRECEDING) AS qupto
            FROM due
          ) q WHERE qupto <= $6::bigint OR qupto = size
        ) d WHERE (SELECT bytes FROM total) > least($5::bigint, $6::bigint) AND (upto <= $5::bigint OR upto = size)
      ),
      -- What becomes of each row: a paused or disabled queue's are parked (migrations/011.do.sql): due
      -- never, until the queue is resumed or enabled; a held queue's (a 429 or 503 asked to wait, or
      -- an open circuit) are due when the hold ends; a half-open queue's first row is its probe; a
      -- limited queue's move to the limited lane, claimLimited's (a queue limited after they were
      -- enqueued); a row of an ordering key waits for the key's earlier messages (ORDER_TURN_SQL)
      met AS (
        SELECT f.id, f.size, f.queue_id, q.held_until, q.timeout_ms, CASE WHEN q.paused OR q.disabled THEN 'park'
            WHEN q.held_until > now() THEN 'hold'
            ELSE (SELECT CASE WHEN o.turn <> 'send' THEN o.turn
                WHEN q.circuit_state = 'open' THEN 'probe'
                WHEN ${LIMITED_SQL('q')} THEN 'limited'
                ELSE 'send' END
              -- a key's later message is never the probe, nor handed on as a limited queue's
              FROM (SELECT ${ORDER_TURN_SQL('f')} AS turn) o) END AS turn
        FROM fits f JOIN hookpost.queues q ON q.id = f.queue_id
      ),
      -- One probe for a half-open queue, whichever process claims: the claim that moves its hold on by
      -- the probe's lease sends one row, and every claim holds the rest until then. The hold is read as
      -- the row last written, so two claims never both win; a probe whose process dies ends with its lease
      probes AS (
        UPDATE hookpost.queues q
        SET held_until = now() + (q.timeout_ms + ${LEASE_SLACK_MS}) * interval '1 millisecond'
        WHERE q.id IN (SELECT queue_id FROM met WHERE turn = 'probe') AND q.circuit_state = 'open'
          AND coalesce(q.held_until <= now(), true)
        RETURNING q.id, q.held_until
      ),
      turns AS (
        SELECT m.id, m.size, m.queue_id, m.timeout_ms, CASE WHEN m.turn <> 'probe' THEN m.turn
            WHEN p.id IS NOT NULL AND m.id = (SELECT min(x.id) FROM met x WHERE x.queue_id = m.queue_id
              AND x.turn = 'probe') THEN 'send'
            ELSE 'hold' END AS turn,
          CASE WHEN m.turn <> 'probe' THEN m.held_until
            ELSE coalesce(p.held_until, now() + (m.timeout_ms + ${LEASE_SLACK_MS}) * interval '1 millisecond') END
            AS held_until
        FROM met m LEFT JOIN probes p ON p.id = m.queue_id
      ),
      claimed AS (
        UPDATE hookpost.messages m
        SET run_at = CASE t.turn WHEN 'send' THEN now() + greatest($2::integer, t.timeout_ms + ${LEASE_SLACK_MS}) *
              interval '1 millisecond' WHEN 'hold' THEN t.held_until ELSE 'infinity'::timestamptz END,
          key_wait = t.turn = 'wait',
          locked_by = CASE WHEN t.turn = 'send' THEN $3 END,
          locked_at = CASE WHEN t.turn = 'send' THEN now() END
        FROM turns t
        WHERE m.id = t.id AND t.turn IN ('send', 'park', 'hold', 'wait')
        RETURNING m.id, m.locked_at, m.queue_id, m.body, m.headers, m.retries, m.attempts, m.idempotency_key, m."when",
          m.event_id, m.event_type, t.size, m.locked_by IS NULL AS parked, NULL::integer AS slot, m.order_key
      ),
      laned AS (
        UPDATE hookpost.messages m SET limited = true FROM turns t WHERE m.id = t.id AND t.turn = 'limited'
      )
      SELECT ${CLAIMED_COLUMNS_SQL}, (SELECT seen FROM total), false AS limited
      FROM claimed c
      UNION ALL
      SELECT DISTINCT ON (t.queue_id) t.id, NULL, t.queue_id, NULL, '{}'::jsonb, 0, 0, true, 0, NULL, NULL, NULL, 0,
        NULL, false, NULL, (SELECT seen FROM total), true
      FROM turns t WHERE t.turn = 'limited'`,
    values: recent
      ? [limit, leaseMs, workerId, skipQueues, maxBytes, queueMaxBytes, Math.ceil(recentMs)]
      : [limit, leaseMs, workerId, skipQueues, maxBytes, queueMaxBytes]
  }
}

/**
 * The rows of a claim to send (not the parked ones), each with its queue's settings and its due time as
 * a Date. The rows pg built are completed in place, not copied: this runs for every message.
 */
export function claimedRows (all: ClaimResultRow[]): ClaimedRow[] {
  const queues = new Map<number, QueueTarget>()
  for (const r of all) if (r.queue !== null) queues.set(r.queueId, r.queue)
  const rows = all.some(r => r.parked) ? all.filter(r => !r.parked) : all
  for (const r of rows) {
    const row = r as ClaimResultRow & { when: Date }
    row.when = new Date(r.whenMs)
    row.queue ??= queues.get(r.queueId)!
  }
  return rows as unknown as ClaimedRow[]
}

/** What claimLimited tells of each limited queue it was asked about, besides its rows. */
export interface LimitedQueueState {
  queueId: number
  /** still limited (a rate, a concurrency or a throttle): else its rows go back to the plain claim */
  limited: boolean
  /** not paused, disabled or held: else the plain claim parks or holds its rows */
  active: boolean
  /** when the queue's earliest pending row not parked falls due (or its lease ends), epoch ms */
  nextAtMs: number | null
  /** when its rate gives the next call, epoch ms; null: no rate */
  rateNextMs: number | null
  /** free concurrency slots left after this claim; null: no concurrency limit */
  slotsLeft: number | null
  /**
   * rows this claim moved from the limited lane back to the plain claim's range: the queue is no longer
   * limited, or not active (the plain claim parks, holds or probes them). LANE_CHUNK of them: more may be left
   */
  unlaned: number
}

/** A limited claim moves at most this many rows of a queue out of the limited lane (LimitedQueueState.unlaned). */
export const LANE_CHUNK = 1000

/** A claimLimited row: a claimed message (state null) or a queue's state (id null). */
export type LimitedResultRow = ClaimResultRow & { state: LimitedQueueState | null }

// a limited queue's rows locked beyond what its tokens and slots allow, so that a row waiting for its
// ordering key (parked as met) does not hide the next one for a whole claim
const ORDER_LOOKAHEAD = 16

/**
 * Claim the due rows of limited queues (LIMITED_SQL), each within what it may start now, across every
 * delivering process:
 *  - a rate: GCRA over queue_rates (migrations/012.do.sql), a bucket of one second's calls (at least
 *    one) that refills at the rate; the upsert reads the row as last written, so two processes' claims
 *    never spend the same token;
 *  - a concurrency: one free slot of queue_slots per call, locked SKIP LOCKED;
 *  - the process's own room for the queue (rooms, per queue: the producer's fairness share).
 * The estimate of tokens taken from the snapshot only bounds how many rows are locked; the grant is
 * the upsert's. Rows of an ordering key are sent, wait or are left as in claim (ORDER_TURN_SQL).
 */
export function claimLimited (queueIds: number[], rooms: number[], leaseMs: number, workerId: string): Statement {
  return {
    name: 'hookpost_claim_limited',
    text: `WITH lq AS (
        SELECT q.id, r.room, q.max_concurrency AS cap, least(q.rate_limit_per_second, q.throttle_rate) AS rate,
          q.timeout_ms, ${LIMITED_SQL('q')} AS limited,
          -- a half-open circuit's single probe is the plain claim's (claim)
          NOT q.paused AND NOT q.disabled AND coalesce(q.held_until <= now(), true) AND q.circuit_state = 'closed'
            AS active,
          extract(epoch FROM now())::float8 AS now_s
        FROM unnest($1::bigint[], $2::integer[]) AS r(id, room) JOIN hookpost.queues q ON q.id = r.id
      ),
      free AS (
        SELECT s.queue_id, s.slot FROM hookpost.queue_slots s JOIN lq ON lq.id = s.queue_id
        WHERE lq.active AND lq.limited AND lq.cap IS NOT NULL AND s.slot <= lq.cap
          AND (s.message_id IS NULL OR s.until <= now())
        FOR UPDATE OF s SKIP LOCKED
      ),
      want AS (
        SELECT lq.id, lq.rate, lq.timeout_ms, lq.now_s, least(lq.room,
            CASE WHEN lq.cap IS NOT NULL THEN (SELECT count(*) FROM free WHERE free.queue_id = lq.id) END,
            CASE WHEN lq.rate IS NOT NULL THEN coalesce((SELECT floor((lq.now_s - greatest(t.tat,
              lq.now_s - greatest(1, lq.rate) / lq.rate)) * lq.rate + 1e-9)
              FROM hookpost.queue_rates t WHERE t.queue_id = lq.id), floor(greatest(1, lq.rate))) END
          )::integer AS n
        FROM lq WHERE lq.active AND lq.limited
      ),
      cand AS (
        SELECT c.id, c.queue_id, c.run_at, c.size, w.timeout_ms, ${ORDER_TURN_SQL('c')} AS turn
        FROM want w CROSS JOIN LATERAL (
          SELECT m.id, m.queue_id, m.run_at, m.order_key, ${CLAIM_SIZE_SQL} AS size FROM hookpost.messages m
          WHERE m.queue_id = w.id AND m.limited AND m.sent_at IS NULL AND NOT m.failed AND m.run_at <= now()
          ORDER BY m.run_at LIMIT w.n + least(w.n, ${ORDER_LOOKAHEAD})
          FOR UPDATE SKIP LOCKED
        ) c WHERE w.n > 0
      ),
      sendable AS (
        SELECT c.*, row_number() OVER (PARTITION BY c.queue_id ORDER BY c.run_at, c.id) AS rank
        FROM cand c WHERE c.turn = 'send'
      ),
      counts AS (
        SELECT w.id AS queue_id, w.rate, w.now_s, least(count(*), w.n)::integer AS n
        FROM sendable s JOIN want w ON w.id = s.queue_id GROUP BY w.id, w.rate, w.now_s, w.n
      ),
      -- the tokens: in queue id order, the only order in which anything locks these rows
      rated AS (
        INSERT INTO hookpost.queue_rates AS t (queue_id, tat, wanted, granted, rate)
        SELECT c.queue_id, c.now_s - greatest(1, c.rate) / c.rate + least(c.n, floor(greatest(1, c.rate))) / c.rate,
          c.n, least(c.n, floor(greatest(1, c.rate))), c.rate
        FROM counts c WHERE c.rate IS NOT NULL ORDER BY c.queue_id
        ON CONFLICT (queue_id) DO UPDATE SET
          granted = least(EXCLUDED.wanted, greatest(0, floor((extract(epoch FROM now()) - greatest(t.tat,
            extract(epoch FROM now()) - greatest(1, EXCLUDED.rate) / EXCLUDED.rate)) * EXCLUDED.rate + 1e-9))),
          tat = greatest(t.tat, extract(epoch FROM now()) - greatest(1, EXCLUDED.rate) / EXCLUDED.rate) +
            least(EXCLUDED.wanted, greatest(0, floor((extract(epoch FROM now()) - greatest(t.tat,
              extract(epoch FROM now()) - greatest(1, EXCLUDED.rate) / EXCLUDED.rate)) * EXCLUDED.rate + 1e-9))) /
              EXCLUDED.rate,
          wanted = EXCLUDED.wanted, rate = EXCLUDED.rate
        RETURNING t.queue_id, t.granted, t.tat, t.rate
      ),
      granted AS (
        SELECT s.id, s.queue_id, s.rank, s.size, s.timeout_ms
        FROM sendable s JOIN counts c ON c.queue_id = s.queue_id LEFT JOIN rated r ON r.queue_id = s.queue_id
        WHERE s.rank <= least(c.n, coalesce(r.granted, c.n))
      ),
      slotted AS (
        SELECT g.*, f.slot FROM granted g LEFT JOIN (
          SELECT queue_id, slot, row_number() OVER (PARTITION BY queue_id ORDER BY slot) AS rn FROM free
        ) f ON f.queue_id = g.queue_id AND f.rn = g.rank
      ),
      claimed AS (
        UPDATE hookpost.messages m
        SET run_at = now() + greatest($3::integer, s.timeout_ms + ${LEASE_SLACK_MS}) * interval '1 millisecond',
          locked_by = $4, locked_at = now(), key_wait = false
        FROM slotted s WHERE m.id = s.id
        RETURNING m.id, m.locked_at, m.queue_id, m.body, m.headers, m.retries, m.attempts, m.idempotency_key, m."when",
          m.event_id, m.event_type, s.size, false AS parked, s.slot, m.order_key, m.run_at
      ),
      waiting AS (
        UPDATE hookpost.messages m SET run_at = 'infinity', key_wait = true
        FROM cand c WHERE m.id = c.id AND c.turn = 'wait'
      ),
      taken AS (
        UPDATE hookpost.queue_slots s SET message_id = c.id, token = c.locked_at, until = c.run_at
        FROM claimed c WHERE s.queue_id = c.queue_id AND s.slot = c.slot
        RETURNING s.queue_id
      ),
      -- a queue no longer limited, or not active: a chunk of its lane back to the plain claim's range
      unlaned AS (
        UPDATE hookpost.messages m SET limited = false
        FROM (SELECT id FROM lq WHERE NOT (lq.limited AND lq.active)) o CROSS JOIN LATERAL (
          SELECT x.id FROM hookpost.messages x
          WHERE x.queue_id = o.id AND x.limited AND x.sent_at IS NULL AND NOT x.failed
          LIMIT ${LANE_CHUNK} FOR UPDATE SKIP LOCKED
        ) x
        WHERE m.id = x.id
        RETURNING m.queue_id
      )
      SELECT ${CLAIMED_COLUMNS_SQL}, 0 AS seen, false AS limited, NULL::json AS state
      FROM claimed c
      UNION ALL
      SELECT NULL, NULL, lq.id, NULL, '{}'::jsonb, 0, 0, true, 0, NULL, NULL, NULL, 0, NULL, false, NULL, 0, true,
        json_build_object('queueId', lq.id, 'limited', lq.limited, 'active', lq.active,
          'nextAtMs', (SELECT extract(epoch FROM min(m.run_at)) * 1000 FROM hookpost.messages m
            WHERE m.queue_id = lq.id AND m.limited AND m.sent_at IS NULL AND NOT m.failed AND m.run_at < 'infinity'),
          'rateNextMs', CASE WHEN lq.rate IS NOT NULL THEN (coalesce(
            (SELECT r.tat FROM rated r WHERE r.queue_id = lq.id),
            (SELECT t.tat FROM hookpost.queue_rates t WHERE t.queue_id = lq.id), 0) + 1 / lq.rate) * 1000 END,
          'slotsLeft', CASE WHEN lq.cap IS NOT NULL THEN (SELECT count(*) FROM free f WHERE f.queue_id = lq.id) -
            (SELECT count(*) FROM taken k WHERE k.queue_id = lq.id) END,
          'unlaned', (SELECT count(*) FROM unlaned u WHERE u.queue_id = lq.id))
      FROM lq`,
    values: [queueIds, rooms, leaseMs, workerId]
  }
}

/**
 * The queues with pending rows in the limited lane, due or not: the plain claim never meets them, so a
 * worker asks after a NOTIFY that one was enqueued, after claims were reaped, and every pollMs. A skip
 * scan of messages_lane_idx: one index probe per such queue.
 */
export function laneQueues (): Statement {
  return {
    name: 'hookpost_lane_queues',
    text: `WITH RECURSIVE lane AS (
        (SELECT queue_id FROM hookpost.messages WHERE limited AND sent_at IS NULL AND NOT failed
          ORDER BY queue_id LIMIT 1)
        UNION ALL
        SELECT (SELECT m.queue_id FROM hookpost.messages m
          WHERE m.limited AND m.sent_at IS NULL AND NOT m.failed AND m.queue_id > lane.queue_id
          ORDER BY m.queue_id LIMIT 1)
        FROM lane WHERE lane.queue_id IS NOT NULL
      )
      SELECT queue_id AS "queueId" FROM lane WHERE queue_id IS NOT NULL`,
    values: []
  }
}

/** A limited claim's rows to send, and what it tells of each queue. */
export function limitedRows (all: LimitedResultRow[]): { rows: ClaimedRow[], states: LimitedQueueState[] } {
  const states: LimitedQueueState[] = []
  const claimed: ClaimResultRow[] = []
  for (const r of all) {
    if (r.state !== null) states.push(r.state)
    else claimed.push(r)
  }
  return { rows: claimedRows(claimed), states }
}

/**
 * When the next pending message of the plain claim's range falls due (or its lease runs out): the worker
 * sleeps until then. The limited lane's are claimLimited's, which says when each of its queues is next due.
 */
export function nextDue (): Statement {
  return {
    name: 'hookpost_next_due',
    text: 'SELECT min(run_at) AS at FROM hookpost.messages WHERE sent_at IS NULL AND NOT failed AND NOT limited',
    values: []
  }
}

/**
 * When the next message of a queue not in `skipQueues` falls due, counting only rows not due yet: an
 * index range from now, which never walks the skipped queues' backlog (for the sleep after a claim
 * that skipped saturated queues).
 */
export function nextDueBeyond (skipQueues: number[]): Statement {
  return {
    name: 'hookpost_next_due_beyond',
    text: `SELECT min(run_at) AS at FROM hookpost.messages
      WHERE sent_at IS NULL AND NOT failed AND NOT limited AND run_at > now() AND queue_id <> ALL($1::bigint[])`,
    values: [skipQueues]
  }
}

/**
 * Every delivering process holds this lock on its LISTEN connection for as long as it lives: its
 * claims are live exactly while the lock is held (reapDeadClaims).
 */
export function holdWorkerLock (workerId: string): Statement {
  return { text: 'SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok', values: [WORKER_LOCK_CLASS, workerId] }
}

// A live claim of a process whose worker lock (held by its LISTEN connection) is missing: a lease not
// yet over, at most the longest lease from now. Bounding the range keeps the scan off the messages
// scheduled further ahead, which can be millions. (A process configured with a longer lease than ours
// gets its dead claims back when its lease ends, as without reaping.)
const UNLOCKED_CLAIM_SQL = `m.sent_at IS NULL AND NOT m.failed AND m.locked_by IS NOT NULL
        AND m.run_at > now() AND m.run_at <= now() + $2::integer * interval '1 millisecond'
        AND NOT EXISTS (
          SELECT 1 FROM pg_locks l
          WHERE l.locktype = 'advisory'
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND l.classid = $1 AND l.objid::bigint = (hashtext(m.locked_by)::bigint & 4294967295)
            AND l.objsubid = 2 AND l.granted
        )`

/**
 * The processes that hold claims but not their worker lock, now: dead, or their LISTEN connection is
 * reconnecting. The reaper (lib/services/reaper.ts) hands their claims back only once a process has
 * stayed on this list for the grace period, so a connection that blips costs nothing.
 */
export function unlockedClaimOwners (leaseMs: number): Statement {
  return {
    text: `SELECT DISTINCT m.locked_by AS owner FROM hookpost.messages m WHERE ${UNLOCKED_CLAIM_SQL}`,
    values: [WORKER_LOCK_CLASS, leaseFor(leaseMs, MAX_QUEUE_TIMEOUT_MS)]
  }
}

/**
 * Hand back the claims of these processes, which have been without their worker lock for the grace
 * period (kill -9, a lost host): without this they would wait for their lease, a minute or more. The
 * lock is checked again here, so a process that came back since keeps its claims; so does a claim
 * younger than graceMs.
 */
export function reapDeadClaims (owners: string[], leaseMs: number, graceMs: number): Statement {
  return {
    text: `UPDATE hookpost.messages m SET run_at = now(), locked_by = NULL, locked_at = NULL
      WHERE ${UNLOCKED_CLAIM_SQL}
        AND m.locked_by = ANY($4::text[]) AND m.locked_at < now() - $3::integer * interval '1 millisecond'
      RETURNING m.id`,
    values: [WORKER_LOCK_CLASS, leaseFor(leaseMs, MAX_QUEUE_TIMEOUT_MS), graceMs, owners]
  }
}

/**
 * Unpark what a claim parked just as its queue was resumed: the claim began before the resume and
 * committed after the resume's own unparking had looked (lib/store/queues.ts). Rare, so the reaper's
 * pass sweeps for it: an index probe per active queue on messages_queue_due_idx. A message waiting for
 * its ordering key is not parked: wakeStrandedKeys' business.
 */
export function unparkStragglers (): Statement {
  return {
    name: 'hookpost_unpark_stragglers',
    text: `UPDATE hookpost.messages m SET run_at = m."when", updated_at = now()
      FROM hookpost.queues q
      WHERE q.id = m.queue_id AND NOT q.paused AND NOT q.disabled
        AND m.run_at = 'infinity' AND NOT m.key_wait AND m.sent_at IS NULL AND NOT m.failed`,
    values: []
  }
}

/**
 * A circuit closed: the rows held for its probe's lease are due now, as the closing flush makes them
 * (sql.complete, held_rows), once more. A claim in another process that read the circuit as open just
 * before the close committed holds its rows after that flush's snapshot, where the flush cannot see
 * them (attack round: with two processes, 400 messages waited a minute after the circuit closed).
 * Only while the circuit is still closed and the queue not held, paused or disabled; a retry due within
 * the lease goes now too, as in the flush: the endpoint has just answered. Its row count is how many
 * were made due.
 */
export function unholdClosedCircuit (queueId: number): Statement {
  return {
    name: 'hookpost_unhold_closed_circuit',
    text: `UPDATE hookpost.messages m SET run_at = now()
      FROM hookpost.queues q
      WHERE q.id = $1 AND q.circuit_state = 'closed' AND coalesce(q.held_until <= now(), true)
        AND NOT q.paused AND NOT q.disabled
        AND m.queue_id = q.id AND m.sent_at IS NULL AND NOT m.failed AND m.locked_by IS NULL
        AND m.run_at > now() AND m.run_at <= now() + (q.timeout_ms + ${LEASE_SLACK_MS}) * interval '1 millisecond'`,
    values: [queueId]
  }
}

/**
 * Wake the messages waiting for an ordering key that no earlier pending message holds any more: the
 * outcome that let it go wakes the next one itself (sql.complete), so this finds only what nothing else
 * would, such as a message deleted while the next waited, or a fifo queue turned back. Each pass of the
 * reaper; a stale snapshot only wakes less.
 */
export function wakeStrandedKeys (): Statement {
  return {
    name: 'hookpost_wake_stranded_keys',
    text: `UPDATE hookpost.messages m SET key_wait = false, run_at = least(m."when", now())
      WHERE m.run_at = 'infinity' AND m.key_wait AND m.sent_at IS NULL AND NOT m.failed
        AND NOT EXISTS (SELECT 1 FROM hookpost.messages p WHERE p.queue_id = m.queue_id
          AND p.order_key = m.order_key AND p.id < m.id AND p.sent_at IS NULL AND NOT p.failed)
        -- nor a later one in flight (a redriven message waits for it)
        AND NOT EXISTS (SELECT 1 FROM hookpost.messages p WHERE p.queue_id = m.queue_id
          AND p.order_key = m.order_key AND p.id > m.id AND p.sent_at IS NULL AND NOT p.failed
          AND p.locked_by IS NOT NULL AND p.run_at > now())`,
    values: []
  }
}

// a slot whose claim is at least this old and no longer in flight is freed by the reaper; younger ones
// are left, as their claim may have committed after the sweep's snapshot
const ORPHAN_SLOT_AGE_MS = 10_000

/**
 * Free the concurrency slots whose call is over but was never written as such: its process died and
 * the reaper handed the message back, or it was deleted. A slot frees itself when its lease ends; this
 * is sooner.
 */
export function freeOrphanSlots (): Statement {
  return {
    name: 'hookpost_free_orphan_slots',
    // and drop the free slots beyond a lowered limit (migrations/012.do.sql keeps them while held)
    text: `WITH surplus AS (
        DELETE FROM hookpost.queue_slots s USING hookpost.queues q
        WHERE q.id = s.queue_id AND s.slot > coalesce(q.max_concurrency, 0)
          AND (s.message_id IS NULL OR s.until <= now())
      )
      UPDATE hookpost.queue_slots s SET message_id = NULL, token = NULL, until = NULL
      WHERE s.message_id IS NOT NULL AND s.until > now()
        AND s.token < now() - ${ORPHAN_SLOT_AGE_MS} * interval '1 millisecond'
        AND NOT EXISTS (SELECT 1 FROM hookpost.messages m WHERE m.id = s.message_id AND m.locked_at = s.token
          AND m.sent_at IS NULL AND NOT m.failed)`,
    values: []
  }
}

/**
 * Disable the queues that have failed continuously for longer than their disable_after_hours (the
 * leader, each reaper pass): their messages are parked from the next claim on.
 */
export function disableFailingQueues (): Statement {
  return {
    name: 'hookpost_disable_failing',
    text: `UPDATE hookpost.queues
      SET disabled = true, disabled_at = now(), updated_at = now(),
        disabled_reason = 'failing continuously for ' || disable_after_hours || ' hours'
      WHERE failing_since IS NOT NULL AND NOT disabled AND disable_after_hours > 0
        AND failing_since < now() - disable_after_hours * interval '1 hour'
      RETURNING id, name, disabled_at AS "disabledAt", disabled_reason AS reason`,
    values: []
  }
}

/** Whether any process holds the shared subscribers lock (SUBSCRIBERS_LOCK, lib/db/locks.ts). */
export function subscribersExist (): Statement {
  return {
    name: 'hookpost_subscribers',
    text: `SELECT EXISTS (SELECT 1 FROM pg_locks
      WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND objsubid = 2 AND granted
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())) AS yes`,
    values: [...SUBSCRIBERS_LOCK]
  }
}

/**
 * Give claims back untouched (shutdown, demotion, stale prefetch): due now, for anyone, and their
 * concurrency slots free.
 */
export function release (rows: Array<{ id: number, claimToken: string, queueId: number, slot: number | null }>,
  workerId: string): Statement {
  return {
    text: `WITH given AS (
        UPDATE hookpost.messages m SET run_at = now(), locked_by = NULL, locked_at = NULL
        FROM unnest($1::bigint[], $3::timestamptz[]) AS u(id, token)
        WHERE m.id = u.id AND m.locked_by = $2 AND m.locked_at = u.token AND m.sent_at IS NULL AND NOT m.failed
      )
      UPDATE hookpost.queue_slots s SET message_id = NULL, token = NULL, until = NULL
      FROM unnest($1::bigint[], $3::timestamptz[], $4::bigint[], $5::integer[]) AS u(id, token, queue_id, slot)
      WHERE u.slot IS NOT NULL AND s.queue_id = u.queue_id AND s.slot = u.slot AND s.message_id = u.id
        AND s.token = u.token`,
    values: [rows.map(r => r.id), workerId, rows.map(r => r.claimToken), rows.map(r => r.queueId),
      rows.map(r => r.slot)]
  }
}

/**
 * Why a queue was disabled by a 410: no URL in it (attack round: the callback URL, credentials and
 * all, went to every subscriber of hookpost.*)
 */
export const GONE_REASON = 'the endpoint answered 410 Gone'

/** calls a second that adaptive throttling never goes below */
export const MIN_THROTTLE_RATE = 1

/** A row of the completing statement's answer (complete) */
export type CompleteResultRow =
  { kind: 'dead', messageId: number, dlqMessageId: number | null, queueId: number, name: null, disabledAt: null } |
  { kind: 'disabled', messageId: null, dlqMessageId: null, queueId: number, name: string, disabledAt: Date } |
  {
    kind: 'circuit',
    messageId: null,
    dlqMessageId: null,
    queueId: number,
    name: string
    turn: 'open' | 'close',
    run: number
  } |
  { kind: 'throttled', messageId: null, dlqMessageId: null, queueId: number, name: string }

export interface Completion {
  id: number
  claimToken: string
  queueId: number
  attempt: number
  when: Date
  result: Result
  /** for failures: when to retry, or null for dead (or parked) */
  retryAt: Date | null
  /** the endpoint answered 410 Gone: the message is parked, its queue disabled (lib/delivery/completer.ts) */
  parked: boolean
  /** a 429 or 503 with Retry-After: the whole queue waits until then (queues.held_until) */
  holdUntil: Date | null
  /** the call held a concurrency slot (ClaimedRow.slot): freed as the outcome is written */
  slotted: boolean
  /** the message has an ordering key: a success or a death lets the key's next message go */
  ordered: boolean
  /**
   * calls a second this process made to the queue lately (completer.ts): what a throttle halves when the
   * queue has no rate of its own yet
   */
  observedRate: number
}

/**
 * Record a batch of attempts in one statement, so one commit covers many messages:
 *  - successes: sent_at set (even when another worker now holds the lease: a success is final);
 *  - failures: rescheduled, or marked failed when retries are exhausted, or parked (410 Gone), only
 *    while this very claim still holds the message (otherwise a newer claim, even our own, owns it);
 *  - one attempt-log row for every message updated;
 *  - each newly failed message gets a dead-letter row, and a copy on its queue's dead-letter queue.
 * Returns the ids that died, with their DLQ copy (kind 'dead'), and the queues a 410 Gone disabled
 * (kind 'disabled').
 */
export function complete (batch: Completion[], workerId: string): Statement {
  const r = batch.map(c => c.result)
  return {
    name: 'hookpost_complete',
    text: `WITH input AS (
        SELECT id, status, duration_ms, to_timestamp(started_ms / 1000) AS started_at, error_kind, error, response_body,
          to_timestamp(retry_ms / 1000) AS retry_at, ok, token, park, to_timestamp(hold_ms / 1000) AS hold_until,
          queue_id, slotted, observed,
          -- the endpoint asks for less without saying how long to wait: adaptive throttling
          NOT ok AND status IN (429, 502, 503, 504) AND hold_ms IS NULL AS slow_down
        FROM unnest($1::bigint[], $2::integer[], $3::integer[], $4::float8[], $5::text[], $6::text[], $7::text[],
            $8::float8[], $9::boolean[], $11::timestamptz[], $12::boolean[], $13::float8[], $14::bigint[],
            $15::boolean[], $16::float8[])
          AS d(id, status, duration_ms, started_ms, error_kind, error, response_body, retry_ms, ok, token, park,
            hold_ms, queue_id, slotted, observed)
      ),
      -- the concurrency slots these calls held, by their claim: one that a newer claim took is not freed
      freed AS (
        UPDATE hookpost.queue_slots s SET message_id = NULL, token = NULL, until = NULL
        FROM input d WHERE d.slotted AND s.queue_id = d.queue_id AND s.message_id = d.id AND s.token = d.token
      ),
      ok AS (
        UPDATE hookpost.messages m
        SET sent_at = coalesce(m.sent_at, now()), failed = false, attempts = m.attempts + 1, last_status = d.status,
            last_error = NULL, locked_by = NULL, locked_at = NULL, updated_at = now()
        FROM input d
        WHERE m.id = d.id AND d.ok
          -- a success is final, whoever holds the message now; but one already written is not written
          -- again: a flush retried after its commit landed and the answer was lost (attack round: a
          -- stalled database, one call logged as two attempts) finds its own attempt row, same start
          AND (m.sent_at IS NULL OR NOT EXISTS (SELECT 1 FROM hookpost.attempts a
            WHERE a.message_id = m.id AND a.started_at = d.started_at))
        RETURNING m.id, m.attempts, m.queue_id, m.order_key
      ),
      bad AS (
        UPDATE hookpost.messages m
        SET attempts = m.attempts + 1, retries = m.retries + (NOT d.park)::integer, last_status = d.status,
            last_error = d.error, locked_by = NULL, locked_at = NULL, updated_at = now(),
            -- parked (a 410 Gone: its queue is disabled): neither retried nor failed, its budget untouched
            run_at = CASE WHEN d.park THEN 'infinity'::timestamptz ELSE coalesce(d.retry_at, m.run_at) END,
            failed = d.retry_at IS NULL AND NOT d.park
        FROM input d
        WHERE m.id = d.id AND NOT d.ok AND m.sent_at IS NULL AND NOT m.failed
          AND m.locked_by = $10 AND m.locked_at = d.token
        RETURNING m.id, m.attempts, m.failed, m.queue_id, m.body, m.body_json, m.headers, m.last_status, m.last_error,
          m.dead_letter_of, m.order_key
      ),
      -- A message of an ordering key that was sent or died releases the key: the next one of it is due
      -- (migrations/012.do.sql). Its row is written whether or not it waits yet: a claim deciding right
      -- now that it must wait holds it locked, so this waits for that claim and then sees it waiting
      ended_keys AS (
        SELECT id, queue_id, order_key FROM ok WHERE order_key IS NOT NULL
        UNION ALL
        SELECT id, queue_id, order_key FROM bad WHERE failed AND order_key IS NOT NULL
      ),
      -- (each key's next message found first, one probe of messages_order_key_idx per key: joined inside
      -- the UPDATE, the planner may scan messages and probe every key for each row)
      next_of_keys AS MATERIALIZED (
        SELECT n.id FROM ended_keys e CROSS JOIN LATERAL (
          -- the key's first pending message: the next one, or one redriven meanwhile (which waited)
          SELECT p.id FROM hookpost.messages p WHERE p.queue_id = e.queue_id AND p.order_key = e.order_key
            AND p.id <> e.id AND p.sent_at IS NULL AND NOT p.failed ORDER BY p.id LIMIT 1
        ) n
      ),
      -- (by id = ANY: a join here may hash the whole table to find 25 rows)
      released AS (
        UPDATE hookpost.messages m
        SET key_wait = false, run_at = CASE WHEN m.key_wait THEN least(m."when", now()) ELSE m.run_at END
        WHERE m.id = ANY(ARRAY(SELECT id FROM next_of_keys)) AND m.sent_at IS NULL AND NOT m.failed
          AND m.id <> ALL($1::bigint[])
      ),
      logged AS (
        INSERT INTO hookpost.attempts
          (message_id, attempt, started_at, duration_ms, status_code, error_kind, error, response_body)
        SELECT d.id, u.attempts, d.started_at, d.duration_ms, d.status, d.error_kind, d.error, d.response_body
        FROM input d JOIN (SELECT id, attempts FROM ok UNION ALL SELECT id, attempts FROM bad) u ON u.id = d.id
      ),
      dead AS (
        SELECT b.*, q.dead_letter_queue_id FROM bad b JOIN hookpost.queues q ON q.id = b.queue_id WHERE b.failed
      ),
      -- a copy that dies is not copied again: two queues that are each other's DLQ cannot ping-pong
      to_copy AS (
        SELECT array_agg(dead_letter_queue_id) AS q, array_agg(body) AS b, array_agg(body_json) AS j,
          array_agg(headers) AS h, array_agg(id) AS o
        FROM dead WHERE dead_letter_queue_id IS NOT NULL AND dead_letter_of IS NULL
      ),
      -- through a function that inserts nothing when there is nothing to copy (migrations/005.do.sql):
      -- an INSERT of no rows here would still fire the NOTIFY trigger on every flush
      copies AS MATERIALIZED (
        SELECT c.copy_id AS id, c.copy_of AS dead_letter_of
        FROM to_copy, hookpost.dead_letter_copies(to_copy.q, to_copy.b, to_copy.j, to_copy.h, to_copy.o) c
      ),
      letters AS (
        INSERT INTO hookpost.dead_letters (message_id, queue_id, dlq_message_id, attempts, last_status, last_error)
        SELECT dead.id, dead.queue_id, copies.id, dead.attempts, dead.last_status, dead.last_error
        FROM dead LEFT JOIN copies ON copies.dead_letter_of = dead.id
        RETURNING message_id, dlq_message_id, queue_id
      ),
      -- What the batch tells of each queue, written in one UPDATE of its row (two UPDATEs of one row in a
      -- statement would keep only one) and only when something changed: a healthy queue's row is not
      -- written. Each queue's run of failed attempts (migrations/011.do.sql): the failures after the
      -- batch's last success, added to the stored run when the batch has none; a 410 is no failure of it.
      outcomes AS (
        SELECT queue_id, max(started_at) FILTER (WHERE ok) AS last_ok, max(hold_until) AS hold, bool_or(park) AS gone,
          bool_or(slow_down) AS slow_down, max(observed) AS observed, max(started_at) AS last_start
        FROM input GROUP BY queue_id
      ),
      after_ok AS (
        SELECT i.queue_id, count(*)::integer AS fails, min(i.started_at) AS first_fail
        FROM input i JOIN outcomes o ON o.queue_id = i.queue_id
        WHERE NOT i.ok AND NOT i.park AND (o.last_ok IS NULL OR i.started_at > o.last_ok)
        GROUP BY i.queue_id
      ),
      health AS (
        SELECT q.id, q.circuit_state AS was, q.circuit_failure_threshold AS threshold, o.hold,
          -- a 410 Gone disables its queue in the statement that parks the message: the two stand or fall
          -- together (attack round: a disable that failed on its own left the message to be unparked and
          -- sent again and again)
          o.gone AND NOT q.disabled AS disabling,
          CASE WHEN o.last_ok IS NULL THEN q.consecutive_failures ELSE 0 END + coalesce(a.fails, 0) AS run,
          CASE WHEN coalesce(a.fails, 0) = 0 THEN CASE WHEN o.last_ok IS NULL THEN q.failing_since END
            WHEN o.last_ok IS NULL THEN coalesce(q.failing_since, a.first_fail) ELSE a.first_fail END AS failing_since,
          -- an open circuit's attempt that started once its cooldown was over is its probe (claim holds
          -- the queue while it is in flight); one in flight since before it opened is not
          q.circuit_state = 'open' AND o.last_start >= coalesce(q.circuit_opened_at, '-infinity') +
            coalesce(q.circuit_open_ms, q.circuit_cooldown_ms) * interval '1 millisecond' AS probing,
          o.last_ok IS NOT NULL AS any_ok, coalesce(a.fails, 0) > 0 AS failed_last,
          CASE WHEN q.circuit_state = 'open' THEN least(coalesce(q.circuit_open_ms, q.circuit_cooldown_ms) * 2,
            greatest(q.circuit_cooldown_ms, 3600000)) ELSE q.circuit_cooldown_ms END AS open_ms,
          -- adaptive throttling (migrations/012.do.sql): halved at most once a second, raised on successes by
          -- a tenth of the ceiling a second, ended at the ceiling
          CASE WHEN o.slow_down THEN coalesce(q.throttle_ceiling, q.rate_limit_per_second, greatest(o.observed, 1))
            WHEN q.throttle_rate IS NOT NULL AND o.last_ok IS NOT NULL AND q.throttle_rate + q.throttle_ceiling * 0.1 *
              extract(epoch FROM now() - q.throttle_at) >= q.throttle_ceiling THEN NULL
            ELSE q.throttle_ceiling END AS ceiling,
          CASE WHEN o.slow_down AND (q.throttle_at IS NULL OR q.throttle_at < now() - interval '1 second')
              THEN greatest(${MIN_THROTTLE_RATE}, 0.5 * coalesce(q.throttle_rate,
                least(q.rate_limit_per_second, greatest(o.observed, 1))))
            WHEN o.slow_down THEN q.throttle_rate
            WHEN q.throttle_rate IS NOT NULL AND o.last_ok IS NOT NULL THEN nullif(least(q.throttle_ceiling,
              q.throttle_rate + q.throttle_ceiling * 0.1 * extract(epoch FROM now() - q.throttle_at)),
              q.throttle_ceiling)
            ELSE q.throttle_rate END AS throttle,
          q.throttle_rate AS was_throttle, q.held_until AS was_held, q.timeout_ms
        FROM outcomes o JOIN hookpost.queues q ON q.id = o.queue_id LEFT JOIN after_ok a ON a.queue_id = o.queue_id
      ),
      decided AS (
        SELECT h.*, CASE
            -- the breaker turned off (threshold 0) while the circuit was open: it closes at the probe
            WHEN h.probing AND h.threshold = 0 THEN 'close'
            WHEN h.probing AND h.failed_last THEN 'reopen'
            WHEN h.probing AND h.any_ok THEN 'close'
            WHEN h.was = 'closed' AND h.threshold > 0 AND h.run >= h.threshold THEN 'open'
          END AS turn
        FROM health h
      ),
      changed AS (
        UPDATE hookpost.queues q SET consecutive_failures = d.run, failing_since = d.failing_since,
          circuit_state = CASE WHEN d.turn = 'close' THEN 'closed' WHEN d.turn IS NOT NULL THEN 'open'
            ELSE q.circuit_state END,
          circuit_opened_at = CASE WHEN d.turn = 'close' THEN NULL WHEN d.turn IS NOT NULL THEN now()
            ELSE q.circuit_opened_at END,
          circuit_open_ms = CASE WHEN d.turn = 'close' THEN NULL WHEN d.turn IS NOT NULL THEN d.open_ms
            ELSE q.circuit_open_ms END,
          -- a Retry-After on 429 or 503, or an open circuit, holds the whole queue: claims defer its rows;
          -- a closing circuit ends the probe's hold (claim)
          -- (and a failed probe's hold replaces it)
          held_until = CASE WHEN d.turn = 'close' THEN d.hold
            WHEN d.turn = 'reopen' THEN greatest(d.hold, now() + d.open_ms * interval '1 millisecond')
            ELSE greatest(q.held_until, d.hold,
              CASE WHEN d.turn = 'open' THEN now() + d.open_ms * interval '1 millisecond' END) END,
          disabled = q.disabled OR d.disabling,
          disabled_reason = CASE WHEN d.disabling THEN '${GONE_REASON}' ELSE q.disabled_reason END,
          disabled_at = CASE WHEN d.disabling THEN now() ELSE q.disabled_at END,
          throttle_rate = d.throttle, throttle_ceiling = d.ceiling,
          throttle_at = CASE WHEN d.throttle IS DISTINCT FROM d.was_throttle THEN now() ELSE q.throttle_at END
        FROM decided d
        WHERE q.id = d.id AND (d.turn IS NOT NULL OR d.disabling OR q.consecutive_failures <> d.run
          OR q.failing_since IS DISTINCT FROM d.failing_since OR d.hold > coalesce(q.held_until, '-infinity')
          OR d.throttle IS DISTINCT FROM q.throttle_rate)
        RETURNING q.id, q.name, d.turn, d.disabling, q.consecutive_failures, q.disabled_at,
          d.was_throttle IS NULL AND d.throttle IS NOT NULL AS throttled, d.was_held, d.timeout_ms
      ),
      -- A circuit closed by its probe: the rows claims held for the probe's lease (claim) are due now.
      -- A retry due within that time goes now too: the endpoint has just answered
      -- (each closed queue's range of messages_queue_due_idx, then by id: joined, the planner may walk every
      -- row due later, of all queues, on every flush)
      held_rows AS MATERIALIZED (
        SELECT h.id FROM (SELECT id, was_held, timeout_ms FROM changed WHERE turn = 'close') c CROSS JOIN LATERAL (
          SELECT m.id FROM hookpost.messages m
          WHERE m.queue_id = c.id AND m.sent_at IS NULL AND NOT m.failed AND m.run_at > now()
            AND m.run_at <= greatest(c.was_held, now()) + (c.timeout_ms + ${LEASE_SLACK_MS}) * interval '1 millisecond'
        ) h
      ),
      unheld AS (
        UPDATE hookpost.messages m SET run_at = now()
        WHERE m.id = ANY(ARRAY(SELECT id FROM held_rows)) AND m.sent_at IS NULL AND NOT m.failed
          AND m.locked_by IS NULL AND m.run_at > now()
      )
      SELECT 'dead' AS kind, message_id AS "messageId", dlq_message_id AS "dlqMessageId", queue_id AS "queueId",
        NULL::text AS name, NULL::timestamptz AS "disabledAt", NULL::text AS turn, NULL::integer AS run
      FROM letters
      UNION ALL
      SELECT 'disabled', NULL, NULL, id, name, disabled_at, NULL, NULL FROM changed WHERE disabling
      UNION ALL
      -- a circuit that opened or closed (a failed probe that opens it again is not told again)
      SELECT 'circuit', NULL, NULL, id, name, NULL, turn, consecutive_failures FROM changed
      WHERE turn IN ('open', 'close')
      UNION ALL
      -- a queue that has just been throttled: every process claims it as limited from now on
      SELECT 'throttled', NULL, NULL, id, name, NULL, NULL, NULL FROM changed WHERE throttled`,
    values: [
      arrayLiteral(batch.map(c => c.id)), arrayLiteral(r.map(x => x.status)), arrayLiteral(r.map(x => x.durationMs)),
      arrayLiteral(r.map(x => x.startedAt.getTime())), arrayLiteral(r.map(x => x.errorKind)),
      arrayLiteral(r.map(x => x.error)),
      // text cannot hold NUL: a response body that has one is logged without it
      // eslint-disable-next-line no-control-regex -- NUL is the very character to remove
      arrayLiteral(r.map(x => x.responseBody?.replace(/\u0000/g, '') ?? null)),
      arrayLiteral(batch.map(c => c.retryAt?.getTime() ?? null)), arrayLiteral(r.map(x => x.ok)), workerId,
      arrayLiteral(batch.map(c => c.claimToken)), arrayLiteral(batch.map(c => c.parked)),
      arrayLiteral(batch.map(c => c.holdUntil?.getTime() ?? null)), arrayLiteral(batch.map(c => c.queueId)),
      arrayLiteral(batch.map(c => c.slotted)), arrayLiteral(batch.map(c => c.observedRate))
    ]
  }
}
