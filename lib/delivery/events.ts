// Delivery outcomes as they travel over NOTIFY (CHANNELS.events) from the delivering process to every
// process's GraphQL subscriptions. Each outcome is a compact tuple, [messageId, queueId, attempt, ok,
// statusCode, willRetry] with 0/1 for the booleans, and a payload is a JSON array of them: one NOTIFY
// carries a few hundred (EVENTS_PAYLOAD_MAX). The tuple's order is the wire format: processes of the previous
// release decode it during a rolling deploy, so append fields, never reorder.
import type { Completion } from './sql.js'

export interface OutcomeEvent {
  messageId: number
  queueId: number
  attempt: number
  ok: boolean
  statusCode: number | null
  willRetry: boolean
}

type Wire = [number, number, number, 0 | 1, number | null, 0 | 1]

/** a NOTIFY payload must stay under 8000 bytes */
export const EVENTS_PAYLOAD_MAX = 7000

export function outcomeOf (c: Completion): OutcomeEvent {
  return {
    messageId: c.id,
    queueId: c.queueId,
    attempt: c.attempt,
    ok: c.result.ok,
    statusCode: c.result.status,
    willRetry: c.retryAt !== null
  }
}

/** JSON payloads, each under max bytes, that carry these outcomes in order. */
export function encodeOutcomes (events: OutcomeEvent[], max = EVENTS_PAYLOAD_MAX): string[] {
  const out: string[] = []
  let cur: string[] = []
  let size = 2
  for (const e of events) {
    const wire: Wire = [e.messageId, e.queueId, e.attempt, e.ok ? 1 : 0, e.statusCode, e.willRetry ? 1 : 0]
    const s = JSON.stringify(wire)
    if (size + s.length + 1 > max && cur.length > 0) {
      out.push(`[${cur.join(',')}]`)
      cur = []
      size = 2
    }
    cur.push(s)
    size += s.length + 1
  }
  if (cur.length > 0) out.push(`[${cur.join(',')}]`)
  return out
}

/** The outcomes in one payload; anything malformed (not ours, truncated) is skipped, never thrown. */
export function decodeOutcomes (payload: string): OutcomeEvent[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(payload)
  } catch {
    return []
  }
  if (!Array.isArray(parsed)) return []
  const out: OutcomeEvent[] = []
  for (const w of parsed) {
    if (!Array.isArray(w) || w.length < 6) continue
    const [messageId, queueId, attempt, ok, statusCode, willRetry] = w as unknown[]
    if (typeof messageId !== 'number' || typeof queueId !== 'number' || typeof attempt !== 'number') continue
    if (statusCode !== null && typeof statusCode !== 'number') continue
    out.push({ messageId, queueId, attempt, ok: ok === 1, statusCode, willRetry: willRetry === 1 })
  }
  return out
}
