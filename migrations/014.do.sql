-- Delivery statistics per queue and minute, for the dashboard's overview (lib/services/stats.ts): each
-- delivering process adds what it saw in the last second, so the figures are the cluster's. Statistics,
-- not records: a process that dies loses at most its last second of them. Kept a day (retention).
CREATE TABLE hookpost.queue_minutes (
  queue_id      bigint NOT NULL REFERENCES hookpost.queues (id) ON DELETE CASCADE,
  minute        timestamptz NOT NULL,
  delivered     integer NOT NULL DEFAULT 0,
  failed        integer NOT NULL DEFAULT 0,
  -- delivered messages by delivery latency (from "when" to the answer): counts per bucket of
  -- LATENCY_BUCKETS_MS (lib/domain/latency.ts), the last one open-ended
  latency       integer[] NOT NULL,
  -- the minute's last failure
  last_error_at timestamptz,
  last_status   integer,
  last_error    text,
  PRIMARY KEY (queue_id, minute)
);
-- retention's range
CREATE INDEX queue_minutes_minute_idx ON hookpost.queue_minutes (minute);
