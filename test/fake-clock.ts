// A Clock (lib/delivery/clock.ts) that moves only when told: advance() runs the timers that fall due,
// in time order, so a test makes a sleep end or a deadline pass without waiting for it.
import type { Clock } from '../lib/delivery/clock.js'

interface Timer { at: number, fn: () => void, every: number | undefined, seq: number }

export class FakeClock implements Clock {
  private timers = new Set<Timer>()
  private seq = 0

  constructor (private t = 1_700_000_000_000) {}

  readonly now = (): number => this.t

  readonly after = (ms: number, fn: () => void): (() => void) => this.add(ms, fn, undefined)

  readonly every = (ms: number, fn: () => void): (() => void) => this.add(ms, fn, ms)

  /** timers waiting */
  get pending (): number { return this.timers.size }

  /** Move time forward by ms, running every timer that falls due on the way. */
  advance (ms: number): void {
    this.advanceTo(this.t + ms)
  }

  /** Move time to `at` (never back), running every timer due by then, earliest first. */
  advanceTo (at: number): void {
    for (;;) {
      let first: Timer | undefined
      for (const x of this.timers) {
        if (x.at > at) continue
        if (first === undefined || x.at < first.at || (x.at === first.at && x.seq < first.seq)) first = x
      }
      if (first === undefined) break
      this.t = Math.max(this.t, first.at)
      if (first.every !== undefined) first.at += Math.max(1, first.every)
      else this.timers.delete(first)
      first.fn()
    }
    this.t = Math.max(this.t, at)
  }

  /** Set the time, backwards too (a clock set before a cron's first tick); runs what falls due. */
  set (at: number): void {
    if (at < this.t) this.t = at
    else this.advanceTo(at)
  }

  private add (ms: number, fn: () => void, every: number | undefined): () => void {
    const timer: Timer = { at: this.t + Math.max(0, ms), fn, every, seq: this.seq++ }
    this.timers.add(timer)
    return () => { this.timers.delete(timer) }
  }
}
