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
    'listener', 'producer', 'reaper', 'schedule', 'sender', 'timestamptz', 'worker'],
  ['api-errors', 'api-messages', 'api-parity', 'api-relations', 'input-strictness', 'migrations', 'outbox', 'retention',
    'signing'],
  ['fuzz', 'graphql', 'graphql-events', 'graphql-limits', 'graphql-subscriptions'],
  ['dashboard', 'memory', 'metrics', 'publish-outbox', 'ssrf', 'stats', 'tracing']
]
// wall times at jobs=4 on 2 vCPUs, slowest first (shared-process-N: the Nth of SHARED_PROCESSES)
const SLOWEST_FIRST = ['shared-process-2', 'shared-process-3', 'shared-process-4', 'shared-process-1', 'browser',
  'failover', 'embedded', 'endpoint-health', 'flow-limits', 'flow-order', 'fanout', 'import-pg-hooks', 'security-auth',
  'cron-failover', 'plans', 'integrity', 'cron', 'delivery', 'pg-restart', 'tutorial']
rmSync('dist/test', { recursive: true, force: true }) // a deleted test must not run on from an old build
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.test.json', '--noCheck'],
  { stdio: 'inherit' })
for (const d of ['graphql', 'dashboard']) cpSync(`lib/${d}/static`, `dist/lib/${d}/static`, { recursive: true })
// test/x.test.ts names its compiled file; with none named, all of them (tap would skip dist/: it is gitignored)
const args = process.argv.slice(2).map(a => a.replace(/^(?:\.\/)?test\/(.+)\.ts$/, 'dist/test/$1.js'))
if (!args.some(a => a.endsWith('.js'))) {
  // tap gives each file a process, and its loaders cost ~1 s of CPU in each: the files below, which
  // neither spawn processes nor change process-wide state, share one (a file of imports, run in order).
  // Not cron nor delivery: they set the root test's jobs, which would run every file's tests side by side
  const files = readdirSync('dist/test').filter(f => f.endsWith('.test.js')).sort()
  const entries = new Map<string, string[]>(SHARED_PROCESSES.map((names, i) => [`shared-process-${i + 1}`, names]))
  const shared = SHARED_PROCESSES.flat()
  for (const f of files) {
    const name = f.replace(/\.test\.js$/, '')
    if (!shared.includes(name)) entries.set(name, [name])
  }
  // tap starts files in the order of their names, `jobs` at a time. The slowest go first, longest first,
  // so that none of them starts late and runs on alone at the end: their entries get names that sort
  // first, a file of one import each, as the shared processes are
  SLOWEST_FIRST.forEach((name, i) => {
    const names = entries.get(name)
    if (names === undefined) return
    entries.delete(name)
    const entry = `dist/test/${String(i).padStart(2, '0')}-${name}.test.js`
    writeFileSync(entry, names.map(n => `import './${n}.test.js'\n`).join(''))
    args.push(entry)
  })
  for (const [name, names] of entries) {
    if (names.length === 1 && names[0] === name) {
      args.push(`dist/test/${name}.test.js`)
    } else {
      const entry = `dist/test/${name}.test.js`
      writeFileSync(entry, names.map(n => `import './${n}.test.js'\n`).join(''))
      args.push(entry)
    }
  }
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
// the files tap runs are compiled JavaScript: its TypeScript loader (ts-node), which cost ~1 s of CPU in
// every test process, has nothing to do. TAP_TYPE_STRIP_ONLY=1 skips it; on Node < 22 tap's runner sets
// it to 0 in its own environment, so it is given as a test process's variable
const tapArgs = ['--test-env=TAP_TYPE_STRIP_ONLY=1', ...args]
const tap = spawn(process.execPath, [resolve('node_modules/tap/dist/esm/run.mjs'), ...tapArgs], { stdio: 'inherit', env })
const code: number = await new Promise((resolve) => tap.on('exit', (c, sig) => resolve(c ?? (sig !== null ? 1 : 0))))
await embedded?.stop()
process.exit(code)
