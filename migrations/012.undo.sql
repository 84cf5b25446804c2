DROP FUNCTION IF EXISTS hookpost.enqueue_ordered(bigint, text, text, jsonb, timestamptz, text);
DROP FUNCTION IF EXISTS hookpost.enqueue_ordered(bigint, text, jsonb, jsonb, timestamptz, text);
DROP TRIGGER IF EXISTS queues_slots_sync ON hookpost.queues;
DROP FUNCTION IF EXISTS hookpost.queue_slots_sync();
DROP TABLE IF EXISTS hookpost.queue_slots;
DROP TABLE IF EXISTS hookpost.queue_rates;
-- messages waiting for their key fall due again
UPDATE hookpost.messages SET run_at = "when" WHERE key_wait AND sent_at IS NULL AND NOT failed;
CREATE INDEX IF NOT EXISTS messages_parked_idx ON hookpost.messages (queue_id) WHERE run_at = 'infinity' AND sent_at IS NULL AND NOT failed;
DROP INDEX IF EXISTS hookpost.messages_queue_due_idx;
DROP INDEX IF EXISTS hookpost.messages_order_key_idx;
ALTER TABLE hookpost.messages DROP COLUMN IF EXISTS ordering_key, DROP COLUMN IF EXISTS order_key,
  DROP COLUMN IF EXISTS key_wait;
ALTER TABLE hookpost.queues DROP COLUMN IF EXISTS rate_limit_per_second, DROP COLUMN IF EXISTS max_concurrency,
  DROP COLUMN IF EXISTS fifo, DROP COLUMN IF EXISTS throttle_rate, DROP COLUMN IF EXISTS throttle_ceiling,
  DROP COLUMN IF EXISTS throttle_at;
CREATE OR REPLACE FUNCTION hookpost.messages_before_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT hookpost.when_valid(NEW."when") THEN
    RAISE EXCEPTION 'hookpost.messages: "when" must be a time from year 1 to 9999, not %', NEW."when"
      USING ERRCODE = 'check_violation', CONSTRAINT = 'messages_when_check',
            SCHEMA = 'hookpost', TABLE = 'messages', COLUMN = 'when';
  END IF;
  NEW.run_at := NEW."when";
  RETURN NEW;
END $$;

-- enqueue_message as 010 made it
CREATE OR REPLACE FUNCTION hookpost.enqueue_message(
  p_queue_id bigint, p_body text, p_body_json boolean, p_headers jsonb, p_when timestamptz, p_key text
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
  IF NOT hookpost.when_valid(p_when) THEN
    RAISE EXCEPTION 'hookpost.enqueue: "when" must be a time from year 1 to 9999, not %', p_when
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  bad := hookpost.bad_header(p_headers);
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'hookpost.enqueue: header % is not allowed (reserved, not a token, or not a latin-1 string)', bad
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO hookpost.messages (queue_id, body, body_json, headers, "when", idempotency_key)
  VALUES (p_queue_id, p_body, p_body_json, coalesce(p_headers, '{}'), coalesce(p_when, now()), p_key)
  ON CONFLICT (queue_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING id INTO new_id;
  IF new_id IS NULL THEN
    -- the same key on the same queue: the first message's id, nothing new
    SELECT id INTO new_id FROM hookpost.messages WHERE queue_id = p_queue_id AND idempotency_key = p_key;
  END IF;
  RETURN new_id;
END $$;
DROP FUNCTION IF EXISTS hookpost.enqueue_message(bigint, text, boolean, jsonb, timestamptz, text, text);
