// The HTTP call: one shared undici Agent, explicit timeouts, the response always consumed.
import { errors } from '../errors.js'
import { Agent, type Dispatcher } from 'undici'
import { mergeHeaders } from '../domain/headers.js'
import { signatureHeaders } from '../domain/signing.js'
import { blockedLiteral, guardedLookup } from '../domain/ssrf-guard.js'
import type { TargetPolicy } from '../domain/ssrf.js'
import { VERSION } from '../version.js'

export const USER_AGENT = `hookpost/${VERSION}`
/** how much of a response body the attempt log keeps */
export const RESPONSE_SNIPPET_BYTES = 4096

export interface Call {
  messageId: number
  queueId: number
  attempt: number
  url: string
  method: string
  queueHeaders: Record<string, string>
  headers: Record<string, string>
  body: string | null
  timeoutMs: number
  idempotencyKey: string | null
  /** a fan-out message's event, or null */
  eventId: number | null
  eventType: string | null
  signingSecrets: string[] | null
}

/** blocked: the SSRF policy refused the target's address (lib/domain/ssrf.ts); no connection was made */
export type ErrorKind = 'http' | 'timeout' | 'connect' | 'network' | 'blocked'

export interface Result {
  ok: boolean
  status: number | null
  errorKind: ErrorKind | null
  error: string | null
  responseBody: string | null
  retryAfter: string | string[] | undefined
  startedAt: Date
  durationMs: number
}

/**
 * The Agent every delivery goes through. It refuses an IP-literal origin the SSRF policy blocks before
 * dispatching (node connects to a literal without the lookup that guards names). A subclass rather than
 * agent.compose(interceptor): compose puts a Proxy and a handler adapter on every call.
 */
class DeliveryAgent extends Agent {
  private readonly refused: (origin: string) => string | null

  constructor (targets: TargetPolicy) {
    super({
      // connections are reused across messages to the same origin; idle ones close after 10 s
      keepAliveTimeout: 10_000,
      keepAliveMaxTimeout: 60_000,
      // every address a host name resolves to is checked as the socket connects, so a name that passed
      // at save time and now points inside (DNS rebinding) is still refused
      connect: { timeout: 10_000, lookup: guardedLookup(targets) },
      // redirects are a failure, never followed: a webhook target that moves must be updated
      maxRedirections: 0
    } as Agent.Options)
    this.refused = blockedLiteral(targets)
  }

  override dispatch (opts: Agent.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const reason = this.refused(String(opts.origin ?? ''))
    // thrown before any socket is opened; send() records it as a 'blocked' attempt
    if (reason !== null) throw new errors.HOOKPOST_ERR_BLOCKED_TARGET('callbackUrl', reason)
    return super.dispatch(opts, handler)
  }
}

/** targets: the SSRF policy (config.hooks); without one, private networks are allowed as in development */
export function createDispatcher (targets: TargetPolicy): Dispatcher {
  return new DeliveryAgent(targets)
}

/** Headers for one attempt: queue, then message, then ours (which nothing stored can override). */
export function requestHeaders (c: Call): Record<string, string> {
  const h = mergeHeaders(c.queueHeaders, c.headers)
  h['user-agent'] ??= USER_AGENT
  h['x-hookpost-message-id'] = String(c.messageId)
  h['x-hookpost-attempt'] = String(c.attempt)
  h['x-hookpost-queue-id'] = String(c.queueId)
  if (c.idempotencyKey !== null) h['idempotency-key'] = c.idempotencyKey
  if (c.eventType !== null) {
    h['x-hookpost-event-type'] = c.eventType
    h['x-hookpost-event-id'] = String(c.eventId)
  } else if ('x-hookpost-event-type' in h || 'x-hookpost-event-id' in h) {
    // ours, stored by plain SQL (or before 010 reserved them) on a message that is no event's: not sent
    delete h['x-hookpost-event-type']
    delete h['x-hookpost-event-id']
  }
  if (c.signingSecrets !== null && c.signingSecrets.length > 0) {
    // the message id is the webhook-id: stable across retries, so receivers de-duplicate on it
    Object.assign(h, signatureHeaders(
      c.signingSecrets, String(c.messageId), Math.floor(Date.now() / 1000), sentBody(c) ?? ''
    ))
  }
  return h
}

// a catalogue key (lib/errors.ts) is its code; thrown by the connector, it may arrive as the cause
const BLOCKED: keyof typeof errors = 'HOOKPOST_ERR_BLOCKED_TARGET'
const RETRY_AFTER = 'retry-after'

function classify (err: unknown): { kind: ErrorKind, message: string } {
  const e = err as { code?: string, name?: string, message?: string, cause?: { code?: string } }
  const code = e.code ?? e.cause?.code ?? ''
  const message = `${code !== '' ? code + ': ' : ''}${e.message ?? String(err)}`.slice(0, 500)
  // retried like any failure, not dead at once: the policy or the DNS answer may change (an operator
  // adds HOOKPOST_SSRF_ALLOW, a record is fixed), a refused attempt costs no connection, and maxRetries
  // still bounds it; a redrive after the fix works as for any dead message
  if (code === BLOCKED) return { kind: 'blocked', message }
  if (e.name === 'TimeoutError' || e.name === 'AbortError' || /TIMEOUT/.test(code)) return { kind: 'timeout', message }
  if (['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT'].includes(code)) {
    return { kind: 'connect', message }
  }
  return { kind: 'network', message }
}

/** GET and HEAD carry no body; what is signed is exactly what is sent. */
function sentBody (c: Call): string | null {
  return c.method === 'GET' || c.method === 'HEAD' ? null : c.body
}

