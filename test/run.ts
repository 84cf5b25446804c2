// `npm test`: compiles the suite once, then runs tap on it against DATABASE_URL, or against an embedded
// PostgreSQL started here when DATABASE_URL is unset, so the suite works on a machine with nothing installed.
//
// Compiled once (tsc, no type check: `npm run typecheck` does that) because about 60 processes load the
// code: each test file, and the servers the tests spawn. Through tsx each one paid ~0.6 s of CPU to
// load it, ~1.2 s with tsx's cache cold, as on a fresh clone.
//
//   npm test                        the whole suite
//   npm test -- test/cron.test.ts   some files (any tap options may follow)
import { execFileSync, spawn } from 'node:child_process'
import { cpSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { resolve } from 'node:path'
import pino from 'pino'
import { startEmbedded, type Embedded } from '../lib/db/embedded.js'

const require = createRequire(import.meta.url)
const SHARED_PROCESSES = [
  ['api-crons', 'api-queues', 'arrays', 'backoff', 'completer', 'errors', 'events', 'executor', 'leader', 'lease', 'loop',
    'producer', 'reaper', 'schedule', 'sender', 'timestamptz', 'worker'],
  ['api-errors', 'api-messages', 'api-parity', 'api-relations', 'input-strictness', 'migrations', 'outbox', 'retention',
    'signing']
]
rmSync('dist/test', { recursive: true, force: true }) // a deleted test must not run on from an old build
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.test.json', '--noCheck'],
  { stdio: 'inherit' })
cpSync('lib/graphql/static', 'dist/lib/graphql/static', { recursive: true })
// test/x.test.ts names its compiled file; with none named, all of them (tap would skip dist/: it is gitignored)
const args = process.argv.slice(2).map(a => a.replace(/^(?:\.\/)?test\/(.+)\.ts$/, 'dist/test/$1.js'))
if (!args.some(a => a.endsWith('.js'))) {
  // tap gives each file a process, and its loaders cost ~1 s of CPU in each: the files below, which
  // neither spawn processes nor change process-wide state, share one (a file of imports, run in order)
  const files = readdirSync('dist/test').filter(f => f.endsWith('.test.js')).sort()
  SHARED_PROCESSES.forEach((names, i) => {
    const entry = `dist/test/shared-process-${i + 1}.test.js`
    writeFileSync(entry, names.map(n => `import './${n}.test.js'\n`).join(''))
    args.push(entry)
  })
  const shared = SHARED_PROCESSES.flat()
  args.push(...files.filter(f => !shared.includes(f.replace(/\.test\.js$/, ''))).map(f => `dist/test/${f}`))
}

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
const tap = spawn(process.execPath, [resolve('node_modules/tap/dist/esm/run.mjs'), ...args], { stdio: 'inherit', env })
const code: number = await new Promise((resolve) => tap.on('exit', (c, sig) => resolve(c ?? (sig !== null ? 1 : 0))))
await embedded?.stop()
process.exit(code)
