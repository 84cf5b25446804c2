// LISTEN on a dedicated connection that reconnects by itself. It emits 'lost' when the connection
// drops (the session's locks went with it) and 'reconnect' when it is back, because notifications sent
// while it was away are gone: listeners sweep for missed work then.
import { EventEmitter } from 'node:events'
import pg from 'pg'
import type { Logger } from 'pino'
import { SUBSCRIBERS_LOCK } from './locks.js'
import { SERVER_KEEPALIVES } from './pool.js'

// a silently dropped connection (NAT, failover) is found by this heartbeat, not hours later
const HEARTBEAT_MS = 10_000
const RECONNECT_MIN_MS = 100
// The worker lock comes back with this connection, and the reaper hands a process's claims on after
// HOOKPOST_REAP_GRACE_MS (default 10 s) without it: a connection lost a few times in a row must not
// wait 5 s between tries (a LISTEN blip then outlasted an 8 s grace on a loaded machine), so at most 2 s
const RECONNECT_MAX_MS = 2000

export class Listener extends EventEmitter {
  private client: pg.Client | null = null
  private stopped = false
  private attempt = 0
  private timer: NodeJS.Timeout | undefined
  private heartbeat: NodeJS.Timeout | undefined
  // connections that errored or ended: one lost while being set up must not become the current one
  private readonly gone = new WeakSet<pg.Client>()

  /** onConnect runs on every (re)connection, before LISTEN: session state such as locks goes there */
  constructor (private readonly url: string, private readonly channels: string[], private readonly log: Logger,
    private readonly onConnect?: (c: pg.Client) => Promise<void>) {
    super()
  }

  async start (): Promise<void> {
    await this.connect()
  }

  private async connect (): Promise<void> {
    if (this.stopped) return
    const client = new pg.Client({
      connectionString: this.url,
      application_name: 'hookpost-listen',
      connectionTimeoutMillis: 5000,
      keepAlive: true,
      options: SERVER_KEEPALIVES,
      query_timeout: HEARTBEAT_MS
    })
    client.on('notification', (n) => this.emit('notification', n.channel, n.payload))
    client.on('error', (err) => this.lost(client, err))
    client.on('end', () => this.lost(client, new Error('connection ended')))
    try {
      await client.connect()
      if (this.onConnect !== undefined) await this.onConnect(client)
      if (this.subscribed) await client.query('SELECT pg_advisory_lock_shared($1, $2)', [...SUBSCRIBERS_LOCK])
      for (const c of this.channels) await client.query(`LISTEN "${c}"`)
    } catch (err) {
      this.lost(client, err as Error)
      return
    }
    if (this.stopped) {
      await client.end().catch(() => {})
      return
    }
    // Lost between its last statement and here (a termination in the same packet as LISTEN's answer:
    // the error event ran before this continuation). lost() has scheduled the next try; made current,
    // it would hide every later failure until the heartbeat, and the worker lock with it (attack round:
    // a process was taken for dead and 56 messages were sent twice)
    if (this.gone.has(client)) return
    this.client = client
    clearInterval(this.heartbeat)
    this.heartbeat = setInterval(() => {
      client.query('SELECT 1').catch((err: Error) => this.lost(client, err))
    }, HEARTBEAT_MS)
    this.heartbeat.unref()
    const reconnected = this.attempt > 0
    this.attempt = 0
    if (reconnected) {
      this.log.info('LISTEN connection restored')
      this.emit('reconnect')
    }
  }

  private subscribed = false

  /** Whether this process holds the subscribers lock (has live GraphQL subscriptions). */
  get hasSubscribers (): boolean { return this.subscribed }

  /**
   * Hold (or drop) the shared advisory lock that says "this process has GraphQL subscribers": the
   * delivering process publishes outcome events only while some process holds it.
   */
  setSubscribed (on: boolean): void {
    if (this.subscribed === on) return
    this.subscribed = on
    const fn = on ? 'pg_advisory_lock_shared' : 'pg_advisory_unlock_shared'
    this.client?.query(`SELECT ${fn}($1, $2)`, [...SUBSCRIBERS_LOCK])
      .catch((err: Error) => this.log.warn({ err: { message: err.message } }, 'subscribers lock'))
  }

  /** True while LISTEN (and the session state onConnect set up) is in place. */
  get connected (): boolean { return this.client !== null }

  private lost (client: pg.Client, err: Error): void {
    this.gone.add(client)
    client.removeAllListeners('end')
    client.end().catch(() => {})
    // a connection that was not the current one (a try that failed while another is current): ended, nothing more
    if (this.client !== null && this.client !== client) return
    this.client = null
    clearInterval(this.heartbeat)
    if (!this.stopped) this.emit('lost')
    if (this.stopped || this.timer !== undefined) return
    const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** this.attempt++)
    this.log.warn({ err: { message: err.message }, retryInMs: delay }, 'LISTEN connection lost; reconnecting')
    this.timer = setTimeout(() => {
      this.timer = undefined
      // connect() handles its own failures (lost() tries again): only a throwing 'reconnect' listener lands here
      this.connect().catch((err: Error) => this.log.error({ err }, 'LISTEN reconnect failed'))
    }, delay)
    this.timer.unref()
  }

  async stop (): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    clearInterval(this.heartbeat)
    const c = this.client
    this.client = null
    if (c !== null) {
      c.removeAllListeners('end')
      await c.end().catch(() => {})
    }
  }
}
