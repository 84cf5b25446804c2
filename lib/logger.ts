import pino, { type Logger, type LoggerOptions } from 'pino'
import { ADMIN_SECRET_HEADER } from './api/auth.js'
import type { Config } from './config.js'

// Secrets never reach a log line, wherever they appear
export const REDACT_PATHS = [
  `req.headers["${ADMIN_SECRET_HEADER}"]`,
  `headers["${ADMIN_SECRET_HEADER}"]`,
  'adminSecret',
  '*.adminSecret',
  'config.adminSecret',
  'signingSecret',
  '*.signingSecret',
  '*.signingSecrets'
]

export function loggerOptions (config: Config): LoggerOptions {
  const opts: LoggerOptions = {
    level: config.server.logLevel,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' }
  }
  if (config.server.prettyLogs && prettyAvailable()) {
    opts.transport = { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } }
  }
  return opts
}

export function createLogger (config: Config): Logger {
  return pino(loggerOptions(config))
}

// pino-pretty is a dev dependency: a production install falls back to JSON lines
function prettyAvailable (): boolean {
  try {
    import.meta.resolve('pino-pretty')
    return true
  } catch {
    return false
  }
}
