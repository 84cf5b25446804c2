// Time as the engine sees it. Passed in, so that tests move it (test/fake-clock.ts) instead of sleeping.
export interface Clock {
  /** epoch milliseconds */
  now: () => number
  /** run fn once after ms; returns what cancels it */
  after: (ms: number, fn: () => void) => () => void
  /** run fn every ms until cancelled; never keeps the process alive by itself */
  every: (ms: number, fn: () => void) => () => void
}

export const systemClock: Clock = {
  now: () => Date.now(),
  after: (ms, fn) => {
    const t = setTimeout(fn, ms)
    return () => clearTimeout(t)
  },
  every: (ms, fn) => {
    const t = setInterval(fn, ms)
    t.unref()
    return () => clearInterval(t)
  }
}
