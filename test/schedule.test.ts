// Pure schedule logic: next ticks across DST (cron-parser's rules) and the missed-tick policy.
import t from 'tap'
import { nextTick, ticksToFire, validateSchedule } from '../lib/domain/schedule.js'

function seq (expr: string, tz: string, from: string, n: number): string[] {
  const out: string[] = []
  let at = new Date(from)
  for (let i = 0; i < n; i++) {
    at = nextTick(expr, tz, at)
    out.push(at.toISOString())
  }
  return out
}

t.test('spring forward in America/New_York (2026-03-08, 02:00 -> 03:00)', async (t) => {
  // hourly: the 02:00 local hour does not exist, so 01:00 EST is followed by 03:00 EDT
  t.same(seq('0 * * * *', 'America/New_York', '2026-03-08T05:30:00Z', 3), [
    '2026-03-08T06:00:00.000Z', // 01:00 EST
    '2026-03-08T07:00:00.000Z', // 03:00 EDT
    '2026-03-08T08:00:00.000Z' // 04:00 EDT
  ])
  // a daily 02:30 falls in the gap that day and fires at 03:30 EDT instead; the day after, 02:30 EDT
  t.same(seq('30 2 * * *', 'America/New_York', '2026-03-07T12:00:00Z', 2), ['2026-03-08T07:30:00.000Z', '2026-03-09T06:30:00.000Z'])
})

t.test('fall back in America/New_York (2026-11-01, 02:00 -> 01:00)', async (t) => {
  // hourly fires in each real hour: 01:00 EDT and 01:00 EST are both ticks
  t.same(seq('0 * * * *', 'America/New_York', '2026-11-01T03:30:00Z', 4), [
    '2026-11-01T04:00:00.000Z', // 00:00 EDT
    '2026-11-01T05:00:00.000Z', // 01:00 EDT
    '2026-11-01T06:00:00.000Z', // 01:00 EST
    '2026-11-01T07:00:00.000Z' // 02:00 EST
  ])
  // a daily 01:30 fires once, at the first 01:30 (EDT)
  t.same(seq('30 1 * * *', 'America/New_York', '2026-10-31T12:00:00Z', 2), ['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z'])
})

t.test('seconds field and validation', async (t) => {
  t.same(seq('*/15 * * * * *', 'UTC', '2026-01-01T00:00:01Z', 3), ['2026-01-01T00:00:15.000Z', '2026-01-01T00:00:30.000Z', '2026-01-01T00:00:45.000Z'])
  t.throws(() => validateSchedule('* * * *'), /5 or 6 fields/)
  t.throws(() => validateSchedule('* * * * *', 'Nowhere/City'), /time zone/)
  t.doesNotThrow(() => validateSchedule('0 9 * * 1-5', 'Europe/Rome'))
})

t.test('missed ticks: one catch-up by default, none with skip, on-time ticks always fire', async (t) => {
  const now = new Date('2026-06-01T12:00:05Z')
  const hourly = { schedule: '0 * * * *', timezone: 'UTC', nextTickAt: new Date('2026-06-01T08:00:00Z') }
  // leader down from 08:00 to 12:00:05: 08, 09, 10, 11 were missed; 12:00 is 5 s late, within the grace
  const once = ticksToFire({ ...hourly, missedTicks: 'once' }, now)
  t.same(once.fire.map(d => d.toISOString()), ['2026-06-01T11:00:00.000Z', '2026-06-01T12:00:00.000Z'], 'one catch-up (the latest missed) + the on-time tick')
  t.equal(once.next.toISOString(), '2026-06-01T13:00:00.000Z')
  const skip = ticksToFire({ ...hourly, missedTicks: 'skip' }, now)
  t.same(skip.fire.map(d => d.toISOString()), ['2026-06-01T12:00:00.000Z'], 'skip: only the on-time tick')
  // a short failover on a per-second cron loses nothing: every tick within the grace fires
  const secs = ticksToFire({ schedule: '* * * * * *', timezone: 'UTC', nextTickAt: new Date('2026-06-01T12:00:02Z'), missedTicks: 'skip' }, now)
  t.same(secs.fire.map(d => d.toISOString().slice(17, 19)), ['02', '03', '04', '05'])
  t.equal(secs.next.toISOString(), '2026-06-01T12:00:06.000Z')
  // nothing due
  const none = ticksToFire({ ...hourly, nextTickAt: new Date('2026-06-01T13:00:00Z'), missedTicks: 'once' }, now)
  t.same(none.fire, [])
})
