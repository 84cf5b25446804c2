// Waiting on an emitter's signal instead of the clock: the first event that satisfies `until`.
import type { EventEmitter } from 'node:events'

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
