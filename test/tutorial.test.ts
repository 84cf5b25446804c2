// The README's tutorial, run with curl against a real server process.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'
import { eventually, receiver, spawnServer, testDatabase } from './helpers.js'

const run = promisify(execFile)

async function curl (...args: string[]): Promise<any> {
  const { stdout } = await run('curl', ['-sS', '--fail-with-body', '--max-time', '10', ...args])
  return JSON.parse(stdout)
}

t.test('the seed tutorial with curl: queue, message, cron, with pg-hooks field names', async (t) => {
  const target = await receiver(t)
  const server = await spawnServer(t, { DATABASE_URL: await testDatabase(t) })
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
