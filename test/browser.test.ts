// A real browser (Debian's chromium, driven by playwright-core) uses /graphiql and /documentation on
// a running server. CI installs chromium (.ci/run); on a machine without it the test says so and is
// skipped, except under CI, where a missing browser is a failure.
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type tap from 'tap'
import { chromium, type Browser, type Page } from 'playwright-core'
import { spawnServer, testDatabase } from './helpers.js'

const CHROMIUM = process.env.CHROMIUM_PATH ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find(p => existsSync(p))
const missing = CHROMIUM === undefined && process.env.CI === undefined ? 'chromium is not installed (.ci/run installs it)' : false

const LAUNCH = {
  executablePath: CHROMIUM!,
  headless: true,
  // no sandbox as root; no background networking: this machine has no internet
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
}

/** GraphiQL's docs explorer, opened as a user would: it lists the schema's types, and no error shows. */
async function docsExplorerLists (t: Pick<typeof tap, 'equal'>, page: Page, shot: string): Promise<void> {
  await page.getByRole('button', { name: 'Show Documentation Explorer' }).click({ timeout: 20_000 })
  const docs = page.locator('.graphiql-doc-explorer')
  await docs.getByText('All Schema Types').waitFor({ timeout: 20_000 })
  for (const type of ['Queue', 'Message', 'Cron']) {
    t.equal(await docs.locator('a.graphiql-doc-explorer-type-name', { hasText: new RegExp(`^${type}$`) }).count(), 1,
      `the docs explorer lists ${type}`)
  }
  t.equal(await page.locator('.graphiql-doc-explorer-error').count(), 0, 'no schema error shown')
  await page.screenshot({ path: shot })
}

// one browser for both scenarios (a launch costs seconds of CPU), each in a fresh context of its own:
// no cookies nor storage carried from one to the other
let launched: Promise<Browser> | undefined
async function newPage (sub: Pick<typeof tap, 'teardown'>): Promise<Page> {
  if (launched === undefined) {
    launched = chromium.launch(LAUNCH)
    const browser = launched
    t.teardown(async () => { await (await browser).close() })
  }
  const context = await (await launched).newContext()
  sub.teardown(async () => { await context.close() })
  return await context.newPage()
}

t.test('GraphiQL and the OpenAPI UI in headless Chromium', { skip: missing }, async (t) => {
  t.ok(CHROMIUM, 'chromium is installed')
  const server = await spawnServer(t, { DATABASE_URL: await testDatabase(t) })
  await fetch(`${server.url}/queues`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'browser-queue', callbackUrl: 'http://127.0.0.1:9/b' }) })

  const page = await newPage(t)
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
  await docsExplorerLists(t, page, join(shots, 'graphiql-docs.png'))

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

t.test('GraphiQL with an admin secret: the secret in the Headers tab, then the schema loads', { skip: missing }, async (t) => {
  const secret = 'browser-admin-secret'
  const server = await spawnServer(t, { DATABASE_URL: await testDatabase(t), PLT_ADMIN_SECRET: secret })
  const page = await newPage(t)
  const shots = mkdtempSync(join(tmpdir(), 'hookpost-browser-'))
  t.comment(`screenshots in ${shots}`)
  await page.goto(`${server.url}/graphiql`)
  // as the comment in main.js tells a user: the secret goes in the Headers tab
  await page.getByRole('button', { name: 'Headers' }).click({ timeout: 20_000 })
  await page.locator('.graphiql-editor-tool .graphiql-editor:visible .CodeMirror').click()
  await page.keyboard.insertText(JSON.stringify({ 'X-PLATFORMATIC-ADMIN-SECRET': secret }))
  // GraphiQL takes an edit in after a short debounce (it keeps no trace of headers it is not told to
  // persist), so re-fetch until the introspection goes out with the secret, as a user would click again
  for (let i = 0; ; i++) {
    const [response] = await Promise.all([
      page.waitForResponse(r => r.url().endsWith('/graphql') && r.request().postData()?.includes('IntrospectionQuery') === true),
      page.getByRole('button', { name: 'Re-fetch GraphQL schema' }).click()
    ])
    if (response.status() === 200) break
    if (i === 20) throw new Error('the schema never loaded with the secret')
  }
  await docsExplorerLists(t, page, join(shots, 'graphiql-secret-docs.png'))
  await page.locator('.graphiql-execute-button').click()
  await page.waitForFunction("document.querySelector('.result-window')?.textContent?.includes('\"queues\"')", null, { timeout: 20_000 })
  t.notMatch(await page.locator('.result-window').innerText(), /401|Unauthorized/, 'the query ran with the secret')
})
