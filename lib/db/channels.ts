// The NOTIFY channels hookpost uses. The trigger in migrations/001.do.sql notifies CHANNELS.messages
// by name too: SQL cannot import this.
export const CHANNELS = {
  /** a message was inserted or rescheduled: the worker looks for due work */
  messages: 'hookpost_messages',
  /** a cron was created or changed: the scheduler looks again */
  crons: 'hookpost_crons',
  /** delivery outcomes, published by whichever process delivered, for every process's subscribers */
  events: 'hookpost_events'
} as const

export type Channel = typeof CHANNELS[keyof typeof CHANNELS]
