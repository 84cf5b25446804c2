// A stoppable background loop, the shape the worker and the leader's services share: one pass at a
// time, an abortable sleep between passes, notify() to run the next pass at once, and a capped backoff
// after contiguous errors (logged, never thrown). Time comes from the injected Clock.
import { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import { systemClock, type Clock } from './clock.js'

const ERROR_BACKOFF_MIN_MS = 100
const ERROR_BACKOFF_MAX_MS = 5000

/** What every loop emits; subclasses add their own events to these. */
export interface LoopEvents {
  /** a pass ended and the loop sleeps this long, unless notified: tests wait on it, not on the clock */
  idle: [sleepMs: number]
}

type Events<E> = { [K in keyof (E & LoopEvents)]: (E & LoopEvents)[K] extends unknown[] ? (E & LoopEvents)[K] : never }

export abstract class Loop<E = {}> extends EventEmitter<Events<E>> {
  private running = false
  protected stopping = false
  private done: Promise<void> | undefined
  private wakeUp: (() => void) | undefined
  private woken = false

  constructor (protected readonly log: Logger, private readonly what: string,
    protected readonly clock: Clock = systemClock) {
    super()
  }

  get active (): boolean { return this.running }

  start (): void {
    if (this.running) return
    this.running = true
    this.stopping = false
    this.done = this.run()
  }

  /** Work may be waiting (a NOTIFY, a reconnect): run the next pass now rather than after the sleep. */
  notify (): void {
    this.wake()
  }

  /**
   * Run another pass as soon as the current one ends, or now if asleep. notify() is the public door
   * and subclasses may add to it (the worker resets its claim windows); wake() is only the wake-up.
   */
  protected wake (): void {
    this.woken = true
    this.wakeUp?.()
  }

  /** One pass; resolves to how long to sleep before the next (0: go again at once). */
  protected abstract pass (): Promise<number>

  private async run (): Promise<void> {
    let errors = 0
    while (!this.stopping) {
      this.woken = false
      let sleepMs: number
      try {
        sleepMs = await this.pass()
        errors = 0
      } catch (err) {
        errors++
        sleepMs = Math.min(ERROR_BACKOFF_MAX_MS, ERROR_BACKOFF_MIN_MS * 2 ** Math.min(errors, 10))
        this.log.error({ err, retryInMs: sleepMs }, `${this.what} failed`)
      }
      if (this.stopping || this.woken || sleepMs <= 0) continue
      await new Promise<void>((resolve) => {
        const cancel = this.clock.after(sleepMs, done)
        function done (): void { cancel(); resolve() }
        this.wakeUp = done
        ;(this as EventEmitter<LoopEvents>).emit('idle', sleepMs)
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
