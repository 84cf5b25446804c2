// The delivery path's statements never scan messages sequentially nor use parallel workers, however
// stale the statistics: each is EXPLAINed in the engine's session (DELIVERY_SESSION_OPTIONS) on 200k
// rows, right after a mass update that made a far-future backlog due, before any ANALYZE, with both a
// custom and a generic plan (named statements are prepared, and go generic after five runs).
import t from 'tap'
import pg from 'pg'
import { arrayLiteral } from '../lib/db/arrays.js'
import {
  claim, claimLimited, complete, DELIVERY_SESSION_OPTIONS, freeOrphanSlots, laneQueues, nextDue, nextDueBeyond,
  reapDeadClaims, release, unholdClosedCircuit, unlockedClaimOwners, unparkStragglers, wakeStrandedKeys, type Completion
} from '../lib/delivery/sql.js'
import { backlogStatement, copiesByQueueStatement } from '../lib/metrics.js'
import { deleteDead, deleteDelivered, deleteEvents } from '../lib/services/retention.js'
import type { Statement } from '../lib/db/query.js'
import { testDatabase } from './helpers.js'
import { completion, fail, ok } from './engine-fakes.js'

interface PlanNode {
  'Node Type': string
  'Relation Name'?: string
  'Parallel Aware'?: boolean
  'Index Cond'?: string
  'Index Name'?: string
  Plans?: PlanNode[]
}

/** every node of a plan, depth first */
function nodes (n: PlanNode): PlanNode[] {
  return [n, ...(n.Plans ?? []).flatMap(nodes)]
}

/** a value as a literal for EXECUTE (PREPARE infers each parameter's type from the statement) */
function literal (c: pg.Client, v: unknown): string {
  if (v === null || v === undefined) return 'NULL'
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  if (Array.isArray(v)) return c.escapeLiteral(arrayLiteral(v))
  if (v instanceof Date) return c.escapeLiteral(v.toISOString())
  return c.escapeLiteral(String(v))
}

