// A stoppable background loop, the shape the worker, the cron scheduler and retention share:
// one pass at a time, an abortable sleep between passes, notify() to run the next pass at once,
// and a capped backoff after contiguous errors (logged, never thrown).
import { EventEmitter } from 'node:events'
import type { Logger } from 'pino'

const ERROR_BACKOFF_MIN_MS = 100
const ERROR_BACKOFF_MAX_MS = 5000

export abstract class Loop extends EventEmitter {
  private running = false
  protected stopping = false
  private done: Promise<void> | undefined
  private wakeUp: (() => void) | undefined
  private notified = false

  constructor (protected readonly log: Logger, private readonly what: string) {
    super()
  }

  get active (): boolean { return this.running }

  start (): void {
    if (this.running) return
    this.running = true
    this.stopping = false
    this.done = this.run()
  }

  /** Work may be waiting: run the next pass now rather than after the sleep. */
  notify (): void {
    this.notified = true
    this.wakeUp?.()
  }

  /** One pass; resolves to how long to sleep before the next (0: go again at once). */
  protected abstract pass (): Promise<number>

  /** Run another pass as soon as the current one ends (or now, if asleep). */
  protected nudge (): void {
    this.notified = true
    this.wakeUp?.()
  }

  private async run (): Promise<void> {
    let errors = 0
    while (!this.stopping) {
      this.notified = false
      let sleepMs: number
      try {
        sleepMs = await this.pass()
        errors = 0
      } catch (err) {
        errors++
        sleepMs = Math.min(ERROR_BACKOFF_MAX_MS, ERROR_BACKOFF_MIN_MS * 2 ** Math.min(errors, 10))
        this.log.error({ err, retryInMs: sleepMs }, `${this.what} failed`)
      }
      if (this.stopping || this.notified || sleepMs <= 0) continue
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, sleepMs)
        function done (): void { clearTimeout(timer); resolve() }
        this.wakeUp = done
      })
      this.wakeUp = undefined
    }
  }

  /** Stop after the pass in flight. */
  protected async stopLoop (): Promise<void> {
    this.stopping = true
    this.wakeUp?.()
    await this.done
  }

  protected markStopped (): void {
    this.running = false
  }

  async stop (): Promise<void> {
    if (!this.running) return
    await this.stopLoop()
    this.markStopped()
  }
}
