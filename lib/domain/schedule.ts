// Cron expressions: parsing, validation and the next tick. Pure.
import { CronExpressionParser } from 'cron-parser'

export class ScheduleError extends Error {
  constructor (readonly field: 'schedule' | 'timezone', message: string) {
    super(message)
  }
}

export function isValidTimezone (tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz }).format(0)
    return true
  } catch {
    return false
  }
}

/** 5 fields (minute precision) or 6 (with seconds first); throws ScheduleError saying what is wrong. */
export function validateSchedule (schedule: string, timezone = 'UTC'): void {
  if (!isValidTimezone(timezone)) {
    throw new ScheduleError('timezone', `unknown IANA time zone ${JSON.stringify(timezone)}`)
  }
  const fields = schedule.trim().split(/\s+/)
  if (!schedule.trim().startsWith('@') && (fields.length < 5 || fields.length > 6)) {
    throw new ScheduleError('schedule', `expected 5 or 6 fields, got ${fields.length}`)
  }
  try {
    CronExpressionParser.parse(schedule, { tz: timezone, strict: false }).next()
  } catch (err) {
    throw new ScheduleError('schedule', (err as Error).message)
  }
}

/** The first tick strictly after `after`. */
export function nextTick (schedule: string, timezone: string, after: Date): Date {
  return CronExpressionParser.parse(schedule, { tz: timezone, currentDate: after }).next().toDate()
}

/** The last tick at or before `at`, or null when there is none within a year. */
export function previousTick (schedule: string, timezone: string, at: Date): Date | null {
  try {
    // prev() is strictly before currentDate: nudge by 1 ms to include `at` itself
    return CronExpressionParser.parse(schedule, { tz: timezone, currentDate: new Date(at.getTime() + 1) })
      .prev()
      .toDate()
  } catch {
    return null
  }
}

/** A tick later than this when the scheduler sees it counts as missed (no leader was running) */
export const LATE_TICK_GRACE_MS = 10_000
// more on-time ticks than this in one pass means a sub-second flood: the rest count as missed
const MAX_TICKS_PER_PASS = 100

export interface DueCron {
  schedule: string
  timezone: string
  nextTickAt: Date
  missedTicks: 'once' | 'skip'
}

/**
 * The ticks to turn into messages now, and the next tick to wait for. Ticks no older than the grace
 * fire each (a failover of a few seconds loses nothing); older ones were missed while no leader ran:
 * 'once' fires one catch-up for all of them (labelled with the latest), 'skip' fires none.
 */
export function ticksToFire (c: DueCron, now: Date, graceMs = LATE_TICK_GRACE_MS): { fire: Date[], next: Date } {
  const fire: Date[] = []
  const horizon = now.getTime() - graceMs
  if (c.nextTickAt.getTime() < horizon && c.missedTicks === 'once') {
    const latestMissed = previousTick(c.schedule, c.timezone, new Date(horizon - 1))
    if (latestMissed !== null && latestMissed.getTime() >= c.nextTickAt.getTime()) fire.push(latestMissed)
  }
  // on-time ticks: from the first at or after max(nextTickAt, horizon), up to now
  let t = c.nextTickAt.getTime() >= horizon ? c.nextTickAt : nextTick(c.schedule, c.timezone, new Date(horizon - 1))
  while (t.getTime() <= now.getTime() && fire.length < MAX_TICKS_PER_PASS) {
    fire.push(t)
    t = nextTick(c.schedule, c.timezone, t)
  }
  return { fire, next: nextTick(c.schedule, c.timezone, now) }
}
