DROP INDEX IF EXISTS hookpost.queues_failing_since_idx;
DROP INDEX IF EXISTS hookpost.messages_parked_idx;
-- parked messages fall due again
UPDATE hookpost.messages SET run_at = "when" WHERE run_at = 'infinity' AND sent_at IS NULL AND NOT failed;
ALTER TABLE hookpost.queues DROP COLUMN IF EXISTS paused, DROP COLUMN IF EXISTS disabled,
  DROP COLUMN IF EXISTS disabled_reason, DROP COLUMN IF EXISTS disabled_at, DROP COLUMN IF EXISTS held_until,
  DROP COLUMN IF EXISTS circuit_failure_threshold, DROP COLUMN IF EXISTS circuit_cooldown_ms,
  DROP COLUMN IF EXISTS disable_after_hours, DROP COLUMN IF EXISTS consecutive_failures,
  DROP COLUMN IF EXISTS failing_since, DROP COLUMN IF EXISTS circuit_state, DROP COLUMN IF EXISTS circuit_opened_at,
  DROP COLUMN IF EXISTS circuit_open_ms;
