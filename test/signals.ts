// Waiting on an emitter's signal instead of the clock: the first event that satisfies `until`.
import type { EventEmitter } from 'node:events'
import { SKIP_CLAIM_BACKOFF_MS } from '../lib/delivery/producer.js'
import type { Worker } from '../lib/delivery/worker.js'

export async function signal<A extends unknown[]> (emitter: EventEmitter<any>, event: string,
  until: (...args: A) => boolean = () => true, ms = 10_000): Promise<A> {
  return await new Promise<A>((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, on)
      reject(new Error(`no '${event}' signal in ${ms} ms`))
    }, ms)
    function on (...args: A): void {
      if (!until(...args)) return
      clearTimeout(timer)
      emitter.off(event, on)
      resolve(args)
    }
    emitter.on(event, on)
  })
}

/** resolves, with how long it sleeps, when the worker next goes to sleep for long: nothing left to claim */
export async function workerAsleep (w: Worker): Promise<[number]> {
  return await signal<[number]>(w, 'idle', (ms) => ms > SKIP_CLAIM_BACKOFF_MS)
}
