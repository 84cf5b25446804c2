/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// A real browser (Debian's chromium, driven by playwright-core) uses /graphiql and /documentation on
// a running server. CI installs chromium (.ci/run); on a machine without it the test says so and is
// skipped, except under CI, where a missing browser is a failure.
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type tap from 'tap'
import { chromium, type Browser, type Page } from 'playwright-core'
import { receiver, spawnServer, testDatabase } from './helpers.js'

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

t.test('the dashboard: sign in, live counts, a failed message retried, pause, rotate, crons, events, 390 px', { skip: missing }, async (t) => {
  const secret = 'dashboard-admin-secret'
  let healthy = false
  const target = await receiver(t, (r, res) => {
    if (r.url.startsWith('/flaky') && !healthy) {
      res.statusCode = 500
      res.end('flaky says: the database is on fire')
    } else {
      res.end('ok')
    }
  })
  const server = await spawnServer(t, { DATABASE_URL: await testDatabase(t), PLT_ADMIN_SECRET: secret })
  const call = async (method: string, path: string, body?: unknown): Promise<any> => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { 'content-type': 'application/json', 'x-platformatic-admin-secret': secret },
      body: body === undefined ? undefined : JSON.stringify(body)
    })
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`)
    return await res.json()
  }
  const orders = await call('POST', '/queues', { name: 'orders', callbackUrl: `${target.url}/orders`, eventTypes: ['order.*'] })
  const flaky = await call('POST', '/queues', { name: 'flaky', callbackUrl: `${target.url}/flaky`, maxRetries: 0 })
  for (let i = 0; i < 3; i++) await call('POST', '/messages', { queueId: orders.id, body: { n: i }, idempotencyKey: `order-${i}` })
  const failing = await call('POST', '/messages', {
    queueId: flaky.id, body: { order: 42, items: ['a', 'b'] }, headers: { authorization: 'Bearer very-private-token' }
  })
  await call('POST', '/events', { type: 'order.created', payload: { order: 7 } })
  const cron = await call('POST', '/crons', { queueId: orders.id, schedule: '0 3 * * *', timezone: 'Europe/Rome' })
  await target.waitFor(5)

  const page = await newPage(t)
  await page.setViewportSize({ width: 1280, height: 900 })
  const shots = mkdtempSync(join(tmpdir(), 'hookpost-dashboard-'))
  t.comment(`screenshots in ${shots}`)
  const problems: string[] = []
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`) })
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`))
  const urls: string[] = []
  page.on('request', (r) => urls.push(r.url()))
  const shot = async (name: string): Promise<void> => {
    await page.screenshot({ path: join(shots, name), fullPage: true })
  }
  const cell = (queueId: number, column: string) => page.locator(`tr[data-queue="${queueId}"] td[data-label="${column}"]`)

  // sign in, with the keyboard: a wrong secret is refused in words, the right one shows the overview
  const started = Date.now()
  await page.goto(`${server.url}/dashboard`)
  const input = page.getByLabel('Admin secret')
  await input.waitFor({ timeout: 20_000 })
  await shot('sign-in.png')
  await input.fill('not the secret')
  await input.press('Enter')
  await page.getByText('That secret was refused.').waitFor({ timeout: 20_000 })
  await page.getByLabel('Admin secret').fill(secret)
  await page.getByLabel('Admin secret').press('Enter')
  await cell(flaky.id, 'Queue').getByText('flaky').waitFor({ timeout: 20_000 })
  t.comment(`first overview rendered ${Date.now() - started} ms after the page was asked for (sign-in included)`)
  // signed in, a reload: from navigation start to the first row, as the browser measures it (reported, not
  // asserted: a timed test fails on a busy machine, not on a slow page)
  await page.reload()
  const firstRow = await page.waitForFunction(() => document.querySelector('tr[data-queue]') !== null && performance.now(), null, { timeout: 20_000 })
  t.comment(`first render of the overview: ${Math.round(await firstRow.jsonValue() as number)} ms from navigation start`)

  // two queues with their live counts: what the receiver got, the overview shows without a reload
  await page.waitForFunction(([a, b]) =>
    document.querySelector(`tr[data-queue="${a}"] td[data-label="Delivered (1 h)"]`)?.textContent === '4' &&
    document.querySelector(`tr[data-queue="${b}"] td[data-label="Failed (1 h)"]`)?.textContent === '1', [orders.id, flaky.id], { timeout: 20_000 })
  t.equal(await cell(flaky.id, 'Success').innerText(), '0%')
  t.match(await cell(flaky.id, 'Last error').innerText(), /HTTP 500/, 'the last error is shown')
  t.equal(await cell(orders.id, 'State').innerText(), 'active')
  for (let i = 0; i < 2; i++) await call('POST', '/messages', { queueId: orders.id, body: { more: i } })
  await page.waitForFunction((a) => document.querySelector(`tr[data-queue="${a}"] td[data-label="Delivered (1 h)"]`)?.textContent === '6', orders.id, { timeout: 20_000 })
  t.pass('two more deliveries show up live')
  t.equal(await page.locator(`tr[data-queue="${orders.id}"] svg.chart rect.up`).count() > 0, true, 'the chart has a bar')
  await shot('overview.png')

  // a failed message: its attempt with status 500 and the response; the authorization header masked
  await cell(flaky.id, 'Queue').getByRole('link').click()
  await page.getByRole('heading', { name: 'flaky' }).waitFor({ timeout: 20_000 })
  await page.getByLabel('State').selectOption('failed')
  await page.getByRole('link', { name: `#${failing.id}` }).click()
  await page.getByRole('heading', { name: `Message #${failing.id}` }).waitFor({ timeout: 20_000 })
  const timeline = page.locator('ol.timeline')
  t.match(await timeline.innerText(), /Attempt 1/)
  t.match(await timeline.innerText(), /HTTP 500/, 'the attempt shows status 500')
  t.match(await timeline.innerText(), /flaky says: the database is on fire/, 'and the response snippet')
  t.match(await page.locator('pre.body').innerText(), /"items": \[/, 'the body is pretty-printed')
  t.notMatch(await page.locator('main').innerText(), /very-private-token/, 'the authorization header is masked')
  t.match(await page.locator('dl.headers').innerText(), /authorization\s+••••••••/)
  await shot('message-failed.png')

  // retry: the page follows the message until it is delivered
  healthy = true
  await page.getByRole('button', { name: 'Retry' }).click()
  await page.locator('.title-row .badge', { hasText: 'sent' }).waitFor({ timeout: 20_000 })
  t.match(await timeline.innerText(), /Attempt 2[^]*HTTP 200/, 'the second attempt succeeded')
  await shot('message-retried.png')

  // the other buttons of the flaky queue: nothing failed is left to redrive
  await page.getByRole('link', { name: `#${flaky.id}` }).click()
  await page.getByRole('button', { name: 'Redrive failed messages' }).click()
  await page.getByText('0 failed messages queued again.').waitFor({ timeout: 20_000 })

  // a message found by its idempotency key; a replay of the last hour: the event was delivered, so none
  await page.goto(`${server.url}/dashboard#/queues/${orders.id}`)
  await page.getByLabel('Search').fill('order-1')
  await page.getByLabel('Search').press('Enter')
  await page.getByText('1–1 of 1').waitFor({ timeout: 20_000 })
  t.equal(await page.locator('tbody tr').count(), 1, 'one message has that key')
  await page.getByLabel('Since (local time)').fill(new Date(Date.now() - 3_600_000 - new Date().getTimezoneOffset() * 60_000).toISOString().slice(0, 19))
  await page.getByRole('button', { name: 'Replay', exact: true }).click()
  await page.getByText('Replay: 0 event(s) sent again.').waitFor({ timeout: 20_000 })

  // pause a queue: its backlog grows while the other flows
  await page.getByRole('button', { name: 'Pause' }).click()
  await page.getByRole('button', { name: 'Resume' }).waitFor({ timeout: 20_000 })
  const before = target.requests.length
  for (let i = 0; i < 5; i++) {
    await call('POST', '/messages', { queueId: orders.id, body: { paused: i } })
    await call('POST', '/messages', { queueId: flaky.id, body: { flowing: i } })
  }
  await target.waitFor(before + 5)
  await page.goto(`${server.url}/dashboard#/`)
  await page.waitForFunction(([a, b]) =>
    document.querySelector(`tr[data-queue="${a}"] td[data-label="Backlog"]`)?.textContent === '5' &&
    document.querySelector(`tr[data-queue="${b}"] td[data-label="Delivered (1 h)"]`)?.textContent === '6', [orders.id, flaky.id], { timeout: 20_000 })
  t.equal(await cell(orders.id, 'State').innerText(), 'paused')
  t.notOk(target.requests.slice(before).some(r => r.url.startsWith('/orders')), 'nothing went to the paused queue')
  await shot('paused.png')

  // rotate (here: create) the signing secret: shown once, and the queue signs from then on
  await cell(orders.id, 'Queue').getByRole('link').click()
  await page.getByRole('button', { name: 'Create signing secret' }).click()
  const shown = await page.locator('code.secret').innerText()
  t.match(shown, /^whsec_/, 'the new secret is shown')
  t.equal((await call('GET', `/queues/${orders.id}`)).signed, true, 'the queue signs')
  await shot('secret-rotated.png')
  await page.getByRole('button', { name: 'I stored it: hide' }).click()
  t.equal(await page.locator('code.secret').count(), 0, 'and it is gone once hidden')

  // an error from the API is shown in words, naming the field
  await page.getByLabel('Retries after the first attempt').fill('1000')
  await page.getByRole('button', { name: 'Save settings' }).click()
  await page.locator('#banner').getByText(/maxRetries/).waitFor({ timeout: 20_000 })
  t.pass('a refused setting is explained')
  await page.getByLabel('Retries after the first attempt').fill('3')
  await page.getByRole('button', { name: 'Save settings' }).click()
  await page.getByText('Saved: maxRetries.').waitFor({ timeout: 20_000 })
  t.equal((await call('GET', `/queues/${orders.id}`)).maxRetries, 3, 'a setting is saved')
  // every control has a label a reader can announce
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button')]
    .filter(el => (el as HTMLInputElement).labels?.length === 0 && el.getAttribute('aria-label') === null && (el.textContent ?? '').trim() === '')
    .map(el => el.outerHTML))
  t.same(unlabelled, [], 'every control is labelled')
  await page.getByRole('button', { name: 'Resume' }).click()
  await page.getByRole('button', { name: 'Pause' }).waitFor({ timeout: 20_000 })

  // crons: the next five ticks, and pause
  await page.getByRole('link', { name: 'Crons' }).click()
  await page.getByRole('heading', { name: 'Crons' }).waitFor({ timeout: 20_000 })
  t.equal(await page.locator('ol.ticks li').count(), 5, 'five ticks ahead')
  await page.getByRole('button', { name: `Pause cron #${cron.id}` }).click()
  await page.getByRole('button', { name: `Resume cron #${cron.id}` }).waitFor({ timeout: 20_000 })
  t.equal((await call('GET', `/crons/${cron.id}`)).paused, true, 'the cron is paused')
  await shot('crons.png')

  // events, and one event's delivery to each endpoint
  await page.getByRole('link', { name: 'Events' }).click()
  // hookpost's own operational events are listed too: the type filter finds the one published here
  await page.getByLabel('Type').fill('order.created')
  await page.getByLabel('Type').press('Enter')
  // the filtered list replaces the whole one (which has order.created too): wait until every row is of the type
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('tbody tr')]
    return rows.length > 0 && rows.every(r => r.querySelector('td[data-label="Type"]')?.textContent === 'order.created')
  }, null, { timeout: 20_000 })
  t.equal(await page.locator('tbody tr').count(), 1, 'one event of that type')
  await page.locator('tbody tr').getByRole('link').click()
  await page.getByRole('heading', { name: /order\.created/ }).waitFor({ timeout: 20_000 })
  t.match(await page.locator('table').innerText(), /sent/, 'the event was delivered to orders')
  await shot('event.png')

  // 390 px wide: the overview reads as cards, nothing wider than the screen
  await page.setViewportSize({ width: 390, height: 844 })
  await page.getByRole('link', { name: 'Queues' }).click()
  await cell(orders.id, 'Queue').getByText('orders').waitFor({ timeout: 20_000 })
  t.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 390), 'no horizontal scrolling at 390 px')
  await shot('overview-390.png')

  // sign out: the secret leaves the tab
  await page.getByRole('button', { name: 'Sign out' }).click()
  await page.getByLabel('Admin secret').waitFor({ timeout: 20_000 })
  t.equal(await page.evaluate(() => sessionStorage.length), 0, 'nothing is left in sessionStorage')

  // Chromium logs each answer of 400 and up: the ones this test provoked, and nothing else
  const provoked = [401, 403, 400, 401].map(s => `error: Failed to load resource: the server responded with a status of ${s}`)
  t.same(problems.map(p => p.replace(/ \(.*\)$/, '')), provoked,
    'no console errors or warnings but the refusals provoked: no secret, a wrong one, a bad setting, signed out')
  t.same(urls.filter(u => !u.startsWith(server.url)), [], 'nothing was fetched from outside the server')
  t.notOk(urls.some(u => u.includes(secret)), 'the secret was never in a URL')
  t.notOk(JSON.stringify(server.logs).includes(secret), 'nor in the server\'s logs')
})
