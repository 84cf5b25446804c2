// The dashboard's overview, read once a second at most, for everyone: the live streams
// (GET /dashboard/api/overview/stream, Server-Sent Events) and GET /dashboard/api/overview share one
// read, on a connection of their own, so any number of open dashboards costs the database one query a
// second, and none when none is open, and never takes a connection from the API's writes.
import { PassThrough } from 'node:stream'
import type { Socket } from 'node:net'
import type { Pool } from 'pg'
import type { Logger } from 'pino'
import { LEASE_SLACK_MS } from '../delivery/lease.js'
import { isApiError } from '../errors.js'
import { queueOverview, type QueueOverview } from '../store/overview.js'

/** how often the overview is read and sent: the issue asks for updates within 1 s */
export const OVERVIEW_FEED_MS = 1000
/** streams open at once, per process: each holds a socket; an operator needs a few */
export const MAX_OVERVIEW_STREAMS = 64
/** a stream whose client has not taken a frame for this many ticks is cut: it is not reading */
export const MAX_BEHIND_TICKS = 30

/** fresh: no overview sent yet (its first frame is sent whatever is still buffered: the retry line) */
interface Stream { out: PassThrough, socket: Socket, behind: number, fresh: boolean }

export interface OverviewFeedOptions {
  /** the configured lease (config.hooks.leaseMs): bounds where claimed messages can be (store/overview.ts) */
  leaseMs: number
  everyMs?: number
}

export class OverviewFeed {
  readonly #pool: Pool
  readonly #log: Logger
  readonly #everyMs: number
  readonly #claimWindow: { leaseMs: number, slackMs: number }
  readonly #streams = new Set<Stream>()
  #timer: NodeJS.Timeout | undefined
  #reading: Promise<QueueOverview[]> | undefined
  #last: { at: number, overview: QueueOverview[] } | undefined
  #lastFrame: Buffer | undefined
  #closed = false

  constructor (pool: Pool, log: Logger, opts: OverviewFeedOptions) {
    this.#pool = pool
    this.#log = log
    this.#everyMs = opts.everyMs ?? OVERVIEW_FEED_MS
    this.#claimWindow = { leaseMs: opts.leaseMs, slackMs: LEASE_SLACK_MS }
  }

  get open (): number { return this.#streams.size }

  /**
   * The overview, at most maxAgeMs old (the streams: everyMs; a GET: only a read already under way).
   * Callers meanwhile share one read, and the feed's single connection runs one at a time, so polling
   * clients cannot multiply the queries.
   */
  async read (maxAgeMs = 0): Promise<QueueOverview[]> {
    if (this.#last !== undefined && Date.now() - this.#last.at < maxAgeMs) return this.#last.overview
    this.#reading ??= queueOverview(this.#pool, this.#claimWindow)
      .then((overview) => {
        this.#last = { at: Date.now(), overview }
        return overview
      })
      .finally(() => { this.#reading = undefined })
    return await this.#reading
  }

  /** A new stream on this socket, or null when MAX_OVERVIEW_STREAMS are open. Its first event comes at once. */
  subscribe (socket: Socket): PassThrough | null {
    if (this.#closed || this.#streams.size >= MAX_OVERVIEW_STREAMS) return null
    const stream: Stream = { out: new PassThrough(), socket, behind: 0, fresh: true }
    this.#streams.add(stream)
    stream.out.once('close', () => this.#drop(stream))
    // a retry hint for EventSource-style clients; the dashboard reconnects on its own
    stream.out.write(`retry: ${this.#everyMs * 2}\n\n`)
    if (this.#lastFrame !== undefined) {
      stream.out.write(this.#lastFrame)
      stream.fresh = false
    }
    // #tick catches its own errors: these catches only keep a promise from floating
    this.#timer ??= setInterval(() => { this.#tick().catch(() => {}) }, this.#everyMs).unref()
    if (this.#lastFrame === undefined) this.#tick().catch(() => {})
    return stream.out
  }

  /**
   * Cuts every stream and its socket (app close): a dashboard reconnects by itself, and a client that
   * reads nothing cannot hold the shutdown for its grace.
   */
  close (): void {
    this.#closed = true
    for (const s of this.#streams) this.#cut(s)
    this.#streams.clear()
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  #cut (s: Stream): void {
    s.out.destroy()
    s.socket.destroy()
  }

  #drop (stream: Stream): void {
    this.#streams.delete(stream)
    if (this.#streams.size === 0) {
      clearInterval(this.#timer)
      this.#timer = undefined
      // a later first stream gets a fresh overview, not one from before the pause
      this.#lastFrame = undefined
    }
  }

  async #tick (): Promise<void> {
    if (this.#streams.size === 0) return
    let frame: Buffer
    try {
      // half a period: a timer that fires a little early still reads afresh
      const json = JSON.stringify(await this.read(this.#everyMs / 2))
      // one Buffer for every stream: written by reference, never copied per stream
      frame = Buffer.from(`event: overview\ndata: ${json}\n\n`)
      // nothing changed: a line that says so, instead of the whole overview again
      if (this.#lastFrame?.equals(frame) === true) frame = SAME
      else this.#lastFrame = frame
    } catch (err) {
      // the page shows it in words and keeps the stream: the next second may read again
      this.#log.warn({ err }, 'dashboard overview: read failed')
      const message = isApiError(err) ? err.message : 'the overview could not be read'
      frame = Buffer.from(`event: problem\ndata: ${JSON.stringify({ message })}\n\n`)
    }
    for (const s of this.#streams) {
      // a client that reads slowly gets the next frame it has room for, so each stream holds at most
      // one unsent frame; one that reads nothing for MAX_BEHIND_TICKS is cut. A new stream's first frame
      // goes whatever it holds: its response may not be flowing yet (an attack-round fix had first
      // overviews wait a second after the last dashboard closed)
      if (s.fresh) {
        s.fresh = false
        s.out.write(frame === SAME ? this.#lastFrame! : frame)
      } else if (s.out.readableLength === 0) {
        const skipped = s.behind > 0
        s.behind = 0
        // after a skipped frame the client may lack the latest overview: never tell it "same" then
        s.out.write(frame === SAME && skipped ? this.#lastFrame! : frame)
      } else if (++s.behind > MAX_BEHIND_TICKS) {
        this.#streams.delete(s)
        this.#cut(s)
      }
    }
  }
}

const SAME = Buffer.from('event: same\ndata: {}\n\n')
