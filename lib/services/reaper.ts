// The leader hands back the claims of processes that died (kill -9, a lost host): at once on election,
// then every REAP_INTERVAL_MS. Without it they would wait for their lease, a minute or more.
import type { Pool } from 'pg'
import type { Logger } from 'pino'
import { Loop } from '../delivery/loop.js'
import { reapDeadClaims } from '../delivery/sql.js'

const REAP_INTERVAL_MS = 2000

export interface ReaperEvents {
  /** claims of dead processes were made due again: the worker should look */
  reaped: [{ count: number }]
}

export class Reaper extends Loop<ReaperEvents> {
  constructor (
    private readonly pool: Pool, private readonly leaseMs: number, private readonly graceMs: number, log: Logger
  ) {
    super(log, 'reaping dead claims')
  }

  protected async pass (): Promise<number> {
    await this.reap()
    return REAP_INTERVAL_MS
  }

  async reap (): Promise<number> {
    const { rowCount } = await this.pool.query(reapDeadClaims(this.leaseMs, this.graceMs))
    const count = rowCount ?? 0
    if (count > 0) {
      this.log.warn({ count }, 'handed back the claims of a process that died')
      this.emit('reaped', { count })
    }
    return count
  }
}
