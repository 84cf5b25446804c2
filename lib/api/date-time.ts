// Date-times as a client writes them, checked field by field before any SQL runs: JS's Date rolls an
// impossible date over (2024-02-30 becomes March 1, 24:00 the next day), and PostgreSQL's timestamptz
// refuses a year 0 and an offset past ±15:59 with an error that cannot name the field. One rule for a
// body's `when` (the "date-time" format, REST and GraphQL) and for a list filter's value.

// ISO 8601 as the API reads it: a date, then optionally a time (seconds and fraction optional) and an offset
const PARTS = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?([Zz]|[+-]\d{2}(?::?\d{2})?)?)?$/

// PostgreSQL's timestamptz takes UTC offsets up to 15:59 either way
const MAX_OFFSET_HOURS = 15

function daysIn (year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28
  return [4, 6, 9, 11].includes(month) ? 30 : 31
}

/**
 * Why a date-time's fields name no instant PostgreSQL can store, or undefined when they do (the shape is
 * ISO 8601's). Second 60 (a leap second) is refused: PostgreSQL would store the next minute, and a filter
 * (through JS's Date) could not name it either.
 */
export function dateTimeProblem (s: string): string | undefined {
  const m = PARTS.exec(s)
  if (m === null) return 'not an ISO 8601 date-time'
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])]
  if (year === 0) return 'there is no year 0'
  if (month < 1 || month > 12) return `no month ${m[2]!}`
  if (day < 1 || day > daysIn(year, month)) return `no day ${m[3]!} in ${m[1]!}-${m[2]!}`
  if (m[4] !== undefined && (Number(m[4]) > 23 || Number(m[5]) > 59 || Number(m[6] ?? 0) > 59)) {
    return 'hours run 00-23, minutes and seconds 00-59'
  }
  const offset = m[7]
  if (offset !== undefined && offset.length > 1) {
    const hours = Number(offset.slice(1, 3))
    const minutes = Number(offset.slice(-2))
    if (hours > MAX_OFFSET_HOURS || (offset.length > 3 && minutes > 59)) {
      return `UTC offsets run from -15:59 to +15:59, got ${offset}`
    }
  }
  return undefined
}
