-- Flow control: per-queue rate and concurrency limits, adaptive throttling, and ordered delivery by key.
-- Every limit holds across all delivering processes, with nothing but PostgreSQL between them.
--
-- Limited queues (a rate, a concurrency, or a throttle set by the endpoint's answers) are claimed by
-- their own statement (lib/delivery/sql.ts claimLimited), one index range per queue, never by the
-- statement that claims everything else in due order: so a limited queue's backlog costs the other
-- queues' claims nothing, and an unlimited queue pays nothing for the limits.
ALTER TABLE hookpost.queues
  ADD COLUMN rate_limit_per_second double precision
    CONSTRAINT queues_rate_limit_per_second_check CHECK (rate_limit_per_second >= 0.001 AND rate_limit_per_second <= 100000),
  ADD COLUMN max_concurrency integer
    CONSTRAINT queues_max_concurrency_check CHECK (max_concurrency BETWEEN 1 AND 10000),
  -- the whole queue is one ordering key
  ADD COLUMN fifo boolean NOT NULL DEFAULT false,
  -- Adaptive throttling: a 429, 502, 503 or 504 without Retry-After halves the queue's effective rate
  -- (at most once a second); successes raise it by a tenth of throttle_ceiling a second, and at the
  -- ceiling (the configured rate, or the rate the queue had when first throttled) the throttle ends
  ADD COLUMN throttle_rate double precision,
  ADD COLUMN throttle_ceiling double precision,
  ADD COLUMN throttle_at timestamptz;

-- The rate limiter's state, one row per rate-limited queue: GCRA's theoretical arrival time, in epoch
-- seconds. Its own table, so that the claims that take tokens lock no queue row (which the statement
-- recording outcomes updates): claims lock these rows in queue id order, and nothing else locks them.
CREATE TABLE hookpost.queue_rates (
  queue_id bigint PRIMARY KEY REFERENCES hookpost.queues (id) ON DELETE CASCADE,
  tat double precision NOT NULL,
  -- the last claim's wish and grant, written so that an upsert can compute its grant from the row it met
  wanted integer NOT NULL,
  granted integer NOT NULL,
  rate double precision NOT NULL
);

-- A concurrency-limited queue has max_concurrency slots. A claim takes free slots (FOR UPDATE SKIP
-- LOCKED: two processes never take the same one) and writes its message's claim into each; the outcome,
-- a release or the reaper frees it, and a slot whose lease is over is free anyway: a lost process never
-- keeps one.
CREATE TABLE hookpost.queue_slots (
  queue_id bigint NOT NULL REFERENCES hookpost.queues (id) ON DELETE CASCADE,
  slot integer NOT NULL,
  message_id bigint,
  token timestamptz,
  until timestamptz,
  PRIMARY KEY (queue_id, slot)
);

-- A slot beyond a lowered limit is dropped only once free: one still held counts until its call ends
-- (attack round: dropped held, then made again empty, a limit lowered and raised let 19 calls run under
-- a limit of 10); claims use slots up to the limit only.
CREATE FUNCTION hookpost.queue_slots_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM hookpost.queue_slots WHERE queue_id = NEW.id AND slot > coalesce(NEW.max_concurrency, 0)
    AND (message_id IS NULL OR until <= now());
  INSERT INTO hookpost.queue_slots (queue_id, slot)
  SELECT NEW.id, s FROM generate_series(1, coalesce(NEW.max_concurrency, 0)) s
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;
CREATE TRIGGER queues_slots_sync AFTER INSERT OR UPDATE OF max_concurrency ON hookpost.queues
  FOR EACH ROW EXECUTE FUNCTION hookpost.queue_slots_sync();

-- Ordered delivery. ordering_key is the message's, as given; order_key is the key it is ordered by:
-- '' for every message of a fifo queue, else ordering_key (set on insert, and when fifo changes).
-- A message is sent only when no earlier message (by id: enqueue order) of its queue and order_key is
-- pending. One that meets an earlier pending one waits: key_wait, with run_at 'infinity' (out of every
-- claim's range). The outcome that ends its predecessor (sent, or dead) makes it due again.
ALTER TABLE hookpost.messages
  ADD COLUMN ordering_key text
    CONSTRAINT messages_ordering_key_check CHECK (ordering_key ~ '^[!-~]([ -~]{0,253}[!-~])?$'),
  ADD COLUMN order_key text,
  ADD COLUMN key_wait boolean NOT NULL DEFAULT false;
-- the earlier pending messages of a key, and a key's next message
CREATE INDEX messages_order_key_idx ON hookpost.messages (queue_id, order_key, id)
  WHERE order_key IS NOT NULL AND sent_at IS NULL AND NOT failed;
-- A queue's pending messages in due order: the limited claim's range per queue, and what resuming a
-- queue unparks (run_at = 'infinity'), which messages_parked_idx did
CREATE INDEX messages_queue_due_idx ON hookpost.messages (queue_id, run_at) WHERE sent_at IS NULL AND NOT failed;
DROP INDEX hookpost.messages_parked_idx;

CREATE OR REPLACE FUNCTION hookpost.messages_before_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT hookpost.when_valid(NEW."when") THEN
    RAISE EXCEPTION 'hookpost.messages: "when" must be a time from year 1 to 9999, not %', NEW."when"
      USING ERRCODE = 'check_violation', CONSTRAINT = 'messages_when_check',
            SCHEMA = 'hookpost', TABLE = 'messages', COLUMN = 'when';
  END IF;
  NEW.run_at := NEW."when";
  NEW.key_wait := false;
  NEW.order_key := CASE WHEN (SELECT fifo FROM hookpost.queues WHERE id = NEW.queue_id) THEN '' ELSE NEW.ordering_key END;
  RETURN NEW;
END $$;

-- The outbox with an ordering key: hookpost.enqueue_ordered, granted like hookpost.enqueue
--   GRANT EXECUTE ON FUNCTION hookpost.enqueue_ordered(bigint, text, text, jsonb, timestamptz, text) TO app;
--   GRANT EXECUTE ON FUNCTION hookpost.enqueue_ordered(bigint, text, jsonb, jsonb, timestamptz, text) TO app;
-- enqueue_message as 010 made it, with the key as a seventh argument (the six-argument one passes NULL).
CREATE FUNCTION hookpost.enqueue_message(
  p_queue_id bigint, p_body text, p_body_json boolean, p_headers jsonb, p_when timestamptz, p_key text,
  p_ordering_key text
) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  new_id bigint;
  bad text;
BEGIN
  IF NOT hookpost.idempotency_key_sendable(p_key) THEN
    RAISE EXCEPTION 'hookpost.enqueue: idempotency_key must be 1 to 255 printable ASCII characters (U+0020 to U+007E): it is sent as the Idempotency-Key header'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_ordering_key IS NOT NULL AND p_ordering_key !~ '^[!-~]([ -~]{0,253}[!-~])?$' THEN
    RAISE EXCEPTION 'hookpost.enqueue: ordering_key must be 1 to 255 printable ASCII characters, with no space at either end'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT hookpost.when_valid(p_when) THEN
    RAISE EXCEPTION 'hookpost.enqueue: "when" must be a time from year 1 to 9999, not %', p_when
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  bad := hookpost.bad_header(p_headers);
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'hookpost.enqueue: header % is not allowed (reserved, not a token, or not a latin-1 string)', bad
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO hookpost.messages (queue_id, body, body_json, headers, "when", idempotency_key, ordering_key)
  VALUES (p_queue_id, p_body, p_body_json, coalesce(p_headers, '{}'), coalesce(p_when, now()), p_key, p_ordering_key)
  ON CONFLICT (queue_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING id INTO new_id;
  IF new_id IS NULL THEN
    -- the same key on the same queue: the first message's id, nothing new
    SELECT id INTO new_id FROM hookpost.messages WHERE queue_id = p_queue_id AND idempotency_key = p_key;
  END IF;
  RETURN new_id;
END $$;

CREATE OR REPLACE FUNCTION hookpost.enqueue_message(
  p_queue_id bigint, p_body text, p_body_json boolean, p_headers jsonb, p_when timestamptz, p_key text
) RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT hookpost.enqueue_message(p_queue_id, p_body, p_body_json, p_headers, p_when, p_key, NULL) $$;

CREATE FUNCTION hookpost.enqueue_ordered(
  queue_id bigint, ordering_key text, body text, headers jsonb DEFAULT '{}', "when" timestamptz DEFAULT now(),
  idempotency_key text DEFAULT NULL
) RETURNS bigint
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT hookpost.enqueue_message($1, $3, false, $4, $5, $6, $2) $$;

CREATE FUNCTION hookpost.enqueue_ordered(
  queue_id bigint, ordering_key text, body jsonb, headers jsonb DEFAULT '{}', "when" timestamptz DEFAULT now(),
  idempotency_key text DEFAULT NULL
) RETURNS bigint
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT hookpost.enqueue_message($1, $3::text, true, $4, $5, $6, $2) $$;

REVOKE ALL ON FUNCTION hookpost.enqueue_message(bigint, text, boolean, jsonb, timestamptz, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION hookpost.enqueue_ordered(bigint, text, text, jsonb, timestamptz, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION hookpost.enqueue_ordered(bigint, text, jsonb, jsonb, timestamptz, text) FROM PUBLIC;
