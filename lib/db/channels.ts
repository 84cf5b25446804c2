// The NOTIFY channels hookpost uses, and the statement that wakes their listeners. The trigger in
// migrations/001.do.sql notifies CHANNELS.messages by name too: SQL cannot import this.
import type { Statement } from './query.js'

export const CHANNELS = {
  /**
   * a message was inserted or rescheduled: the worker looks for due work. The payload 'lane' (from the
   * insert trigger, migrations/013.do.sql): one was inserted into the limited lane
   */
  messages: 'hookpost_messages',
  /** a cron was created or changed: the scheduler looks again */
  crons: 'hookpost_crons',
  /** delivery outcomes, published by whichever process delivered, for every process's subscribers */
  events: 'hookpost_events',
  /** a queue was paused or disabled (the payload is its id): every worker gives back what it holds of it */
  queues: 'hookpost_queues'
} as const

export type Channel = typeof CHANNELS[keyof typeof CHANNELS]

/** Tell every process LISTENing on the channel this payload (sent at commit). */
export const notifyWith = (channel: Channel, payload: string): Statement =>
  ({ text: 'SELECT pg_notify($1, $2)', values: [channel, payload] })

/** Wake every process LISTENing on the channel (sent at commit, once per transaction and channel). */
export const notify = (channel: Channel): Statement =>
  ({ text: "SELECT pg_notify($1, '')", values: [channel] })
