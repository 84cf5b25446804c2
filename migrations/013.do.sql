-- The limited lane. A limited queue's pending rows (a rate, a concurrency limit or a throttle:
-- LIMITED_SQL in lib/delivery/sql.ts) are claimed per queue by claimLimited, never by the plain claim.
-- In messages_due_idx they sat in the plain claim's range all the same, and every plain claim walked
-- past them (run_at order, queue_id filtered on the heap): a limited queue's due backlog of 50,000
-- cost the unlimited queues beside it a fifth of their rate. A row flagged `limited` is out of that
-- index and in messages_lane_idx, per queue, which claimLimited reads.
-- The flag is set on insert from the queue; a row of a queue that became limited later is flagged by
-- the first plain claim that meets it, and one of a queue that is no longer limited (or is paused,
-- disabled, held or half-open) is handed back to the plain range by claimLimited. So every pending row
-- is in exactly one range, and the plain claim walks a limited queue's row at most once.
ALTER TABLE hookpost.messages ADD COLUMN limited boolean NOT NULL DEFAULT false;

DROP INDEX hookpost.messages_due_idx;
CREATE INDEX messages_due_idx ON hookpost.messages (run_at) WHERE sent_at IS NULL AND NOT failed AND NOT limited;
CREATE INDEX messages_lane_idx ON hookpost.messages (queue_id, run_at) WHERE limited AND sent_at IS NULL AND NOT failed;

-- A row inserted into the lane tells every worker (payload 'lane'), which then asks which queues have
-- rows there (sql.laneQueues): the plain claim, which would have met the row, no longer does. One
-- notification per transaction: PostgreSQL folds identical ones.
CREATE OR REPLACE FUNCTION hookpost.messages_before_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  q record;
BEGIN
  IF NOT hookpost.when_valid(NEW."when") THEN
    RAISE EXCEPTION 'hookpost.messages: "when" must be a time from year 1 to 9999, not %', NEW."when"
      USING ERRCODE = 'check_violation', CONSTRAINT = 'messages_when_check',
            SCHEMA = 'hookpost', TABLE = 'messages', COLUMN = 'when';
  END IF;
  SELECT fifo, (rate_limit_per_second IS NOT NULL OR max_concurrency IS NOT NULL OR throttle_rate IS NOT NULL)
    AS limited INTO q FROM hookpost.queues WHERE id = NEW.queue_id;
  NEW.run_at := NEW."when";
  NEW.key_wait := false;
  NEW.order_key := CASE WHEN q.fifo THEN '' ELSE NEW.ordering_key END;
  NEW.limited := coalesce(q.limited, false);
  IF NEW.limited THEN
    PERFORM pg_notify('hookpost_messages', 'lane');
  END IF;
  RETURN NEW;
END $$;