t.test('no sequential scan of messages nor parallel plan in the delivery path, on stale statistics', async (t) => {
  const url = await testDatabase(t)
  const c = new pg.Client({ connectionString: url, options: DELIVERY_SESSION_OPTIONS })
  await c.connect()
  t.teardown(async () => { await c.end() })
  // the setup runs as any session would: the engine's settings only for what is EXPLAINed
  await c.query('SET enable_seqscan = on')

  const { rows: [big, small] } = await c.query(`INSERT INTO hookpost.queues (name, callback_url)
    VALUES ('big', 'http://127.0.0.1:9/b'), ('small', 'http://127.0.0.1:9/s') RETURNING id`)
  // statistics taken while autovacuum is kept away: they stay as stale as after a real mass update
  for (const table of ['messages', 'attempts', 'dead_letters', 'events']) {
    await c.query(`ALTER TABLE hookpost.${table} SET (autovacuum_enabled = false)`)
  }
  // 150k pending far in the future, all on one queue (the hardest case: skipping it, the statistics say
  // no row is left), 45k delivered a week ago, 5k dead a week ago
  await c.query(`INSERT INTO hookpost.messages (queue_id, body, "when")
    SELECT $1, 'x', '2999-01-01' FROM generate_series(1, 150000)`, [big.id])
  await c.query(`INSERT INTO hookpost.messages (queue_id, body, "when", sent_at, attempts)
    SELECT $1, 'x', now() - interval '8 days', now() - interval '8 days', 1 FROM generate_series(1, 45000)`, [small.id])
  const { rows: dead } = await c.query(`INSERT INTO hookpost.messages (queue_id, body, "when", failed, attempts)
    SELECT $1, 'x', now() - interval '8 days', true, 1 FROM generate_series(1, 5000) RETURNING id`, [big.id])
  await c.query(`INSERT INTO hookpost.dead_letters (message_id, queue_id, attempts, created_at)
    SELECT id, $1, 1, now() - interval '8 days' FROM unnest($2::bigint[]) id`, [big.id, dead.map(r => r.id)])
  await c.query(`INSERT INTO hookpost.attempts (message_id, attempt, started_at, duration_ms, status_code)
    SELECT id, 1, now() - interval '8 days', 1, 200 FROM hookpost.messages WHERE sent_at IS NOT NULL`)
  // a paused queue with 10k parked messages (migrations/011.do.sql)
  const { rows: [paused] } = await c.query(`INSERT INTO hookpost.queues (name, callback_url, paused)
    VALUES ('paused', 'http://127.0.0.1:9/p', true) RETURNING id`)
  await c.query(`INSERT INTO hookpost.messages (queue_id, body, "when")
    SELECT $1, 'x', now() FROM generate_series(1, 10000)`, [paused.id])
  await c.query('UPDATE hookpost.messages SET run_at = \'infinity\' WHERE queue_id = $1', [paused.id])
  // 20k events a week old, half of them still with a message of theirs (retention keeps those)
  await c.query(`INSERT INTO hookpost.events (type, payload, created_at)
    SELECT 'order.created', '{}', now() - interval '8 days' FROM generate_series(1, 20000)`)
  await c.query(`INSERT INTO hookpost.messages (queue_id, body, "when", sent_at, attempts, event_id, event_type)
    SELECT $1, 'x', now() - interval '1 day', now() - interval '1 day', 1, id, type FROM hookpost.events WHERE id % 2 = 0`,
  [small.id])
  await c.query('ANALYZE hookpost.messages, hookpost.attempts, hookpost.dead_letters, hookpost.events')
  // after the statistics (migrations/012.do.sql): a rate- and concurrency-limited queue with 20k
  // messages, and 20k of 1,000 ordering keys on one queue, the later 19k of them waiting for their key
  const { rows: [limited, keyed] } = await c.query(`INSERT INTO hookpost.queues (name, callback_url, rate_limit_per_second, max_concurrency)
    VALUES ('limited', 'http://127.0.0.1:9/l', 50, 20), ('keyed', 'http://127.0.0.1:9/k', NULL, NULL) RETURNING id`)
  await c.query(`INSERT INTO hookpost.messages (queue_id, body, "when")
    SELECT $1, 'x', '2999-01-01' FROM generate_series(1, 20000)`, [limited.id])
  await c.query(`INSERT INTO hookpost.messages (queue_id, body, "when", ordering_key)
    SELECT $1, 'x', '2999-01-01', 'k' || k FROM generate_series(1, 20) i, generate_series(1, 1000) k`, [keyed.id])
  // every message but the first of its key (by id), numbered in one pass: the same rows as a correlated
  // EXISTS (an earlier message of the queue with the key), which took seconds on the stale statistics
  await c.query(`UPDATE hookpost.messages m SET run_at = 'infinity', key_wait = true
    FROM (SELECT id, row_number() OVER (PARTITION BY order_key ORDER BY id) AS n FROM hookpost.messages
      WHERE queue_id = $1 AND order_key IS NOT NULL) later
    WHERE m.id = later.id AND later.n > 1`,
  [keyed.id])
  // the backlog falls due at once; some of it is claimed, as while a worker drains it
  await c.query('UPDATE hookpost.messages SET run_at = now() WHERE sent_at IS NULL AND NOT failed AND NOT key_wait')
  const { rows: heads } = await c.query(`UPDATE hookpost.messages SET run_at = now() + interval '1 minute',
    locked_by = 'w', locked_at = now() WHERE id IN (SELECT id FROM hookpost.messages WHERE sent_at IS NULL AND NOT failed
    AND queue_id = $1 AND NOT key_wait LIMIT 200) RETURNING id, locked_at::text AS token`, [keyed.id])
  const { rows: claimed } = await c.query(`UPDATE hookpost.messages SET run_at = now() + interval '1 minute',
    locked_by = 'w', locked_at = now() WHERE id IN (SELECT id FROM hookpost.messages WHERE sent_at IS NULL AND NOT failed
    AND queue_id = $1 LIMIT 200) RETURNING id, locked_at::text AS token`, [big.id])
  await c.query('RESET enable_seqscan')

  const outcome = (id: number, token: string, success: boolean): Completion =>
    completion(id, token, big.id, success ? ok() : fail(500), { retryAt: success ? null : new Date(Date.now() + 1000) })
  const statements: Record<string, Statement> = {
    claim: claim(200, 60_000, 'w', [], undefined, 64 << 20, 24 << 20),
    'claim, a saturated queue skipped': claim(200, 60_000, 'w', [big.id], undefined, 64 << 20, 24 << 20),
    'claim, skipping, recent rows only': claim(200, 60_000, 'w', [big.id], 5000, 64 << 20, 24 << 20),
    'next due': nextDue(),
    'next due beyond a saturated queue': nextDueBeyond([big.id]),
    'reaper, who holds claims without a lock': unlockedClaimOwners(60_000),
    'reaper, unparking stragglers': unparkStragglers(),
    'a closed circuit\'s held rows due again': unholdClosedCircuit(big.id),
    reaper: reapDeadClaims(['w', 'gone'], 60_000, 10_000),
    release: release(claimed.slice(0, 50).map(r => ({ id: r.id, claimToken: r.token, queueId: big.id, slot: null })), 'w'),
    flush: complete(claimed.slice(50, 250).map((r, i) => outcome(r.id, r.token, i % 10 !== 0)), 'w'),
    'flush, ordering keys let go': complete(heads.map(r => ({ ...outcome(r.id, r.token, true), queueId: keyed.id, ordered: true })), 'w'),
    'claim, limited queues': claimLimited([limited.id, keyed.id], [50, 50], 60_000, 'w'),
    'queues in the limited lane': laneQueues(),
    'reaper, stranded ordering keys': wakeStrandedKeys(),
    'reaper, orphan slots': freeOrphanSlots(),
    'retention, delivered': deleteDelivered(168, 500),
    'retention, dead': deleteDead(168, 500),
    'retention, events': deleteEvents(168, 720, 50),
    'metrics, backlog': backlogStatement(),
    'metrics, dead-letter copies': copiesByQueueStatement(claimed.slice(0, 10).map(r => r.id))
  }
  let n = 0
  for (const [name, s] of Object.entries(statements)) {
    const prepared = `p${n++}`
    await c.query(`PREPARE ${prepared} AS ${s.text}`)
    const args = s.values !== undefined && s.values.length > 0 ? `(${s.values.map(v => literal(c, v)).join(', ')})` : ''
    for (const mode of ['force_custom_plan', 'force_generic_plan']) {
      await c.query(`SET plan_cache_mode = ${mode}`)
      const { rows } = await c.query(`EXPLAIN (FORMAT JSON) EXECUTE ${prepared}${args}`)
      const all = nodes(rows[0]['QUERY PLAN'][0].Plan)
      const seq = all.filter(x => x['Node Type'] === 'Seq Scan' && ['messages', 'attempts', 'dead_letters', 'events'].includes(x['Relation Name'] ?? ''))
      const parallel = all.filter(x => x['Parallel Aware'] === true || /^Gather/.test(x['Node Type']))
      t.same({ seq: seq.map(x => x['Relation Name']), parallel: parallel.map(x => x['Node Type']) }, { seq: [], parallel: [] },
        `${name} (${mode.replace('force_', '').replace('_plan', '')}): no sequential scan, no parallel worker`)
      // a flush touches the messages of its batch, by id, and its keys' next ones: never a range of
      // rows by due time nor a whole table hashed (attack round: both were planned on a small table)
      if (name.startsWith('flush')) {
        const cond = (x: PlanNode): string => x['Index Cond'] ?? (x as { 'Recheck Cond'?: string })['Recheck Cond'] ?? ''
        const wide = all.filter(x => x['Relation Name'] === 'messages' && /Scan/.test(x['Node Type']) &&
          !/\bid\b|order_key/.test(cond(x)))
        t.same(wide.map(x => `${x['Node Type']} ${x['Index Name'] ?? ''} ${cond(x)}`), [],
          `${name} (${mode}): messages by id or key only`)
      }
      // the plain claim's range and the limited lane's are each their own partial index (migrations/013.do.sql);
      // a skipping claim's probe of each other queue (one row each, sql.claim) is no walk of a range
      const walks = all.filter(x => x['Relation Name'] === 'messages' && /run_at|queue_id/.test(x['Index Cond'] ?? '') &&
        x['Index Name'] === 'messages_queue_due_idx' && !/queue_id = q\.id/.test(x['Index Cond'] ?? ''))
      if (name.startsWith('claim') || name.startsWith('next due') || name.includes('lane')) {
        t.same(walks.map(x => x['Index Cond']), [], `${name} (${mode}): the range of its lane`)
      }
      // an ordering key is an index condition, never a filter over a queue's rows (it walked all of them)
      const keyFilters = all.filter(x => x['Relation Name'] === 'messages' && /order_key/.test(String((x as any).Filter ?? '')))
      t.same(keyFilters.map(x => x['Index Name'] ?? x['Node Type']), [], `${name} (${mode}): ordering keys through their index`)
    }
  }

  // no JIT in the delivery session: a claim over a large backlog with fresh statistics was estimated
  // above jit_above_cost and compiled on every run (70 ms for a claim that read nothing)
  t.equal((await c.query('SHOW jit')).rows[0].jit, 'off', 'the delivery session never compiles its statements')

  // A claim that skips every queue with due rows asks each other queue once, and never walks the due
  // index: with one saturated queue and a backlog of 100k, that walk took 60-330 ms every pollMs, during
  // which its calls ran dry
  const { rows: dueQueues } = await c.query(`SELECT DISTINCT queue_id AS id FROM hookpost.messages
    WHERE sent_at IS NULL AND NOT failed AND run_at <= now()`)
  const skipAll = claim(200, 60_000, 'w', dueQueues.map(r => Number(r.id)), undefined, 64 << 20, 24 << 20)
  await c.query('SET plan_cache_mode = auto')
  await c.query('BEGIN')
  const { rows: analyzed } = await c.query({
    text: `EXPLAIN (ANALYZE, FORMAT JSON) ${skipAll.text}`, values: skipAll.values as unknown[]
  })
  await c.query('ROLLBACK')
  const scans = nodes(analyzed[0]['QUERY PLAN'][0].Plan as PlanNode) as Array<PlanNode & { 'Actual Loops': number }>
  const walked = scans.filter(x => x['Relation Name'] === 'messages' && /Scan/.test(x['Node Type']) && x['Actual Loops'] > 0 &&
    !/queue_id = q\.id/.test(x['Index Cond'] ?? ''))
  t.same(walked.map(x => `${x['Node Type']} ${x['Index Name'] ?? ''}`), [],
    `nothing else due (${dueQueues.length} queues skipped): no walk of messages, only a probe per queue`)

  // the trigger that deletes a batch's attempts (migrations/004, settings from 008): its transition
  // table stood in for by a table of 500 ids, planned under the function's own settings
  await c.query('SET plan_cache_mode = auto')
  const { rows: [fn] } = await c.query("SELECT proconfig FROM pg_proc WHERE proname = 'messages_after_delete'")
  t.ok(Array.isArray(fn.proconfig) && fn.proconfig.length > 0, `the trigger function has its own settings: ${fn.proconfig}`)
  await c.query('CREATE TEMP TABLE deleted AS SELECT id FROM hookpost.messages WHERE sent_at IS NOT NULL LIMIT 500')
  for (const setting of fn.proconfig as string[]) {
    const [name, value] = setting.split('=')
    await c.query(`SET ${name} = ${value}`)
  }
  const { rows } = await c.query('EXPLAIN (FORMAT JSON) DELETE FROM hookpost.attempts a USING deleted d WHERE a.message_id = d.id')
  const onAttempts = nodes(rows[0]['QUERY PLAN'][0].Plan)
    .filter(x => x['Relation Name'] === 'attempts' && /Scan/.test(x['Node Type']))
  t.ok(onAttempts.length > 0 && onAttempts.every(x => /Index/.test(x['Node Type']) && x['Index Cond'] !== undefined),
    `attempts read by index lookups only: ${onAttempts.map(x => x['Node Type']).join(', ')}`)
})

