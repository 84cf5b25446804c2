import pg from 'pg'
import { claim, complete, type ClaimResultRow } from '../lib/delivery/sql.js'
import { migrate } from '../lib/db/migrate.js'
const admin = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/test' })
await admin.connect()
await admin.query('DROP DATABASE IF EXISTS hp_explain')
await admin.query('CREATE DATABASE hp_explain')
await admin.end()
const url = 'postgres://postgres@127.0.0.1:5432/hp_explain'
const pool = new pg.Pool({ connectionString: url, options: '-c enable_seqscan=off -c max_parallel_workers_per_gather=0' })
await migrate(pool)
const { rows: [q] } = await pool.query("INSERT INTO hookpost.queues (name, callback_url) VALUES ('q', 'http://127.0.0.1:9') RETURNING id")
await pool.query(`INSERT INTO hookpost.messages (queue_id, body, ordering_key)
    SELECT $1, k || ':' || i, 'k' || k FROM generate_series(1, 15) i, generate_series(1, 40) k ORDER BY i, k`, [q.id])
const { rows } = await pool.query<ClaimResultRow>(claim(200, 60000, 'w', []))
const sent = rows.filter(r => !r.parked)
console.log('claimed', sent.length)
const st = complete(sent.slice(0, 25).map(r => ({ id: r.id, claimToken: r.claimToken, queueId: r.queueId, attempt: 1, when: new Date(), retryAt: null, parked: false, holdUntil: null, slotted: false, ordered: true, observedRate: 1,
  result: { ok: true, status: 200, errorKind: null, error: null, responseBody: '', retryAfter: undefined, startedAt: new Date(), durationMs: 1 } })), 'w')
const t0 = Date.now()
const { rows: plan } = await pool.query({ text: 'EXPLAIN (ANALYZE, COSTS OFF) ' + st.text, values: st.values })
console.log(Date.now() - t0, 'ms')
console.log(plan.map(r => r['QUERY PLAN']).join('\n'))
await pool.end()
