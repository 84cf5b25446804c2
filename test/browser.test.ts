// A real browser (Debian's chromium, driven by playwright-core) uses /graphiql and /documentation on
// a running server. CI installs chromium (.ci/run); on a machine without it the test says so and is
// skipped, except under CI, where a missing browser is a failure.
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { chromium, type Browser } from 'playwright-core'
import { spawnServer, testDatabase } from './helpers.js'

const CHROMIUM = process.env.CHROMIUM_PATH ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find(p => existsSync(p))
const missing = CHROMIUM === undefined && process.env.CI === undefined ? 'chromium is not installed (.ci/run installs it)' : false

t.test('GraphiQL and the OpenAPI UI in headless Chromium', { skip: missing }, async (t) => {
  t.ok(CHROMIUM, 'chromium is installed')
  const server = await spawnServer(t, { DATABASE_URL: await testDatabase(t) })
  await fetch(`${server.url}/queues`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'browser-queue', callbackUrl: 'http://127.0.0.1:9/b' }) })

  const browser: Browser = await chromium.launch({
    executablePath: CHROMIUM!,
    headless: true,
    // no sandbox as root; no background networking: this machine has no internet
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
  t.teardown(async () => { await browser.close() })
  const page = await browser.newPage()
  // screenshots, to look at after a failure: a fresh directory per run, never a shared fixed path
  const shots = mkdtempSync(join(tmpdir(), 'hookpost-browser-'))
  t.comment(`screenshots in ${shots}`)
  const failed: string[] = []
  page.on('requestfailed', (r) => failed.push(r.url()))

  // GraphiQL: run a query and see its result
  await page.goto(`${server.url}/graphiql?query=${encodeURIComponent('{ queues { name callbackUrl } countQueues { total } }')}`)
  await page.locator('.graphiql-execute-button').click({ timeout: 20_000 })
  await page.waitForFunction("document.querySelector('.result-window')?.textContent?.includes('browser-queue')", null, { timeout: 20_000 })
  const result = await page.locator('.result-window').innerText()
  t.match(result, /"total": 1/, 'the result pane shows the answer')
  await page.screenshot({ path: join(shots, 'graphiql.png') })

  // the OpenAPI UI: try GET /queues and see the response
  await page.goto(`${server.url}/documentation`)
  const op = page.locator('.opblock-get', { hasText: '/queues' }).filter({ hasNotText: '{id}' }).first()
  await op.locator('.opblock-summary').click({ timeout: 20_000 })
  await op.locator('button.try-out__btn').click()
  await op.locator('button.execute').click()
  await op.locator('.live-responses-table').waitFor({ timeout: 20_000 })
  const body = await op.locator('.live-responses-table').innerText()
  t.match(body, /^200/m, 'status 200')
  t.match(body, /"name": "browser-queue"/, 'the live response shows the queue')
  await page.screenshot({ path: join(shots, 'documentation.png') })

  t.same(failed.filter(u => !u.startsWith(server.url)), [], 'nothing was fetched from outside the server')
})
