-- Idempotency keys that no HTTP request can carry. The key is sent as the Idempotency-Key header, so
-- a key with a control character or anything past ASCII makes every delivery attempt fail until the
-- message is dead. REST and GraphQL refuse such keys (lib/resources.ts: 1 to 255 characters, printable
-- ASCII, U+0020 to U+007E); hookpost.enqueue and plain SQL writes now refuse them too, by the same rule.
CREATE FUNCTION hookpost.idempotency_key_sendable(k text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- the REST schema's rule: minLength 1, maxLength 255, pattern ^[\u0020-\u007e]+$ (NULL: no key)
AS $$ SELECT k IS NULL OR (length(k) <= 255 AND k ~ '^[\x20-\x7e]+$') $$;

-- The outbox function: the same body as in 002, with the key checked first for a clear error.
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

-- Plain SQL writes get the rule from a trigger rather than a CHECK constraint. A CHECK is tested on
-- every UPDATE of a row, not only when the key changes: left NOT VALID over an existing bad-key
-- message, it would fail the delivery engine's claim, one statement for up to hundreds of rows, again
-- and again; validated, it would stop this migration, and so start-up, on such a row. The trigger
-- fires only when a key is written, leaves existing rows alone, and raises what a CHECK would
-- (23514, naming a constraint), so the API maps it to the field like any other.
CREATE FUNCTION hookpost.messages_idempotency_key_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'hookpost.messages: idempotency_key must be 1 to 255 printable ASCII characters (U+0020 to U+007E): it is sent as the Idempotency-Key header'
    USING ERRCODE = 'check_violation', CONSTRAINT = 'messages_idempotency_key_check',
          SCHEMA = 'hookpost', TABLE = 'messages', COLUMN = 'idempotency_key';
END $$;
-- the WHEN clause keeps the function off the hot path: it runs only for a key that breaks the rule
CREATE TRIGGER messages_idempotency_key_check BEFORE INSERT OR UPDATE OF idempotency_key ON hookpost.messages
  FOR EACH ROW WHEN (NOT hookpost.idempotency_key_sendable(NEW.idempotency_key))
  EXECUTE FUNCTION hookpost.messages_idempotency_key_check();
