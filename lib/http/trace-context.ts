// W3C Trace Context at enqueue: a request to POST /messages or POST /events that carries a valid
// `traceparent` (and `tracestate`) has them stored with what it creates, as message or event headers
// (the event's are every fan-out message's), unless the body's headers name their own. The delivery
// continues that trace: a span per attempt when tracing is on (lib/delivery/tracing.ts), else the
// receiver gets the context as given. hookpost.enqueue takes them in its headers argument the same way.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { headersSchema } from '../domain/headers.js'

// version 00 (and, as the spec asks of a receiver, later versions read as 00); neither id all zeros
const TRACEPARENT = /^(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$/
// list-members of printable ASCII, at most 512 characters as the spec allows a receiver to cut at
const TRACESTATE = /^[\x20-\x7e]{1,512}$/

/** The routes that create what is delivered, by method and route url. */
const CREATES = new Set(['POST /messages', 'POST /messages/', 'POST /events', 'POST /events/'])

/** The request's trace headers when its traceparent is valid, else nothing (the spec: ignore it). */
export function traceHeaders (req: Pick<FastifyRequest, 'headers'>): Record<string, string> | undefined {
  const parent = req.headers.traceparent
  if (typeof parent !== 'string' || !TRACEPARENT.test(parent.trim())) return undefined
  const out: Record<string, string> = { traceparent: parent.trim() }
  const state = req.headers.tracestate
  if (typeof state === 'string' && TRACESTATE.test(state.trim())) out.tracestate = state.trim()
  return out
}

export function traceContextAtEnqueue (app: FastifyInstance): void {
  // after validation: the body is known to be the resource's, and its headers an object of strings
  app.addHook('preHandler', async (req) => {
    if (!CREATES.has(`${req.method} ${req.routeOptions.url ?? ''}`)) return
    const trace = traceHeaders(req)
    const body = req.body as { headers?: Record<string, string> } | null
    if (trace === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) return
    const names = Object.keys(body.headers ?? {})
    if (names.some(k => k.toLowerCase() === 'traceparent')) return
    // the stored headers stay within what a PUT accepts (an attack round: 64 headers plus these two made a
    // message that could not be written back); past it the context is dropped, as the spec lets a hop do
    const kept = names.filter(k => k.toLowerCase() !== 'tracestate')
    if (kept.length + Object.keys(trace).length > headersSchema.maxProperties) return
    body.headers = { ...Object.fromEntries(kept.map(k => [k, body.headers![k]!])), ...trace }
  })
}
