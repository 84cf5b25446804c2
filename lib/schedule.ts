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
  if (!isValidTimezone(timezone)) throw new ScheduleError('timezone', `unknown IANA time zone ${JSON.stringify(timezone)}`)
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
    return CronExpressionParser.parse(schedule, { tz: timezone, currentDate: new Date(at.getTime() + 1) }).prev().toDate()
  } catch {
    return null
  }
}
