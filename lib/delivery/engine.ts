// Wires the delivery engine into the app: the leader election, the worker, the cron scheduler and retention.
// The worker runs on the leader (or on every process with allProcessesDeliver); crons and retention on the leader.
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { CronScheduler } from '../cron.js'
import { createPool } from '../db/pool.js'
import { CHANNELS } from '../db/listener.js'
import { Leader } from '../leader.js'
import { Retention } from '../retention.js'
import { createDispatcher } from './sender.js'
import * as sql from './sql.js'
import { Worker } from './worker.js'

export interface Delivery {
  worker: Worker
  crons: CronScheduler
  retention: Retention
  leader: Leader
  /** whether delivery events are being published: some process has GraphQL subscribers */
  subscribersSeen: () => boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    delivery: Delivery | null
  }
}

// claims and outcomes on 3 connections: one claiming, one flushing, one spare for releases and events
const WORKER_POOL_SIZE = 3
const REAP_INTERVAL_MS = 2000
const SUBSCRIBERS_CHECK_MS = 1000
// a NOTIFY payload must stay under 8000 bytes
const EVENTS_PAYLOAD_MAX = 7000

export async function deliveryPlugin (app: FastifyInstance): Promise<void> {
  const { config, listener, workerId } = app
  const h = config.hooks
  if (!h.enabled) {
    app.decorate('delivery', null)
    return
  }
  const log = app.log.child({ component: 'delivery' }) as unknown as Logger
  // Delivery state is written with synchronous_commit off: a crash can only forget that a message
  // was sent or claimed, and then it is sent again (at-least-once). Enqueues keep full durability.
  const pool = createPool(config.db.connectionString!, { max: WORKER_POOL_SIZE, log, statementTimeoutMs: config.db.statementTimeoutMs, name: 'hookpost-worker', options: '-c synchronous_commit=off' })
  // config.hooks carries the SSRF policy (allowPrivateNetworks, ssrfAllow)
  const dispatcher = createDispatcher(h)
  const worker = new Worker({
    pool, dispatcher, workerId, log,
    concurrency: h.concurrency,
    queueConcurrency: h.queueConcurrency,
    batchSize: h.batchSize,
    bufferBytes: h.bufferBytes,
    leaseMs: h.leaseMs,
    pollMs: h.pollMs,
    canClaim: () => listener.connected
  })
  // cron ticks are materialised by the leader only, on the main (fully durable) pool
  const crons = new CronScheduler(app.pool, log, app.metrics.enqueuedByCron)
  const retention = new Retention(app.pool, { ...h.retention, onDeleted: (kind, n) => app.metrics.retentionDeleted(kind, n) }, log)
  app.metrics.watch(worker, pool, log)
  const leader = new Leader(config.db.connectionString!, h.lock, h.leaderPollMs, log)

  listener.on('notification', (channel: string) => {
    if (channel === CHANNELS.messages) worker.notify()
    else if (channel === CHANNELS.crons) crons.notify()
  })
  // notifications sent while the connection was down are lost: look again
  listener.on('reconnect', () => { worker.notify(); crons.notify() })

  // outcomes, once recorded, are announced to every process (GraphQL subscriptions)
  // ...but only while some process has subscribers (it holds the shared lock), checked once a second.
  // The check runs for the life of the process, not of a leadership: whoever delivers needs it.
  let subscribers = false
  const checkSubscribers = setInterval(() => {
    pool.query(sql.subscribersExist()).then(r => { subscribers = r.rows[0]?.yes === true }, () => {})
  }, SUBSCRIBERS_CHECK_MS)
  checkSubscribers.unref()
  worker.on('recorded', (batch: sql.Completion[]) => {
    // this process's own subscribers are known at once, others' within a check
    if (!subscribers && !listener.hasSubscribers) return
    const events = batch.map(c => [c.id, c.queueId, c.attempt, c.result.ok ? 1 : 0, c.result.status, c.retryAt !== null ? 1 : 0])
    for (const chunk of chunks(events, EVENTS_PAYLOAD_MAX)) {
      pool.query('SELECT pg_notify($1, $2)', [CHANNELS.events, chunk]).catch((err) => log.warn({ err }, 'publishing delivery events failed'))
    }
  })

  // start and stop in order, never overlapping
  let transition: Promise<void> = Promise.resolve()
  const then = (fn: () => unknown): void => { transition = transition.then(async () => { await fn() }) }

  // the leader hands back the claims of dead processes, at once on election and then periodically
  let reapTimer: NodeJS.Timeout | undefined
  const reap = async (): Promise<void> => {
    try {
      const { rowCount } = await pool.query(sql.reapDeadClaims(h.leaseMs))
      if (rowCount !== null && rowCount > 0) {
        log.warn({ count: rowCount }, 'handed back the claims of a process that died')
        worker.notify()
      }
    } catch (err) {
      log.warn({ err }, 'reaping dead claims failed')
    }
  }

  leader.on('elected', () => {
    if (!h.allProcessesDeliver) then(() => worker.start())
    then(() => crons.start())
    then(() => retention.start())
    void reap()
    reapTimer = setInterval(() => { void reap() }, REAP_INTERVAL_MS)
    reapTimer.unref()
  })
  leader.on('demoted', () => {
    clearInterval(reapTimer)
    then(async () => await crons.stop())
    then(async () => await retention.stop())
    if (!h.allProcessesDeliver) then(async () => await worker.stop(h.shutdownGraceMs))
  })

  app.decorate('delivery', { worker, crons, retention, leader, subscribersSeen: () => subscribers || listener.hasSubscribers })

  app.addHook('onReady', async () => {
    if (h.allProcessesDeliver) then(() => worker.start())
    leader.start()
    log.info({ workerId, concurrency: h.concurrency, allProcessesDeliver: h.allProcessesDeliver }, 'delivery engine started')
  })

  // preClose: the engine drains before any onClose hook ends the pools it uses
  app.addHook('preClose', async () => {
    clearInterval(reapTimer)
    clearInterval(checkSubscribers)
    then(async () => await crons.stop())
    then(async () => await retention.stop())
    // stop claiming, hand leadership over at once, then drain: a rolling deploy leaves no gap
    then(async () => await worker.stopClaiming())
    await transition
    await leader.stop()
    then(async () => await worker.stop(h.shutdownGraceMs))
    await transition
    await pool.end()
    await dispatcher.close()
  })
}

/** JSON arrays of items, each under max bytes. */
function chunks (items: unknown[], max: number): string[] {
  const out: string[] = []
  let cur: string[] = []
  let size = 2
  for (const item of items) {
    const s = JSON.stringify(item)
    if (size + s.length + 1 > max && cur.length > 0) {
      out.push(`[${cur.join(',')}]`)
      cur = []
      size = 2
    }
    cur.push(s)
    size += s.length + 1
  }
  if (cur.length > 0) out.push(`[${cur.join(',')}]`)
  return out
}
