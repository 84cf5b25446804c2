// Prometheus metrics: one prom-client registry per app (never the global one, so several apps in one
// process do not clash). Counters and histograms move as things happen; the backlog, leader and
// in-flight gauges are computed when /metrics is scraped.
import type { FastifyInstance } from 'fastify'
import type { Pool } from 'pg'
import type { Logger } from 'pino'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { Statement } from './delivery/sql.js'
import type { DeliveryEvent, Worker } from './delivery/worker.js'
import type { OnEnqueued } from './store/messages.js'
import type { RetentionKind } from './services/retention.js'
import type { OperationalEvent } from './services/operational-events.js'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics
  }
}

/** Where a message came from: the API (REST or GraphQL), a cron tick, or a dead-letter copy. */
export type EnqueueSource = 'api' | 'cron' | 'dead_letter'

// from "when" to success: retries put much of it in minutes and hours, so the buckets reach 6 h
const LATENCY_BUCKETS_S = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600]
// one HTTP call: the default queue timeout is 30 s
const ATTEMPT_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
const HTTP_BUCKETS_S = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
// a scrape must answer even when the database does not
const SCRAPE_QUERY_TIMEOUT_MS = 2000

/**
 * Due backlog: pending messages whose time has come, and how long the longest-waiting one has been
 * due. Both read only the partial indexes messages_due_idx and messages_lane_idx (the limited lane,
 * migrations/013.do.sql), each for its own rows; claimed messages have run_at in the future (their
 * lease), so they are not counted.
 */
export function backlogStatement (): Statement {
  return {
    name: 'hookpost_metrics_backlog',
    text: `SELECT sum(n)::bigint AS due, coalesce(extract(epoch FROM now() - min(oldest)), 0)::float8 AS "oldestSeconds"
      FROM (
        SELECT count(*) AS n, min(run_at) AS oldest FROM hookpost.messages
        WHERE sent_at IS NULL AND NOT failed AND NOT limited AND run_at <= now()
        UNION ALL
        SELECT count(*), min(run_at) FROM hookpost.messages
        WHERE sent_at IS NULL AND NOT failed AND limited AND run_at <= now()
      ) ranges`,
    values: []
  }
}

/** The queues of dead-letter copies, counted as enqueued there. */
export function copiesByQueueStatement (ids: number[]): Statement {
  return {
    text: 'SELECT queue_id AS "queueId", count(*) AS n FROM hookpost.messages WHERE id = ANY($1::bigint[]) ' +
      'GROUP BY queue_id',
    values: [ids]
  }
}

export class Metrics {
  readonly registry = new Registry()
  private readonly enqueued: Counter<'queue' | 'source'>
  private readonly delivered: Counter<'queue'>
  private readonly failures: Counter<'queue'>
  private readonly deadLettered: Counter<'queue'>
  private readonly latency: Histogram<'queue'>
  private readonly attemptDuration: Histogram<'queue'>
  private readonly backlog: Gauge
  private readonly oldestDue: Gauge
  private readonly leader: Gauge
  private readonly inFlight: Gauge
  private readonly retained: Counter<'kind'>
  private readonly operational: Counter<'type'>
  private readonly httpRequests: Counter<'method' | 'route' | 'status_code'>
  private readonly httpDuration: Histogram<'method' | 'route' | 'status_code'>

  /** for the domain functions: counts what REST and GraphQL enqueue */
  readonly enqueuedByApi: OnEnqueued = (queueId, n) => { this.countEnqueued(queueId, n, 'api') }
  /** for the cron scheduler: counts the tick messages it creates */
  readonly enqueuedByCron: OnEnqueued = (queueId, n) => { this.countEnqueued(queueId, n, 'cron') }

  constructor () {
    const registers = [this.registry]
    this.enqueued = new Counter({
      name: 'hookpost_messages_enqueued_total',
      help: 'Messages hookpost created (API, cron ticks, dead-letter copies), by queue and source',
      labelNames: ['queue', 'source'],
      registers
    })
    this.delivered = new Counter({
      name: 'hookpost_messages_delivered_total',
      help: 'Messages delivered (a 2xx answer), by queue',
      labelNames: ['queue'],
      registers
    })
    this.failures = new Counter({
      name: 'hookpost_delivery_failures_total',
      help: 'Failed delivery attempts, retried or not, by queue',
      labelNames: ['queue'],
      registers
    })
    this.deadLettered = new Counter({
      name: 'hookpost_messages_dead_lettered_total',
      help: 'Messages whose retries ran out, by queue',
      labelNames: ['queue'],
      registers
    })
    this.latency = new Histogram({
      name: 'hookpost_delivery_latency_seconds',
      help: 'From a message\'s "when" to its successful delivery, retries included',
      labelNames: ['queue'],
      buckets: LATENCY_BUCKETS_S,
      registers
    })
    this.attemptDuration = new Histogram({
      name: 'hookpost_attempt_duration_seconds',
      help: 'Duration of one delivery attempt (the HTTP call), by queue',
      labelNames: ['queue'],
      buckets: ATTEMPT_BUCKETS_S,
      registers
    })
    this.backlog = new Gauge({
      name: 'hookpost_backlog_due_messages',
      help: 'Pending messages that are due and not claimed (NaN: the database did not answer)',
      registers
    })
    this.oldestDue = new Gauge({
      name: 'hookpost_backlog_oldest_due_age_seconds',
      help: 'How long the longest-waiting due message has been due (0: none)',
      registers
    })
    this.leader = new Gauge({ name: 'hookpost_leader', help: '1 while this process holds the leader lock', registers })
    this.inFlight = new Gauge({
      name: 'hookpost_deliveries_in_flight',
      help: 'Delivery calls in flight in this process',
      registers
    })
    this.operational = new Counter({
      name: 'hookpost_operational_events_total',
      help: 'hookpost\'s own events published: hookpost.queue.disabled, .circuit_opened, .circuit_closed, ' +
        'hookpost.message.dead_lettered',
      labelNames: ['type'],
      registers
    })
    this.retained = new Counter({
      name: 'hookpost_retention_deleted_total',
      help: 'Rows deleted by retention: delivered messages, dead messages, events',
      labelNames: ['kind'],
      registers
    })
    this.httpRequests = new Counter({
      name: 'hookpost_http_requests_total',
      help: 'HTTP requests served, by method, route pattern and status code',
      labelNames: ['method', 'route', 'status_code'],
      registers
    })
    this.httpDuration = new Histogram({
      name: 'hookpost_http_request_duration_seconds',
      help: 'HTTP request duration, by method, route pattern and status code',
      labelNames: ['method', 'route', 'status_code'],
      buckets: HTTP_BUCKETS_S,
      registers
    })
    collectDefaultMetrics({ register: this.registry })
  }

