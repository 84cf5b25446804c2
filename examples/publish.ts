// Events from an application's transaction: an order and its order.created event in one transaction.
// Every queue subscribed to order.created (or order.*, or *) gets its own message, written by the same
// statement; if anything fails before COMMIT, neither the order nor the event exists. After COMMIT,
// hookpost delivers to each subscriber within milliseconds.
//
//   DATABASE_URL=postgres://app:secret@127.0.0.1:5432/shop npx tsx examples/publish.ts "a book"
//
// The application role needs only: GRANT USAGE ON SCHEMA hookpost; GRANT EXECUTE ON FUNCTION
// hookpost.publish(text, jsonb, jsonb, timestamptz, text) (see README, "Events and subscriptions").
import pg from 'pg'

const url = process.env.DATABASE_URL
const item = process.argv[2] ?? 'a book'
if (url === undefined) {
  console.error('set DATABASE_URL to the database hookpost uses (events are published next to your data)')
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
  // same transaction, same connection: the event and its deliveries exist exactly when the order does;
  // the key makes a retried transaction publish it once
  const { rows: [event] } = await client.query(
    "SELECT hookpost.publish('order.created', $1::jsonb, '{}', now(), $2) AS id",
    [JSON.stringify({ order }), `order-created-${order.id}`]
  )
  await client.query('COMMIT')
  console.log(`order ${order.id} saved; event ${event.id} published (GET /events/${event.id} shows its deliveries)`)
} catch (err) {
  await client.query('ROLLBACK').catch(() => {})
  console.error('rolled back: no order, no event:', (err as Error).message)
  process.exitCode = 1
} finally {
  await client.end()
}
