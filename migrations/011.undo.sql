DROP INDEX IF EXISTS hookpost.messages_parked_idx;
-- parked messages fall due again
UPDATE hookpost.messages SET run_at = "when" WHERE run_at = 'infinity' AND sent_at IS NULL AND NOT failed;
ALTER TABLE hookpost.queues DROP COLUMN IF EXISTS paused, DROP COLUMN IF EXISTS disabled,
  DROP COLUMN IF EXISTS disabled_reason, DROP COLUMN IF EXISTS disabled_at, DROP COLUMN IF EXISTS held_until;