t.test('a publish finds its subscribers through the GIN index, with no pending list to scan', async (t) => {
  const url = await testDatabase(t)
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  t.teardown(async () => { await c.end() })
  const { rows: [idx] } = await c.query("SELECT reloptions FROM pg_class WHERE relname = 'queues_event_types_idx'")
  t.same(idx.reloptions, ['fastupdate=off'], 'patterns go into the index when a queue is written')
  // 20,000 queues subscribed to other types, just created and analysed; 10 to the published one
  await c.query(`INSERT INTO hookpost.queues (name, callback_url, event_types)
    SELECT 'q' || g, 'http://127.0.0.1:9/', ARRAY['other.' || g || '.*'] FROM generate_series(1, 20000) g`)
  await c.query(`INSERT INTO hookpost.queues (name, callback_url, event_types, filter)
    SELECT 'm' || g, 'http://127.0.0.1:9/', ARRAY['order.*'], '{"a": 1}' FROM generate_series(1, 10) g`)
  await c.query('ANALYZE hookpost.queues')
  // publish_event's match, as migrations/010.do.sql has it
  const { rows } = await c.query(`EXPLAIN (ANALYZE, FORMAT JSON) SELECT q.id FROM hookpost.queues q
    WHERE q.event_types && hookpost.event_type_patterns('order.created') AND (q.filter IS NULL OR '{"a": 1}'::jsonb @> q.filter)`)
  const plan = rows[0]['QUERY PLAN'][0]
  const all = nodes(plan.Plan)
  t.ok(all.some(n => n['Node Type'] === 'Bitmap Index Scan' && n['Index Name'] === 'queues_event_types_idx'), 'the GIN index')
  t.equal(plan.Plan['Actual Rows'], 10)
  const { rows: [pub] } = await c.query("SELECT * FROM hookpost.publish_event('order.created', '{\"a\": 1}', '{}', now(), null)")
  t.equal(pub.endpoints, 10)
})
