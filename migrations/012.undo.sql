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