// callback URLs repeat across a queue's messages: parse each once
const TARGET_CACHE_MAX = 10_000
const targets = new Map<string, { origin: string, path: string }>()

function target (url: string): { origin: string, path: string } {
  let t = targets.get(url)
  if (t === undefined) {
    const u = new URL(url)
    t = { origin: u.origin, path: u.pathname + u.search }
    if (targets.size >= TARGET_CACHE_MAX) targets.clear()
    targets.set(url, t)
  }
  return t
}

/**
 * How the caller cuts a call short (the executor's deadline sweep, shutdown): it sets `reason` and calls
 * `abort` if the request has started. A plain object, not an AbortController: a controller, its
 * signal and a listener per call were about 4% of the worker's profile.
 */
export interface Cut {
  reason: Error | undefined
  abort: ((reason: Error) => void) | undefined
}

export function cutShort (c: Cut, reason: Error): void {
  if (c.reason !== undefined) return
  c.reason = reason
  c.abort?.(reason)
}

/**
 * One request's answer, as undici hands it over: the status, Retry-After and the first
 * RESPONSE_SNIPPET_BYTES of the body are all we keep, so no response stream is built; the rest of the
 * body is read and dropped, which keeps the connection reusable.
 *
 * It implements undici 7's own handler methods (onConnect, onHeaders, ...), which its Client calls
 * directly. A handler of the newer controller API (onRequestStart, ...) is adapted to these on every
 * request: a wrapper and a controller allocated, and every response header turned into a string.
 * undici 7's types mark these methods deprecated; moving to undici 8 (Node 22 and later) means
 * measuring this again (bench/probe-sender.ts, bench/probe-worker.ts).
 */
class Exchange implements Dispatcher.DispatchHandler {
  statusCode = 0
  retryAfter: string | string[] | undefined = undefined
  private first: Buffer | undefined = undefined
  private more: Buffer[] | undefined = undefined
  private size = 0

  constructor (
    private readonly cut: Cut | undefined,
    private readonly resolve: (answer: Exchange) => void,
    private readonly reject: (err: Error) => void
  ) {}

  onConnect (abort: (err?: Error) => void): void {
    const cut = this.cut
    if (cut === undefined) return
    if (cut.reason !== undefined) return abort(cut.reason)
    cut.abort = abort
  }

  onHeaders (statusCode: number, headers: Buffer[]): boolean {
    // a 1xx comes first, then the final answer: each replaces what the last one said
    this.statusCode = statusCode
    this.retryAfter = undefined
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!
      if (name.length !== RETRY_AFTER.length || name.toString('latin1').toLowerCase() !== RETRY_AFTER) continue
      const value = headers[i + 1]!.toString('latin1')
      const was: string | string[] | undefined = this.retryAfter
      this.retryAfter = was === undefined ? value : Array.isArray(was) ? [...was, value] : [was, value]
    }
    return true
  }

  onData (chunk: Buffer): boolean {
    if (this.size < RESPONSE_SNIPPET_BYTES) {
      if (this.first === undefined) this.first = chunk
      else (this.more ??= [this.first]).push(chunk)
      this.size += chunk.length
    }
    return true
  }

  onComplete (): void {
    if (this.cut !== undefined) this.cut.abort = undefined
    this.resolve(this)
  }

  onError (err: Error): void {
    if (this.cut !== undefined) this.cut.abort = undefined
    this.reject(err)
  }

  /** the first RESPONSE_SNIPPET_BYTES of the body, as text */
  get body (): string {
    const body = this.more !== undefined ? Buffer.concat(this.more) : this.first
    return body === undefined ? '' : body.toString('utf8', 0, Math.min(body.length, RESPONSE_SNIPPET_BYTES))
  }
}

async function call (dispatcher: Dispatcher, opts: Dispatcher.DispatchOptions, cut: Cut | undefined):
Promise<Exchange> {
  // a dispatch that throws (a blocked origin) rejects the promise
  return await new Promise<Exchange>((resolve, reject) => dispatcher.dispatch(opts, new Exchange(cut, resolve, reject)))
}

/**
 * One attempt. undici's own timeouts bound the connect, the wait for headers and each pause in the
 * body; the overall deadline (the queue's timeout for the whole call) is the caller's: the executor
 * cuts the call short (`cut`) with a TimeoutError when it passes. A timer per call costs more than the call.
 */
export async function send (dispatcher: Dispatcher, c: Call, cut?: Cut): Promise<Result> {
  const startedAt = new Date()
  const t0 = performance.now()
  try {
    const { origin, path } = target(c.url)
    const res = await call(dispatcher, {
      origin,
      path,
      method: c.method as Dispatcher.HttpMethod,
      headers: requestHeaders(c),
      body: sentBody(c),
      headersTimeout: c.timeoutMs,
      bodyTimeout: c.timeoutMs
    }, cut)
    const ok = res.statusCode >= 200 && res.statusCode < 300
    return {
      ok,
      status: res.statusCode,
      errorKind: ok ? null : 'http',
      error: ok ? null : `HTTP ${res.statusCode}`,
      responseBody: res.body,
      retryAfter: res.retryAfter,
      startedAt,
      durationMs: Math.round(performance.now() - t0)
    }
  } catch (err) {
    const reason = cut?.reason ?? err
    const { kind, message } = classify(reason)
    return {
      ok: false,
      status: null,
      errorKind: kind,
      error: message,
      responseBody: null,
      retryAfter: undefined,
      startedAt,
      durationMs: Math.round(performance.now() - t0)
    }
  }
}
