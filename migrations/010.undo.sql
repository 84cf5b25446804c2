-- enqueue_message as 006 made it
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
  -- the API's header rules (lib/headers.ts; test/outbox.test.ts checks they agree), so an outbox
  -- message is never one that can never be sent
  SELECT key INTO bad FROM jsonb_each(coalesce(p_headers, '{}')) AS h(key, value)
  WHERE jsonb_typeof(value) <> 'string' OR key !~ '^[!#$%&''*+.^_`|~0-9A-Za-z-]+$' OR length(key) > 256
     OR (value #>> '{}') !~ '^[\t\x20-\x7e\x80-\xff]*$'
     OR lower(key) IN ('host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer',
                       'proxy-connection', 'expect', 'x-hookpost-message-id', 'x-hookpost-attempt', 'x-hookpost-queue-id')
  LIMIT 1;
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
DROP FUNCTION IF EXISTS hookpost.publish(text, jsonb, jsonb, timestamptz, text);
DROP FUNCTION IF EXISTS hookpost.publish_event(text, json, jsonb, timestamptz, text);
DROP INDEX IF EXISTS hookpost.messages_event_uniq;
ALTER TABLE hookpost.messages DROP COLUMN IF EXISTS event_id, DROP COLUMN IF EXISTS event_type, DROP COLUMN IF EXISTS replay;
ALTER TABLE hookpost.queues DROP COLUMN IF EXISTS event_types, DROP COLUMN IF EXISTS filter, DROP COLUMN IF EXISTS payload_format;
DROP TABLE IF EXISTS hookpost.events;
DROP TABLE IF EXISTS hookpost.event_types;
DROP FUNCTION IF EXISTS hookpost.fanout_fits(bigint, bigint);
DROP FUNCTION IF EXISTS hookpost.bad_header(jsonb);
-- the insert trigger as 001 made it
CREATE OR REPLACE FUNCTION hookpost.messages_before_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.run_at := NEW."when";
  RETURN NEW;
END $$;
DROP FUNCTION IF EXISTS hookpost.when_valid(timestamptz);
DROP FUNCTION IF EXISTS hookpost.event_body(text, text, json, timestamptz);
DROP FUNCTION IF EXISTS hookpost.event_type_patterns(text);
DROP FUNCTION IF EXISTS hookpost.event_patterns_valid(text[]);
DROP FUNCTION IF EXISTS hookpost.event_type_valid(text);
