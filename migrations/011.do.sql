-- Endpoint health, part one: a queue can be paused (by an operator) or disabled (by hookpost, when its
-- endpoint answers 410 Gone, or by an operator). Its messages are then parked: not attempted, not
-- failed, their retry budget untouched, until it is resumed or enabled.
--
-- A parked message has run_at = 'infinity': out of every claim's range (run_at <= now()) and of the
-- reaper's, while staying in messages_due_idx, where unparking finds it (run_at = 'infinity'). The claim
-- parks the rows of a paused or disabled queue as it meets them, so pausing a queue with a million
-- messages is one row's update, and its backlog costs each later claim nothing.
ALTER TABLE hookpost.queues
  ADD COLUMN paused boolean NOT NULL DEFAULT false,
  ADD COLUMN disabled boolean NOT NULL DEFAULT false,
  ADD COLUMN disabled_reason text CONSTRAINT queues_disabled_reason_check CHECK (length(disabled_reason) <= 1000),
  ADD COLUMN disabled_at timestamptz,
  -- a 429 or 503 with Retry-After holds the whole queue until then: the claims that meet its messages
  -- make them due at that time instead of sending them
  ADD COLUMN held_until timestamptz;
-- what resuming a queue unparks: only parked rows are in it, so parking is the only update that pays for it
CREATE INDEX messages_parked_idx ON hookpost.messages (queue_id) WHERE run_at = 'infinity' AND sent_at IS NULL AND NOT failed;
