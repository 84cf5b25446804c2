import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ConfigError, loadConfig, substitutePlaceholders } from '../lib/config.js'

function dir (files: Record<string, string>): string {
  const d = mkdtempSync(join(tmpdir(), 'hookpost-config-'))
  for (const [name, text] of Object.entries(files)) writeFileSync(join(d, name), text)
  return d
}

t.test('platformatic.json placeholders are filled from the environment', async (t) => {
  const cwd = dir({
    'platformatic.json': JSON.stringify({
      server: { hostname: '{MY_HOST}', port: '{MY_PORT}', logger: { level: '{LVL}' } },
      db: { connectionString: '{DB}' },
      authorization: { adminSecret: '{SECRET}' },
      hooks: { lock: 7, leaderPoll: '{POLL}' }
    })
  })
  const c = loadConfig({ cwd, env: { MY_HOST: '0.0.0.0', MY_PORT: '4000', LVL: 'debug', DB: 'postgres://u:p@h:5/d', SECRET: 'abcdefgh"quote', POLL: '250' } })
  t.equal(c.server.hostname, '0.0.0.0')
  t.equal(c.server.port, 4000)
  t.equal(c.server.logLevel, 'debug')
  t.equal(c.db.connectionString, 'postgres://u:p@h:5/d')
  t.equal(c.adminSecret, 'abcdefgh"quote', 'a value with a quote survives JSON substitution')
  t.equal(c.hooks.lock, 7)
  t.equal(c.hooks.leaderPollMs, 250)
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.server), 'frozen')
})

t.test('environment beats .env, .env beats platformatic.json; unset placeholders mean defaults', async (t) => {
  const cwd = dir({
    'platformatic.json': JSON.stringify({ server: { port: '{PORT}' }, db: { connectionString: '{DATABASE_URL}' } }),
    '.env': 'PORT=5000\nPLT_SERVER_LOGGER_LEVEL=warn\n'
  })
  const fromDotenv = loadConfig({ cwd, env: {} })
  t.equal(fromDotenv.server.port, 5000)
  t.equal(fromDotenv.server.logLevel, 'warn')
  t.equal(fromDotenv.db.connectionString, null, 'no DATABASE_URL: embedded')
  t.equal(loadConfig({ cwd, env: { PORT: '6000' } }).server.port, 6000)
  const defaults = loadConfig({ cwd: dir({}), env: {} })
  t.equal(defaults.server.port, 3042)
  t.equal(defaults.server.hostname, '127.0.0.1')
  t.equal(defaults.adminSecret, null)
})

t.test('invalid settings stop start-up with an error naming the setting', async (t) => {
  const cases: Array<[Record<string, string>, string]> = [
    [{ PORT: 'eighty' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL'],
    [{ DATABASE_URL: 'not a url' }, 'DATABASE_URL'],
    [{ PLT_SERVER_LOGGER_LEVEL: 'loud' }, 'PLT_SERVER_LOGGER_LEVEL'],
    [{ PLT_ADMIN_SECRET: 'short' }, 'PLT_ADMIN_SECRET'],
    [{ HOOKPOST_DELIVERY_CONCURRENCY: '0' }, 'HOOKPOST_DELIVERY_CONCURRENCY'],
    [{ HOOKPOST_ALL_PROCESSES_DELIVER: 'maybe' }, 'HOOKPOST_ALL_PROCESSES_DELIVER'],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, 'OTEL_EXPORTER_OTLP_ENDPOINT'],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'grpc://x:4317' }, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x', OTEL_EXPORTER_OTLP_HEADERS: 'novalue' }, 'OTEL_EXPORTER_OTLP_HEADERS'],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x', OTEL_BSP_SCHEDULE_DELAY: '-1' }, 'OTEL_BSP_SCHEDULE_DELAY']
  ]
  for (const [env, setting] of cases) {
    let caught: unknown
    try {
      loadConfig({ cwd: dir({}), env })
    } catch (err) {
      caught = err
    }
    t.ok(caught instanceof ConfigError, `${JSON.stringify(env)} is refused`)
    t.equal((caught as ConfigError).setting, setting)
    t.match((caught as ConfigError).message, setting)
  }
  t.throws(() => loadConfig({ cwd: dir({ 'platformatic.json': '{ nope' }), env: {} }), /cannot parse/)
})

t.test('placeholder substitution', async (t) => {
  t.equal(substitutePlaceholders('{"a":"{X}","b":"{MISSING}"}', { X: 'y' }), '{"a":"y","b":""}')
})

t.test('a bad config makes the server exit with one line naming the setting', async (t) => {
  const { execFile } = await import('node:child_process')
  const { promisify } = await import('node:util')
  const cwd = dir({})
  const { SERVER_ARGS } = await import('./helpers.js')
  const err = await promisify(execFile)(process.execPath, SERVER_ARGS, {
    cwd, env: { PATH: process.env.PATH, PORT: 'eighty' }, timeout: 20_000
  }).then(() => null, (e: { code: number, stderr: string }) => e)
  t.ok(err, 'exits non-zero')
  t.equal(err?.code, 1)
  t.equal(err?.stderr.trim().split('\n').length, 1, 'one line')
  t.match(err?.stderr, /PORT/)
})

t.test('traces: the OTEL_* variables as the SDKs read them; none set, none loaded', async (t) => {
  const load = (env: Record<string, string>): ReturnType<typeof loadConfig>['tracing'] =>
    loadConfig({ cwd: dir({}), env }).tracing
  t.equal(load({}), null)
  t.same(load({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318/' }),
    { url: 'http://127.0.0.1:4318/v1/traces', headers: {}, serviceName: 'hookpost', exportDelayMs: 5000 })
  t.equal(load({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://b/t' })!.url,
    'https://b/t', 'the traces endpoint as it is')
  t.same(load({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a', OTEL_EXPORTER_OTLP_HEADERS: 'x-api-key=a%3Db, other = c ' })!.headers,
    { 'x-api-key': 'a=b', other: 'c' })
  t.equal(load({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a', OTEL_SDK_DISABLED: 'true' }), null)
  t.equal(load({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a', OTEL_TRACES_EXPORTER: 'none' }), null)
  t.equal(load({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a', OTEL_SERVICE_NAME: 'hooks-eu' })!.serviceName, 'hooks-eu')
})
