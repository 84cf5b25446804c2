// The dashboard's live overview (GET /dashboard/api/overview/stream): Server-Sent Events, one
// `overview` event a second per open stream. One query a second serves every stream, however many are
// open, and none runs while no stream is: an idle dashboard costs the database nothing.
import { PassThrough } from 'node:stream'
import type { Pool } from 'pg'
import type { Logger } from 'pino'
import { isApiError } from '../errors.js'
import { queueOverview } from '../store/overview.js'

/** how often the overview is read and sent: the issue asks for updates within 1 s */
export const OVERVIEW_FEED_MS = 1000
/** streams open at once, per process: each holds a socket; an operator needs a few */
export const MAX_OVERVIEW_STREAMS = 64

export class OverviewFeed {
  readonly #pool: Pool
  readonly #log: Logger
  readonly #everyMs: number
  readonly #streams = new Set<PassThrough>()
  #timer: NodeJS.Timeout | undefined
  #reading = false
  #closed = false

  constructor (pool: Pool, log: Logger, everyMs = OVERVIEW_FEED_MS) {
    this.#pool = pool
    this.#log = log
    this.#everyMs = everyMs
  }

  get open (): number { return this.#streams.size }

  /** A new stream, or null when MAX_OVERVIEW_STREAMS are open. Its first event comes at once. */
  subscribe (): PassThrough | null {
    if (this.#closed || this.#streams.size >= MAX_OVERVIEW_STREAMS) return null
    const stream = new PassThrough()
    this.#streams.add(stream)
    stream.once('close', () => this.#drop(stream))
    // a retry hint for EventSource-style clients; the dashboard reconnects on its own
    stream.write(`retry: ${this.#everyMs * 2}\n\n`)
    // #tick catches its own errors: these catches only keep a promise from floating
    this.#timer ??= setInterval(() => { this.#tick().catch(() => {}) }, this.#everyMs).unref()
    this.#tick().catch(() => {})
    return stream
  }

  /** Ends every stream (app close): their requests then finish, and close() need not wait for them. */
  close (): void {
    this.#closed = true
    for (const s of this.#streams) s.end()
    this.#streams.clear()
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  #drop (stream: PassThrough): void {
    this.#streams.delete(stream)
    if (this.#streams.size === 0) {
      clearInterval(this.#timer)
      this.#timer = undefined
    }
  }

  async #tick (): Promise<void> {
    // one read at a time: a slow database gets no pile of overlapping queries
    if (this.#reading || this.#streams.size === 0) return
    this.#reading = true
    let frame: string
    try {
      frame = `event: overview\ndata: ${JSON.stringify(await queueOverview(this.#pool))}\n\n`
    } catch (err) {
      // the page shows it in words and keeps the stream: the next second may read again
      this.#log.warn({ err }, 'dashboard overview: read failed')
      const message = isApiError(err) ? err.message : 'the overview could not be read'
      frame = `event: problem\ndata: ${JSON.stringify({ message })}\n\n`
    } finally {
      this.#reading = false
    }
    for (const s of this.#streams) {
      // a client that reads slowly gets the next frame it has room for: each stream holds at most one
      // unsent frame, however long the client stalls
      if (s.readableLength === 0) s.write(frame)
    }
  }
}
