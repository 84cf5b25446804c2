// Wires the delivery engine into the app: the leader election, the LISTEN connection and the worker.
// The worker runs on the leader (or on every process with allProcessesDeliver).
import { hostname } from 'node:os'
import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { createPool } from '../db/pool.js'
import { Listener } from '../db/listener.js'
import { CronScheduler } from '../cron.js'
import { Leader } from '../leader.js'
import { createDispatcher } from './sender.js'
import * as sql from './sql.js'
import { Worker } from './worker.js'

export const CHANNEL_MESSAGES = 'hookpost_messages'
export const CHANNEL_CRONS = 'hookpost_crons'

export interface Delivery {
  worker: Worker
  crons: CronScheduler
  leader: Leader
  listener: Listener
  workerId: string
}

declare module 'fastify' {
  interface FastifyInstance {
    delivery: Delivery | null
  }
}

const REAP_INTERVAL_MS = 2000

// claims and outcomes on 3 connections: one claiming, one flushing, one spare for releases
const WORKER_POOL_SIZE = 3

export async function deliveryPlugin (app: FastifyInstance): Promise<void> {
  const { config } = app
  const h = config.hooks
  if (!h.enabled) {
    app.decorate('delivery', null)
    return
  }
  const url = config.db.connectionString!
  const log = app.log.child({ component: 'delivery' }) as unknown as Logger
  const workerId = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`
  // Delivery state is written with synchronous_commit off: a crash can only forget that a message
  // was sent or claimed, and then it is sent again (at-least-once). Enqueues keep full durability.
  const pool = createPool(url, { max: WORKER_POOL_SIZE, log, name: 'hookpost-worker', options: '-c synchronous_commit=off' })
  const dispatcher = createDispatcher()
  const worker = new Worker({
    pool, dispatcher, workerId, log,
    concurrency: h.concurrency,
    queueConcurrency: h.queueConcurrency,
    batchSize: h.batchSize,
    leaseMs: h.leaseMs,
    pollMs: h.pollMs
  })
  // the LISTEN connection also holds this process's worker lock: while it lives, our claims are live
  const listener = new Listener(url, [CHANNEL_MESSAGES, CHANNEL_CRONS], log, async (c) => { await c.query(sql.holdWorkerLock(workerId)) })
  const leader = new Leader(url, h.lock, h.leaderPollMs, log)

  // cron ticks are materialised by the leader only, on the main (fully durable) pool
  const crons = new CronScheduler(app.pool, log)

  listener.on('notification', (channel: string) => {
    if (channel === CHANNEL_MESSAGES) worker.notify()
    else if (channel === CHANNEL_CRONS) crons.notify()
  })
  // notifications sent while the connection was down are lost: look again
  listener.on('reconnect', () => { worker.notify(); crons.notify() })

  // start and stop in order, never overlapping
  let transition: Promise<void> = Promise.resolve()
  const startWorker = (): void => { transition = transition.then(() => worker.start()) }
  const stopWorker = (): void => { transition = transition.then(async () => await worker.stop(h.shutdownGraceMs)) }

  // the leader hands back the claims of dead processes, at once on election and then periodically
  let reapTimer: NodeJS.Timeout | undefined
  const reap = async (): Promise<void> => {
    try {
      const { rowCount } = await pool.query(sql.reapDeadClaims())
      if (rowCount !== null && rowCount > 0) {
        log.warn({ count: rowCount }, 'handed back the claims of a process that died')
        worker.notify()
      }
    } catch (err) {
      log.warn({ err }, 'reaping dead claims failed')
    }
  }
  leader.on('elected', () => {
    if (!h.allProcessesDeliver) startWorker()
    transition = transition.then(() => crons.start())
    void reap()
    reapTimer = setInterval(() => { void reap() }, REAP_INTERVAL_MS)
    reapTimer.unref()
  })
  leader.on('demoted', () => {
    clearInterval(reapTimer)
    transition = transition.then(async () => await crons.stop())
    if (!h.allProcessesDeliver) stopWorker()
  })

  app.decorate('delivery', { worker, crons, leader, listener, workerId })

  app.addHook('onReady', async () => {
    await listener.start()
    if (h.allProcessesDeliver) startWorker()
    leader.start()
    log.info({ workerId, concurrency: h.concurrency, allProcessesDeliver: h.allProcessesDeliver }, 'delivery engine started')
  })

  // preClose: the engine drains before any onClose hook ends the pools it uses
  app.addHook('preClose', async () => {
    clearInterval(reapTimer)
    stopWorker()
    transition = transition.then(async () => await crons.stop())
    await transition
    await leader.stop()
    await transition
    await listener.stop()
    await pool.end()
    await dispatcher.close()
  })
}