  private countEnqueued (queueId: number, n: number, source: EnqueueSource): void {
    if (n > 0) this.enqueued.inc({ queue: String(queueId), source }, n)
  }

  operationalEvents (type: OperationalEvent, n: number): void {
    if (n > 0) this.operational.inc({ type }, n)
  }

  retentionDeleted (kind: RetentionKind, n: number): void {
    if (n > 0) this.retained.inc({ kind }, n)
  }

  /** Count the worker's outcomes. Dead-letter copies are looked up once per recorded batch. */
  watch (worker: Worker, pool: Pool, log: Logger): void {
    // per-queue children, looked up once: labels() hashes its argument on every call, thousands a second
    const perQueue = new Map<number, {
      delivered: ReturnType<Counter['labels']>
      failures: ReturnType<Counter['labels']>
      duration: ReturnType<Histogram['labels']>
      latency: ReturnType<Histogram['labels']>
    }>()
    const of = (queueId: number) => {
      let c = perQueue.get(queueId)
      if (c === undefined) {
        const queue = String(queueId)
        c = {
          delivered: this.delivered.labels({ queue }),
          failures: this.failures.labels({ queue }),
          duration: this.attemptDuration.labels({ queue }),
          latency: this.latency.labels({ queue })
        }
        perQueue.set(queueId, c)
      }
      return c
    }
    worker.on('delivered', (e: DeliveryEvent) => {
      const c = of(e.queueId)
      c.delivered.inc()
      c.duration.observe(e.result.durationMs / 1000)
      // clocks: "when" is the database's now(); never report a negative latency. A "when" JS cannot
      // count with (±infinity through plain SQL, before 010 refused it) has no latency to report
      const when = e.when.getTime()
      if (Number.isFinite(when)) c.latency.observe(Math.max(0, Date.now() - when) / 1000)
    })
    worker.on('failed', (e: DeliveryEvent) => {
      const c = of(e.queueId)
      c.failures.inc()
      c.duration.observe(e.result.durationMs / 1000)
    })
    let copies: number[] = []
    worker.on('dead', (d: { queueId: number, dlqMessageId: number | null }) => {
      this.deadLettered.inc({ queue: String(d.queueId) })
      if (d.dlqMessageId !== null) copies.push(d.dlqMessageId)
    })
    // 'flushed' follows the 'dead' events of its batch: one query for the copies' queues
    worker.on('flushed', () => {
      if (copies.length === 0) return
      const ids = copies
      copies = []
      pool.query<{ queueId: number, n: number }>(copiesByQueueStatement(ids))
        .then(({ rows }) => { for (const r of rows) this.countEnqueued(r.queueId, r.n, 'dead_letter') })
        .catch((err) => log.warn({ err, count: ids.length }, 'counting dead-letter copies for the metrics failed'))
    })
  }

  /** Count one HTTP request; the route is the pattern (/messages/:id), never the raw URL. */
  request (method: string, route: string | undefined, statusCode: number, ms: number): void {
    const labels = { method, route: route ?? 'unmatched', status_code: String(statusCode) }
    this.httpRequests.inc(labels)
    this.httpDuration.observe(labels, ms / 1000)
  }

  /** The exposition text, with the scrape-time gauges filled in first. */
  async scrape (pool: Pool, state: { leader: boolean, inFlight: number }, log: Logger): Promise<string> {
    this.leader.set(state.leader ? 1 : 0)
    this.inFlight.set(state.inFlight)
    let timer: NodeJS.Timeout | undefined
    try {
      const { rows } = await Promise.race([
        pool.query<{ due: number, oldestSeconds: number }>(backlogStatement()),
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => reject(new Error('timeout')), SCRAPE_QUERY_TIMEOUT_MS)
        })
      ])
      this.backlog.set(rows[0]?.due ?? 0)
      this.oldestDue.set(Math.max(0, rows[0]?.oldestSeconds ?? 0))
    } catch (err) {
      // NaN rather than a stale or zero value: an alert must not read "no backlog" from an outage
      this.backlog.set(NaN)
      this.oldestDue.set(NaN)
      log.warn({ err: { message: (err as Error).message } }, 'metrics: the backlog query failed')
    } finally {
      clearTimeout(timer)
    }
    return await this.registry.metrics()
  }
}

/** Decorates app.metrics and times every request. Registered before the routes so it sees them all. */
export async function metricsPlugin (app: FastifyInstance): Promise<void> {
  const metrics = new Metrics()
  app.decorate('metrics', metrics)
  app.addHook('onResponse', async (req, reply) => {
    metrics.request(req.method, req.routeOptions.url, reply.statusCode, reply.elapsedTime)
  })
  app.addHook('onClose', async () => { metrics.registry.clear() })
}
