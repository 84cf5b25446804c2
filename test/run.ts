// `npm test`: runs tap against DATABASE_URL, or against an embedded PostgreSQL started here when
// DATABASE_URL is unset, so the suite works on a machine with nothing installed.
import { spawn } from 'node:child_process'
import { resolve } from 'node:path'
import pino from 'pino'
import { startEmbedded, type Embedded } from '../lib/db/embedded.js'

const log = pino({ level: 'info' })
let embedded: Embedded | undefined
const env = { ...process.env }
if (env.DATABASE_URL === undefined || env.DATABASE_URL === '') {
  // a throwaway cluster: nothing in it must survive a crash, so it skips flushing to disk
  embedded = await startEmbedded(resolve('data', 'test'), log, {
    settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' }
  })
  env.DATABASE_URL = embedded.connectionString
}
const tap = spawn(process.execPath, [resolve('node_modules/tap/dist/esm/run.mjs'), ...process.argv.slice(2)], { stdio: 'inherit', env })
const code: number = await new Promise((resolve) => tap.on('exit', (c, sig) => resolve(c ?? (sig !== null ? 1 : 0))))
await embedded?.stop()
process.exit(code)
