// The flow-control tests' shared parts: two server processes delivering at once on one database, and
// the REST calls they make.
import { spawnServer, testDatabase, testPool, type ServerProcess } from './helpers.js'

type T = Parameters<typeof testDatabase>[0]
type Pool = ReturnType<typeof testPool>

/** Two real server processes that both deliver (HOOKPOST_ALL_PROCESSES_DELIVER), reaping after 1 s. */
export async function twoServers (t: T, env: Record<string, string> = {}):
Promise<{ url: string, servers: ServerProcess[], pool: Pool }> {
  const url = await testDatabase(t)
  const pool = testPool(t, url)
  const servers = await Promise.all([0, 1].map(async () => await spawnServer(t, {
    DATABASE_URL: url, HOOKPOST_ALL_PROCESSES_DELIVER: 'true', HOOKPOST_REAP_GRACE_MS: '1000', ...env
  })))
  return { url, servers, pool }
}

/** A REST call: its JSON answer, or an error naming the status. */
export async function api (base: string, path: string, body?: object, method = body === undefined ? 'GET' : 'POST'):
Promise<any> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await res.text()
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`)
  return JSON.parse(text)
}

/** Keep every claim's worker id per queue (a trigger on the rows claims lock): which processes delivered. */
export async function watchWorkers (pool: Pool): Promise<void> {
  await pool.query(`CREATE TABLE flow_workers (queue_id bigint, worker text, UNIQUE (queue_id, worker));
    CREATE FUNCTION flow_worker() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
      IF NEW.locked_by IS NOT NULL THEN
        INSERT INTO flow_workers VALUES (NEW.queue_id, NEW.locked_by) ON CONFLICT DO NOTHING;
      END IF;
      RETURN NULL; END $$;
    CREATE TRIGGER flow_worker AFTER UPDATE OF locked_by ON hookpost.messages
      FOR EACH ROW EXECUTE FUNCTION flow_worker();`)
}

/** How many processes claimed rows of this queue (watchWorkers): a limit held across them, not within one. */
export async function bothDelivered (pool: Pool, queueId: number): Promise<number> {
  const { rows: [r] } = await pool.query('SELECT count(DISTINCT worker)::int AS n FROM flow_workers WHERE queue_id = $1', [queueId])
  return r.n
}
