// Leader election: a session advisory lock held on a dedicated connection. The lock lives exactly as
// long as that connection, so a leader whose connection dies is demoted at once (event 'demoted'),
// and a follower polling every leaderPollMs takes over.
import { EventEmitter } from 'node:events'
import pg from 'pg'
import type { Logger } from 'pino'
import { lockKeyParts } from './locks.js'
import { SERVER_KEEPALIVES } from './pool.js'

export interface LeaderEvents {
  elected: []
  demoted: []
  /** after each attempt or check, whatever its outcome: tests wait on it, not on the poll interval */
  checked: [{ leader: boolean }]
}

export class Leader extends EventEmitter<LeaderEvents> {
  isLeader = false
  private client: pg.Client | null = null
  private stopped = false
  private wake: (() => void) | undefined
  private loopDone: Promise<void> | undefined
  private failures = 0

  constructor (
    private readonly url: string,
    private readonly lockId: number,
    private readonly pollMs: number,
    private readonly log: Logger
  ) {
    super()
  }

  start (): void {
    this.loopDone = this.loop()
  }

  private async loop (): Promise<void> {
    while (!this.stopped) {
      try {
        if (this.client === null) await this.connect()
        if (!this.isLeader) {
          const { rows } = await this.client!.query('SELECT pg_try_advisory_lock($1) AS ok', [this.lockId])
          if (rows[0].ok === true && !this.stopped) {
            this.isLeader = true
            this.log.info({ lock: this.lockId }, 'elected leader')
            this.emit('elected')
          }
        } else {
          // the lock is a fact of this session: check it is still ours, not just that a socket is open
          const { rows } = await this.client!.query(
            "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 " +
              'AND objsubid = 1 AND pid = pg_backend_pid() AND granted',
            lockKeyParts(this.lockId))
          if (rows[0].n !== 1) this.demote('advisory lock no longer held')
        }
        this.failures = 0
      } catch (err) {
        this.failures++
        this.drop(err as Error)
      }
      this.emit('checked', { leader: this.isLeader })
      // after a failure retry sooner, but not in a tight loop
      await this.sleep(this.failures > 0 ? Math.min(this.pollMs, 200 * this.failures) : this.pollMs)
    }
  }

  private async connect (): Promise<void> {
    const client = new pg.Client({
      connectionString: this.url,
      application_name: 'hookpost-leader',
      connectionTimeoutMillis: 5000,
      // a hung connection must not keep a leader that cannot prove it holds the lock
      query_timeout: Math.max(2000, this.pollMs * 2),
      keepAlive: true,
      // a leader host that vanishes must lose its lock in seconds, not when the server's TCP gives up
      options: SERVER_KEEPALIVES
    })
    client.on('error', (err) => this.drop(err, client))
    client.on('end', () => this.drop(new Error('connection ended'), client))
    await client.connect()
    this.client = client
  }

  /** The lock connection is gone: stop leading now, reconnect as a follower. */
  private drop (err: Error, which?: pg.Client): void {
    const c = this.client
    if (which !== undefined && c !== which) return
    this.client = null
    if (c !== null) {
      c.removeAllListeners('end')
      c.on('error', () => {})
      c.end().catch(() => {})
    }
    if (this.isLeader) this.demote(`lock connection lost: ${err.message}`)
    else if (!this.stopped) this.log.debug({ err: { message: err.message } }, 'leader election connection failed')
    this.wake?.()
  }

  private demote (why: string): void {
    if (!this.isLeader) return
    this.isLeader = false
    this.log.warn({ reason: why }, 'demoted: no longer the leader')
    this.emit('demoted')
  }

  private async sleep (ms: number): Promise<void> {
    if (this.stopped) return
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms)
      function done (): void { clearTimeout(timer); resolve() }
      this.wake = done
    })
    this.wake = undefined
  }

  async stop (): Promise<void> {
    this.stopped = true
    this.wake?.()
    await this.loopDone
    const c = this.client
    this.client = null
    if (c !== null) {
      c.removeAllListeners('end')
      c.on('error', () => {})
      // closing the session releases the lock; no unlock round trip needed
      await c.end().catch(() => {})
    }
    if (this.isLeader) {
      this.isLeader = false
      this.log.info('left leadership')
      this.emit('demoted')
    }
  }
}
