// Traces (OpenTelemetry). Each attempt is a CLIENT span, a child of the trace context stored with its
// message (the `traceparent` header given at enqueue: lib/http/trace-context.ts), and the receiver gets
// a `traceparent` naming that span. Spans leave over OTLP/HTTP in batches.
//
// Loaded only when an OTLP endpoint is configured (config.tracing): without one nothing here is
// imported, the send path is the plain one, and a stored `traceparent` is sent as it was given.
// The provider is ours alone, never registered globally: an application embedding hookpost keeps its own.
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import { VERSION } from '../version.js'
import type { Send } from './executor.js'

export interface Tracing {
  /** the same Send, with a span around each attempt and its context sent on */
  traced: (send: Send) => Send
  /** export what is left and stop */
  shutdown: () => Promise<void>
}

/** The trace headers, in whatever case a message stored them. */
const TRACE_HEADERS = new Set(['traceparent', 'tracestate'])
/** one export's time at most: a collector that hangs costs a batch, not the queue behind it */
export const TRACE_EXPORT_TIMEOUT_MS = 5000
/** shutdown's last export at most: SIGTERM is not held by a collector that does not answer */
export const TRACE_SHUTDOWN_MS = 2000
/** at most one warning this often about spans the collector did not take (their count is in it) */
export const TRACE_WARN_EVERY_MS = 60_000

export async function startTracing (cfg: NonNullable<Config['tracing']>, log: Logger): Promise<Tracing> {
  const [api, { W3CTraceContextPropagator }, sdk, { OTLPTraceExporter }, { resourceFromAttributes }] =
  await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/core'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources')
  ])
  const otlp = new OTLPTraceExporter({ url: cfg.url, headers: cfg.headers, timeoutMillis: TRACE_EXPORT_TIMEOUT_MS })
  // the exporter drops a batch its collector refuses or never answers, and says nothing: we say it,
  // once a minute at most (an attack round: a collector down, hung or answering garbage left no trace)
  let lost = 0
  let warnedAt = 0
  const exporter = {
    export (spans: Parameters<typeof otlp.export>[0], done: Parameters<typeof otlp.export>[1]): void {
      otlp.export(spans, (result) => {
        if (result.code !== 0) {
          lost += spans.length
          if (Date.now() - warnedAt >= TRACE_WARN_EVERY_MS) {
            warnedAt = Date.now()
            log.warn({ lost, err: result.error?.message }, 'tracing: the collector did not take spans: dropped')
            lost = 0
          }
        }
        done(result)
      })
    },
    shutdown: async () => await otlp.shutdown(),
    forceFlush: async () => await otlp.forceFlush()
  }
  const provider = new sdk.BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': cfg.serviceName, 'service.version': VERSION }),
    spanProcessors: [new sdk.BatchSpanProcessor(exporter, { scheduledDelayMillis: cfg.exportDelayMs })]
  })
  const tracer = provider.getTracer('hookpost', VERSION)
  const propagator = new W3CTraceContextPropagator()
  // the origin only: a URL may carry credentials
  log.info({ endpoint: new URL(cfg.url).origin }, 'tracing: spans exported over OTLP/HTTP')

  const traced = (send: Send): Send => async (row, attempt, cut) => {
    // the stored context, and the headers without it (the span's goes in its place)
    const carrier: Record<string, string> = {}
    const headers: Record<string, string> = {}
    for (const [k, v] of Object.entries(row.headers)) {
      if (TRACE_HEADERS.has(k.toLowerCase())) carrier[k.toLowerCase()] = v
      else headers[k] = v
    }
    const parent = propagator.extract(api.ROOT_CONTEXT, carrier, api.defaultTextMapGetter)
    let target: URL | undefined
    try { target = new URL(row.queue.callbackUrl) } catch {}
    const span = tracer.startSpan('hookpost.deliver', {
      kind: api.SpanKind.CLIENT,
      attributes: {
        'hookpost.message.id': row.id,
        'hookpost.queue.id': row.queueId,
        'hookpost.attempt': attempt,
        'http.request.method': row.queue.method,
        // the host only: a callback URL's path or query may hold a token
        ...(target !== undefined
          ? { 'server.address': target.hostname, 'url.scheme': target.protocol.slice(0, -1) }
          : {}),
        ...(row.eventType !== null
          ? { 'hookpost.event.type': row.eventType, 'hookpost.event.id': row.eventId ?? 0 }
          : {})
      }
    }, parent)
    const sent: Record<string, string> = {}
    propagator.inject(api.trace.setSpan(parent, span), sent, api.defaultTextMapSetter)
    try {
      const result = await send({ ...row, headers: { ...headers, ...sent } }, attempt, cut)
      if (result.status !== null) span.setAttribute('http.response.status_code', result.status)
      if (!result.ok) {
        const kind = result.errorKind === 'http' ? String(result.status) : result.errorKind ?? 'error'
        span.setAttribute('error.type', kind)
        span.setStatus({ code: api.SpanStatusCode.ERROR, message: result.error ?? undefined })
      }
      return result
    } catch (err) {
      span.setStatus({ code: api.SpanStatusCode.ERROR, message: (err as Error).message })
      throw err
    } finally {
      span.end()
    }
  }

  const shutdown = async (): Promise<void> => {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), TRACE_SHUTDOWN_MS) })
    const ended = await Promise.race([provider.shutdown().then(() => 'done' as const, () => 'done' as const), late])
    clearTimeout(timer)
    if (ended === 'late') log.warn({ waitedMs: TRACE_SHUTDOWN_MS }, 'tracing: the last spans were not exported in time')
  }
  return { traced, shutdown }
}
