// The transactional outbox, from an application's side: an order and its webhook in one transaction.
// If anything fails before COMMIT, neither the order nor the webhook exists; after COMMIT, hookpost
// delivers the webhook within milliseconds (the insert's NOTIFY wakes it).
//
//   DATABASE_URL=postgres://app:secret@127.0.0.1:5432/shop QUEUE_ID=1 npx tsx examples/outbox.ts "a book"
//
// The application role needs only: GRANT USAGE ON SCHEMA hookpost; GRANT EXECUTE ON FUNCTION
// hookpost.enqueue(...) (see README, "Transactional outbox").
import pg from 'pg'

const url = process.env.DATABASE_URL
const queueId = Number(process.env.QUEUE_ID ?? 1)
const item = process.argv[2] ?? 'a book'
if (url === undefined) {
  console.error('set DATABASE_URL to the database hookpost uses (the outbox lives next to your data)')
  process.exit(1)
}

const client = new pg.Client({ connectionString: url })
await client.connect()
try {
  await client.query(
    'CREATE TABLE IF NOT EXISTS orders ' +
    '(id serial PRIMARY KEY, item text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())'
  )
  await client.query('BEGIN')
  const { rows: [order] } = await client.query('INSERT INTO orders (item) VALUES ($1) RETURNING id, item', [item])
  // same transaction, same connection: the webhook exists exactly when the order does
  const { rows: [message] } = await client.query(
    'SELECT hookpost.enqueue($1, $2::jsonb, $3::jsonb, now(), $4) AS id',
    [
      queueId,
      JSON.stringify({ event: 'order.created', order }),
      JSON.stringify({ 'x-event': 'order.created' }),
      `order-${order.id}`
    ]
  )
  await client.query('COMMIT')
  console.log(`order ${order.id} saved; webhook message ${message.id} enqueued on queue ${queueId}`)
} catch (err) {
  await client.query('ROLLBACK').catch(() => {})
  console.error('rolled back: no order, no webhook:', (err as Error).message)
  process.exitCode = 1
} finally {
  await client.end()
}
