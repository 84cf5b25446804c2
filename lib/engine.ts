// Wires the delivery engine into the app: the worker (lib/delivery), the leader election (lib/db) and
// the leader's services (lib/services). The worker runs on the leader, or on every process with
// allProcessesDeliver; crons, retention and the reaper on the leader only.
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { CHANNELS } from './db/channels.js'
import { Leader } from './db/leader.js'
import { createPool } from './db/pool.js'
import type { Clock } from './delivery/clock.js'
import { pgClaims } from './delivery/database.js'
import { outcomePublisher } from './delivery/publisher.js'
import { sendClaimed } from './delivery/executor.js'
import { createDispatcher } from './delivery/sender.js'
import { DELIVERY_SESSION_OPTIONS } from './delivery/sql.js'
import { startTracing } from './delivery/tracing.js'
import { Worker } from './delivery/worker.js'
import { CronScheduler } from './services/cron.js'
import { Reaper } from './services/reaper.js'
import { Retention, type RetentionKind } from './services/retention.js'
import { publishOperationalEvents } from './services/operational-events.js'
import { StatsRecorder } from './services/stats.js'
import { SubscriberCheck } from './services/subscribers.js'

export interface Delivery {
  worker: Worker
  crons: CronScheduler
  retention: Retention
  reaper: Reaper
  leader: Leader
  /** delivery statistics per queue and minute, for the dashboard */
  stats: StatsRecorder
  /** whether delivery events are being published: some process has GraphQL subscribers */
  subscribersSeen: () => boolean
}

export interface EngineOptions {
  /** the cron scheduler's time; a test's fake clock makes a tick due without waiting for it */
  cronClock?: Clock
}

declare module 'fastify' {
  interface FastifyInstance {
    delivery: Delivery | null
  }
}

// 4 connections: one claiming, one flushing, two for releases, events, the reaper, retention and the
// subscriber check
const WORKER_POOL_SIZE = 4

export async function enginePlugin (app: FastifyInstance, opts: EngineOptions): Promise<void> {
  const { config, listener, workerId } = app
  const h = config.hooks
  if (!h.enabled) {
    app.decorate('delivery', null)
    return
  }
  const log = app.log.child({ component: 'delivery' }) as unknown as Logger
  const pool = createPool(config.db.connectionString!, {
    max: WORKER_POOL_SIZE,
    log,
    statementTimeoutMs: config.db.statementTimeoutMs,
    name: 'hookpost-worker',
    options: DELIVERY_SESSION_OPTIONS
  })
  // config.hooks carries the SSRF policy (allowPrivateNetworks, ssrfAllow)
  const dispatcher = createDispatcher(h)
  // OpenTelemetry only when an endpoint is configured: else not even imported
  const tracing = config.tracing !== null ? await startTracing(config.tracing, log) : undefined
  const send = sendClaimed(dispatcher)
  const worker = new Worker({
    claims: pgClaims(pool, h.leaseMs, workerId),
    send: tracing?.traced(send) ?? send,
    log,
    concurrency: h.concurrency,
    queueConcurrency: h.queueConcurrency,
    batchSize: h.batchSize,
    bufferBytes: h.bufferBytes,
    leaseMs: h.leaseMs,
    pollMs: h.pollMs,
    canClaim: () => listener.connected
  })
  // cron ticks are materialised by the leader only, on the main (fully durable) pool
  const crons = new CronScheduler(app.pool, log, app.metrics.enqueuedByCron, opts.cronClock)
  const onDeleted = (kind: RetentionKind, n: number): void => app.metrics.retentionDeleted(kind, n)
  // in the delivery session: a deletion a crash forgets is made again on the next pass
  const retention = new Retention(pool, { ...h.retention, onDeleted }, log)
  const reaper = new Reaper(pool, h.leaseMs, h.reapGraceMs, log)
  const subscribers = new SubscriberCheck(pool, log)
  const leader = new Leader(config.db.connectionString!, h.lock, h.leaderPollMs, log)
  app.metrics.watch(worker, pool, log)
  const stats = new StatsRecorder(pool, log)
  worker.on('delivered', (e) => stats.record(e))
  worker.on('failed', (e) => stats.record(e))

  listener.on('notification', (channel: string, payload: string) => {
    if (channel === CHANNELS.messages) worker.notify(payload === 'lane')
    else if (channel === CHANNELS.crons) crons.notify()
    else if (channel === CHANNELS.queues) worker.giveBackQueue(Number(payload))
  })
  // notifications sent while the connection was down are lost: look again
  listener.on('reconnect', () => { worker.notify(); crons.notify() })
  // the worker lock went with the connection: claims not yet sent go back (Worker.giveBackWaiting)
  listener.on('lost', () => { if (worker.active) worker.giveBackWaiting() })
  reaper.on('reaped', () => worker.notify())
  // this process's own subscribers are known at once, others' within a check
  const subscribersSeen = (): boolean => subscribers.seen || listener.hasSubscribers
  worker.on('flushed', outcomePublisher(pool, subscribersSeen, log))
  // on the main pool: an operator's alert is as durable as an application's event
  publishOperationalEvents(worker, reaper, app.pool, log, (type, n) => app.metrics.operationalEvents(type, n))

  // start and stop in order, never overlapping
  let transition: Promise<void> = Promise.resolve()
  const then = (fn: () => unknown): void => { transition = transition.then(async () => { await fn() }) }
  const leaderServices = [crons, retention, reaper]

  leader.on('elected', () => {
    if (!h.allProcessesDeliver) then(() => worker.start())
    for (const s of leaderServices) then(() => s.start())
  })
  leader.on('demoted', () => {
    for (const s of leaderServices) then(async () => await s.stop())
    if (!h.allProcessesDeliver) then(async () => await worker.stop(h.shutdownGraceMs))
  })

  app.decorate('delivery', { worker, crons, retention, reaper, leader, stats, subscribersSeen })

  app.addHook('onReady', async () => {
    subscribers.start()
    stats.start()
    if (h.allProcessesDeliver) then(() => worker.start())
    leader.start()
    log.info({ workerId, concurrency: h.concurrency, allProcessesDeliver: h.allProcessesDeliver },
      'delivery engine started')
  })

  // preClose: the engine drains before any onClose hook ends the pools it uses
  app.addHook('preClose', async () => {
    for (const s of [...leaderServices, subscribers]) then(async () => await s.stop())
    // stop claiming, hand leadership over at once, then drain: a rolling deploy leaves no gap
    then(async () => await worker.stopClaiming())
    await transition
    await leader.stop()
    then(async () => await worker.stop(h.shutdownGraceMs))
    await transition
    await stats.stop()
    await pool.end()
    await dispatcher.close()
    await tracing?.shutdown()
  })
}
