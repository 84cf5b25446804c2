DROP INDEX IF EXISTS hookpost.messages_lane_idx;
DROP INDEX IF EXISTS hookpost.messages_due_idx;
CREATE INDEX messages_due_idx ON hookpost.messages (run_at) WHERE sent_at IS NULL AND NOT failed;
ALTER TABLE hookpost.messages DROP COLUMN IF EXISTS limited;
-- the trigger as 012 made it
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
