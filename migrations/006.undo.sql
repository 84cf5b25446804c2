DROP TRIGGER IF EXISTS messages_idempotency_key_check ON hookpost.messages;
DROP FUNCTION IF EXISTS hookpost.messages_idempotency_key_check();
-- enqueue_message as 002 made it
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
DROP FUNCTION IF EXISTS hookpost.idempotency_key_sendable(text);
