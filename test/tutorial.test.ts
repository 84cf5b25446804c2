// The README's tutorial, run with curl against a real server process.
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { promisify } from 'node:util'
import t from 'tap'
import { eventually, receiver, spawnServer, testDatabase } from './helpers.js'

const run = promisify(execFile)

async function curl (...args: string[]): Promise<any> {
  const { stdout } = await run('curl', ['-sS', '--fail-with-body', '--max-time', '10', ...args])
  return JSON.parse(stdout)
}

// one server process for the three (spawning one costs seconds of CPU), each on queues of its own;
// the README's section first, as its output names queue 1
const server = await spawnServer(t, { DATABASE_URL: await testDatabase(t) })

t.test("the README's events section, its curl commands run as written against a real server", async (t) => {
  const target = await receiver(t)
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
  const section = readme.slice(readme.indexOf('## Events and subscriptions'))
  const blocks = [...section.slice(0, section.indexOf('\n## ', 5)).matchAll(/```sh\n([\s\S]*?)```/g)].map(m => m[1]!)
  t.equal(blocks.length, 3, 'publish, catalogue, replay')
  const outputs: string[] = []
  for (const block of blocks) {
    const script = block.replaceAll('http://127.0.0.1:3042', server.url).replaceAll('http://127.0.0.1:4000', target.url)
    const { stdout } = await run('bash', ['-euo', 'pipefail', '-c', script], { timeout: 20_000 })
    outputs.push(stdout)
  }
  // the queue, then the publish: it went to the one queue subscribed to order.*, whose filter it matches
  t.match(outputs[0], /"endpoints":1/)
  t.match(outputs[0], /"deliveries":\[\{"messageId":\d+,"queueId":1/)
  const [r] = await target.waitFor(1)
  t.equal(r!.url, '/billing')
  t.equal(r!.headers['x-hookpost-event-type'], 'order.created')
  const envelope = JSON.parse(r!.body)
  t.same([envelope.type, envelope.data], ['order.created', { order: 42, country: 'DE' }])
  t.match(outputs[1], /"name":"order.created"/)
  t.match(outputs[2], /\{"queueId":1,"replayed":\d+,"more":false\}/)
})

t.test('the seed tutorial with curl: queue, message, cron, with pg-hooks field names', async (t) => {
  const target = await receiver(t)
  const json = ['-H', 'content-type: application/json']

  const queue = await curl('-X', 'POST', `${server.url}/queues`, ...json, '-d', JSON.stringify({
    name: 'tutorial', callbackUrl: `${target.url}/hook`, method: 'POST', headers: { 'x-tutorial': 'yes' }, maxRetries: 3
  }))
  t.match(queue, { id: Number, name: 'tutorial', callbackUrl: `${target.url}/hook`, method: 'POST', headers: { 'x-tutorial': 'yes' }, maxRetries: 3, deadLetterQueueId: null, createdAt: String, updatedAt: String })

  const message = await curl('-X', 'POST', `${server.url}/messages`, ...json, '-d', JSON.stringify({ queueId: queue.id, body: '{"hello":"world"}' }))
  t.match(message, { id: Number, queueId: queue.id, body: '{"hello":"world"}', failed: false, retries: 0, cronId: null, when: String, createdAt: String })

  const cron = await curl('-X', 'POST', `${server.url}/crons`, ...json, '-d', JSON.stringify({ queueId: queue.id, schedule: '0 * * * *', body: '{"tick":true}' }))
  t.match(cron, { id: Number, queueId: queue.id, schedule: '0 * * * *', body: '{"tick":true}', createdAt: String, updatedAt: String })

  const listed = await curl(`${server.url}/queues/${queue.id}/messages`)
  t.equal(listed.length >= 1, true)
  t.equal(listed[0].id, message.id)

  // and the running server delivers it
  const [received] = await target.waitFor(1)
  t.equal(received!.url, '/hook')
  t.equal(received!.body, '{"hello":"world"}')
  t.equal(received!.headers['x-tutorial'], 'yes')
  t.equal(received!.headers['x-hookpost-message-id'], String(message.id))
  const sent = await eventually(async () => { const m = await curl(`${server.url}/messages/${message.id}`); return m.sentAt !== null && m })
  t.match(sent, { failed: false, retries: 0, lastStatus: 200 })
  const attempts = await curl(`${server.url}/messages/${message.id}/attempts`)
  t.match(attempts, [{ attempt: 1, statusCode: 200, errorKind: null }])
})

t.test("pg-hooks users' idioms against a real server process: typed variables, re-runs, GET-then-PUT, fields/like/or, relations", async (t) => {
  type Answer = { status: number, json: any, headers: Headers }
  const call = async (method: string, path: string, body?: unknown): Promise<Answer> => {
    const res = await fetch(`${server.url}${path}`, {
      method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body)
    })
    return { status: res.status, json: await res.json(), headers: res.headers }
  }
  // a setup script run twice: each run creates "its" queue again (pg-hooks allows repeated names)
  const first = await call('POST', '/queues', { name: 'script', callbackUrl: 'http://127.0.0.1:9/s' })
  const second = await call('POST', '/queues', { name: 'script', callbackUrl: 'http://127.0.0.1:9/s' })
  t.same([first.status, second.status], [200, 200], 'a create answers 200, twice')
  // GraphQL with variables typed as pg-hooks types them
  const gql = await call('POST', '/graphql', {
    query: 'mutation ($i: [MessageInput]!) { insertMessages(inputs: $i) { id body when } }',
    variables: { i: [{ queueId: first.json.id, body: 'one', when: '2099-01-01T00:00:00.000Z', headers: '{"x-a":"1"}' }] }
  })
  t.equal(gql.status, 200, JSON.stringify(gql.json.errors))
  const m = gql.json.data.insertMessages[0]
  t.match(m, { body: 'one', when: '2099-01-01T00:00:00.000Z' })
  const page = await call('POST', '/graphql', { query: 'query ($l: LimitInt) { queues(limit: $l) { id } }', variables: { l: 1 } })
  t.equal(page.json.data.queues.length, 1, 'LimitInt')
  // GET-then-PUT
  const got = await call('GET', `/queues/${first.json.id}`)
  const put = await call('PUT', `/queues/${first.json.id}`, { ...got.json, maxRetries: 2 })
  t.equal(put.status, 200)
  t.equal(put.json.maxRetries, 2)
  // fields, like, or
  const listed = await call('GET', `/queues?where.name.like=scr%25&where.or=(id.eq=${first.json.id}|id.eq=${second.json.id})&fields=id`)
  t.same(listed.json, [{ id: first.json.id }, { id: second.json.id }])
  // every relation route
  t.equal((await call('GET', `/messages/${m.id}/queue`)).json.id, first.json.id)
  t.equal((await call('GET', `/messages/${m.id}/cron`)).status, 404)
  t.equal((await call('GET', `/queues/${first.json.id}/messages`)).json.length, 1)
  for (const path of [`/queues/${first.json.id}/crons`, `/queues/${first.json.id}/queues`]) t.same((await call('GET', path)).json, [], path)
  t.equal((await call('GET', `/queues/${first.json.id}/dead_letter_queue`)).status, 404)
  const cron = await call('POST', '/crons', { queueId: first.json.id, schedule: '0 * * * *' })
  t.equal((await call('GET', `/crons/${cron.json.id}/queue`)).json.id, first.json.id)
  t.same((await call('GET', `/crons/${cron.json.id}/messages`)).json, [])
  const doc = await call('GET', '/documentation/json')
  t.equal(doc.json.paths['/queues'].get.operationId, 'getQueues', "Platformatic's operationIds")
})
