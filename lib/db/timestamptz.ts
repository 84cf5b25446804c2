// timestamptz values as PostgreSQL writes them, read without a regular expression.
import pg from 'pg'

const fallback = pg.types.getTypeParser(1184, 'text') as (text: string) => Date

function digits (s: string, from: number, to: number): number {
  let n = 0
  for (let i = from; i < to; i++) {
    const d = s.charCodeAt(i) - 48
    if (d < 0 || d > 9) return Number.NaN
    n = n * 10 + d
  }
  return n
}

/**
 * "2026-11-23 20:38:05.429123+00", the DateStyle ISO form; the offset may be +hh, +hh:mm or +hh:mm:ss.
 * pg's own parser (postgres-date) runs three regular expressions per value, a visible share of the
 * API's CPU when a reply carries a few timestamps per message. Anything else (BC, infinity, a year
 * outside 100-9999, another DateStyle) goes to pg's parser, which this one matches exactly,
 * microseconds truncated to milliseconds as there (test/timestamptz.test.ts).
 */
export function parseTimestamptz (s: string): Date {
  if (s.length < 22 || s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45 || s.charCodeAt(10) !== 32 ||
    s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58) return fallback(s)
  const year = digits(s, 0, 4)
  const month = digits(s, 5, 7)
  const day = digits(s, 8, 10)
  const hour = digits(s, 11, 13)
  const minute = digits(s, 14, 16)
  const second = digits(s, 17, 19)
  let i = 19
  let ms = 0
  if (s.charCodeAt(i) === 46) {
    // the first three fraction digits, as milliseconds; further ones are dropped (truncated)
    i++
    let scale = 100
    const start = i
    while (i < s.length) {
      const d = s.charCodeAt(i) - 48
      if (d < 0 || d > 9) break
      if (scale >= 1) {
        ms += d * scale
        scale /= 10
      }
      i++
    }
    if (i === start) return fallback(s)
  }
  const sign = s.charCodeAt(i)
  if (sign !== 43 && sign !== 45) return fallback(s)
  let offset = 0
  const rest = s.length - i - 1
  if (rest === 2) offset = digits(s, i + 1, i + 3) * 3600
  else if (rest === 5 && s.charCodeAt(i + 3) === 58) {
    offset = digits(s, i + 1, i + 3) * 3600 + digits(s, i + 4, i + 6) * 60
  } else if (rest === 8 && s.charCodeAt(i + 3) === 58 && s.charCodeAt(i + 6) === 58) {
    offset = digits(s, i + 1, i + 3) * 3600 + digits(s, i + 4, i + 6) * 60 + digits(s, i + 7, i + 9)
  } else return fallback(s)
  // Date.UTC reads years 0-99 as 1900-1999: those, and anything unread, go the slow way
  if (year < 100 || Number.isNaN(year + month + day + hour + minute + second + offset)) return fallback(s)
  const utc = Date.UTC(year, month - 1, day, hour, minute, second, ms)
  return new Date(sign === 43 ? utc - offset * 1000 : utc + offset * 1000)
}
