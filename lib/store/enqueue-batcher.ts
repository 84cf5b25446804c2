// Group commit for the enqueue path. Every POST /messages is one durable commit, and a commit costs an
// fsync (~2,000 a second on this class of disk), so under concurrency the single-row INSERTs queue up
// behind the disk. Requests that arrive while an INSERT is in flight are coalesced into the next one:
// one commit covers all of them, and each caller still gets its reply only after that commit, so an
// accepted message is exactly as durable as before. A lone request goes at once: no timer, no delay.
import type { Pool } from 'pg'
import { createMessage, insertMessages, type Enqueued, type MessageInput, type OnEnqueued } from './messages.js'

// one statement's worth: beyond this the INSERT itself gets slower than the fsync it saves
const MAX_BATCH = 500

interface Waiting { input: MessageInput, resolve: (e: Enqueued) => void, reject: (err: unknown) => void }

export class EnqueueBatcher {
  private waiting: Waiting[] = []
  private running = false

  constructor (private readonly pool: Pool, private readonly onEnqueued?: OnEnqueued) {}

  async enqueue (input: MessageInput): Promise<Enqueued> {
    return await new Promise<Enqueued>((resolve, reject) => {
      this.waiting.push({ input, resolve, reject })
      if (!this.running) void this.drain()
    })
  }

  private async drain (): Promise<void> {
    this.running = true
    while (this.waiting.length > 0) {
      const batch = this.waiting.splice(0, MAX_BATCH)
      if (batch.length > 1) {
        try {
          const out = await insertMessages(this.pool, batch.map(w => w.input), this.onEnqueued)
          batch.forEach((w, i) => w.resolve(out[i]!))
          continue
        } catch {
          // one bad message (an unknown queue, say) fails the whole statement: retry one by one so
          // that only it gets the error
        }
      }
      for (const w of batch) {
        try {
          w.resolve(await createMessage(this.pool, w.input, this.onEnqueued))
        } catch (err) {
          w.reject(err)
        }
      }
    }
    this.running = false
  }
}
