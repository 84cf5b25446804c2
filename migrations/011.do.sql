-- Endpoint health: a queue can be paused (by an operator) or disabled (by hookpost, when its endpoint
-- answers 410 Gone or has failed for disable_after_hours, or by an operator). Its messages are then
-- parked: not attempted, not failed, their retry budget untouched, until it is resumed or enabled.
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

-- The circuit breaker and failing-for-too-long, from each queue's run of failed attempts, kept by the
-- statement that records outcomes (sql.complete). It writes a queue's row only when its run changes:
-- a healthy queue's stays untouched. The circuit is 'closed' or 'open'; an open circuit holds the queue
-- (held_until) for circuit_open_ms, after which it is half-open (read as such) and a single call per
-- process probes it: a success closes it, a failure opens it again for twice as long (at most 1 h, or
-- the cooldown when longer). failing_since: the first failure after the last success.
ALTER TABLE hookpost.queues
  ADD COLUMN circuit_failure_threshold integer NOT NULL DEFAULT 20
    CONSTRAINT queues_circuit_failure_threshold_check CHECK (circuit_failure_threshold BETWEEN 0 AND 100000),
  ADD COLUMN circuit_cooldown_ms integer NOT NULL DEFAULT 60000
    CONSTRAINT queues_circuit_cooldown_ms_check CHECK (circuit_cooldown_ms BETWEEN 1000 AND 86400000),
  ADD COLUMN disable_after_hours integer NOT NULL DEFAULT 72
    CONSTRAINT queues_disable_after_hours_check CHECK (disable_after_hours BETWEEN 0 AND 87600),
  ADD COLUMN consecutive_failures integer NOT NULL DEFAULT 0,
  ADD COLUMN failing_since timestamptz,
  ADD COLUMN circuit_state text NOT NULL DEFAULT 'closed' CONSTRAINT queues_circuit_state_check CHECK (circuit_state IN ('closed', 'open')),
  ADD COLUMN circuit_opened_at timestamptz,
  ADD COLUMN circuit_open_ms integer;
-- the leader's look for queues failing for longer than their disable_after_hours
CREATE INDEX queues_failing_since_idx ON hookpost.queues (failing_since) WHERE failing_since IS NOT NULL AND NOT disabled;
