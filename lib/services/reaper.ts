// The leader hands back the claims of processes that died (kill -9, a lost host). Without it they would
// wait for their lease, a minute or more. A process whose worker lock is missing is only noted at first:
// its claims go back once it has stayed without the lock for the grace period (HOOKPOST_REAP_GRACE_MS),
// seen by this leader every REAP_INTERVAL_MS. So a LISTEN connection that drops and comes back within
// the grace keeps every claim, however old; the grace runs from the lock's loss, not from the claim.
// Each pass also unparks the few messages a claim parked as their queue was being resumed, wakes the
// messages waiting for an ordering key nothing holds, frees the concurrency slots of calls that ended
// unrecorded, and disables the queues that have failed for longer than their disableAfterHours.
import type { Pool } from 'pg'
import type { Logger } from 'pino'
import type { Clock } from '../delivery/clock.js'
import { Loop } from '../delivery/loop.js'
import {
  disableFailingQueues, freeOrphanSlots, reapDeadClaims, unlockedClaimOwners, unparkStragglers, wakeStrandedKeys
} from '../delivery/sql.js'
import type { DisabledQueue } from '../delivery/completer.js'
import { CHANNELS, notifyWith } from '../db/channels.js'

const REAP_INTERVAL_MS = 2000

export interface ReaperEvents {
  /** claims of dead processes were made due again: the worker should look */
  reaped: [{ count: number }]
  /** a pass ended: the processes seen holding claims without their worker lock (tests wait on it) */
  checked: [{ unlocked: string[] }]
  /** a queue failing for longer than its disableAfterHours was disabled */
  disabled: [DisabledQueue]
}

export class Reaper extends Loop<ReaperEvents> {
  // processes seen holding claims without their worker lock, and when first seen so; a new leader
  // starts afresh, so a dead process's claims come back at most a grace after election
  private readonly unlockedSince = new Map<string, number>()

  constructor (
    private readonly pool: Pool, private readonly leaseMs: number, private readonly graceMs: number, log: Logger,
    clock?: Clock
  ) {
    super(log, 'reaping dead claims', clock)
  }

  override start (): void {
    this.unlockedSince.clear()
    super.start()
  }

  protected async pass (): Promise<number> {
    await this.reap()
    return REAP_INTERVAL_MS
  }

  async reap (): Promise<number> {
    const now = this.clock.now()
    const { rows } = await this.pool.query<{ owner: string }>(unlockedClaimOwners(this.leaseMs))
    const unlocked = new Set(rows.map(r => r.owner))
    for (const owner of this.unlockedSince.keys()) if (!unlocked.has(owner)) this.unlockedSince.delete(owner)
    const dead: string[] = []
    for (const owner of unlocked) {
      const since = this.unlockedSince.get(owner)
      if (since === undefined) this.unlockedSince.set(owner, now)
      else if (now - since >= this.graceMs) dead.push(owner)
    }
    let count = 0
    if (dead.length > 0) {
      count = (await this.pool.query(reapDeadClaims(dead, this.leaseMs, this.graceMs))).rowCount ?? 0
      if (count > 0) {
        this.log.warn({ count, processes: dead }, 'handed back the claims of a process that died')
        this.emit('reaped', { count })
      }
    }
    for (const q of (await this.pool.query<DisabledQueue>(disableFailingQueues())).rows) {
      this.log.warn({ queueId: q.id, reason: q.reason }, 'queue disabled; its messages are parked until it is enabled')
      // every worker gives back what it holds of it
      await this.pool.query(notifyWith(CHANNELS.queues, String(q.id)))
      this.emit('disabled', q)
    }
    const unparked = ((await this.pool.query(unparkStragglers())).rowCount ?? 0) +
      ((await this.pool.query(wakeStrandedKeys())).rowCount ?? 0)
    const freed = (await this.pool.query(freeOrphanSlots())).rowCount ?? 0
    if (freed > 0) this.log.info({ count: freed }, 'freed the concurrency slots of calls that ended unrecorded')
    if (unparked > 0) {
      this.log.info({ count: unparked },
        'unparked messages of a queue resumed while they were being parked, or of an ordering key let go')
      this.emit('reaped', { count: unparked })
    }
    this.emit('checked', { unlocked: [...unlocked] })
    return count
  }
}
