// How many GraphQL subscriptions this process serves. The count drives one fact the deliverer needs
// ("does anyone listen?"), so it must come back to zero whatever a client does: it counts
// subscriptions, each released exactly once when its iterator ends, and not connections, whose
// connection_init a client may send twice.

export class SubscriberCount {
  private n = 0

  constructor (private readonly onChange: (any: boolean) => void) {}

  get size (): number { return this.n }

  /** Counts one subscription; the function it returns releases it, once, however often it is called. */
  open (): () => void {
    if (this.n++ === 0) this.onChange(true)
    let released = false
    return () => {
      if (released) return
      released = true
      if (--this.n === 0) this.onChange(false)
    }
  }
}

/**
 * The events of `source` that `keep` accepts, as the iterator a subscription resolver returns. It holds
 * a count from `subscribers` until it ends: by return() (the client stopped, or closed the socket),
 * by throw(), or by its source running out.
 */
export function countedSubscription<T> (
  source: AsyncIterator<T>,
  keep: (value: T) => boolean,
  subscribers: SubscriberCount
): AsyncIterableIterator<T> {
  const release = subscribers.open()
  const it: AsyncIterableIterator<T> = {
    async next () {
      for (;;) {
        const r = await source.next()
        if (r.done === true) {
          release()
          return r
        }
        if (keep(r.value)) return r
      }
    },
    async return (value?: any) {
      release()
      return (await source.return?.(value)) ?? { done: true, value }
    },
    async throw (err?: unknown) {
      release()
      if (source.throw !== undefined) return await source.throw(err)
      throw err
    },
    [Symbol.asyncIterator] () { return it }
  }
  return it
}
