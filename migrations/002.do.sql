-- The transactional outbox: an application enqueues from inside its own transaction, on its own
-- connection, so the message commits or rolls back with its data. The INSERT fires the NOTIFY
-- trigger, which PostgreSQL delivers at commit: hookpost sends the message within milliseconds.
--
--   SELECT hookpost.enqueue(queue_id, body, headers, "when", idempotency_key)  -- returns the message id
--
-- body is text (sent byte for byte) or jsonb (sent as its JSON text). The functions are SECURITY
-- DEFINER, so an application role needs only these grants, and no right on any hookpost table:
--   GRANT USAGE ON SCHEMA hookpost TO app;
--   GRANT EXECUTE ON FUNCTION hookpost.enqueue(bigint, text, jsonb, timestamptz, text) TO app;
--   GRANT EXECUTE ON FUNCTION hookpost.enqueue(bigint, jsonb, jsonb, timestamptz, text) TO app;

CREATE FUNCTION hookpost.enqueue_message(
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

CREATE FUNCTION hookpost.enqueue(
  queue_id bigint, body text, headers jsonb DEFAULT '{}', "when" timestamptz DEFAULT now(), idempotency_key text DEFAULT NULL
) RETURNS bigint
LANGUAGE sql SECURITY DEFINER
-- a definer function must not resolve names through the caller's search_path
SET search_path = pg_catalog, pg_temp
AS $$ SELECT hookpost.enqueue_message($1, $2, false, $3, $4, $5) $$;

CREATE FUNCTION hookpost.enqueue(
  queue_id bigint, body jsonb, headers jsonb DEFAULT '{}', "when" timestamptz DEFAULT now(), idempotency_key text DEFAULT NULL
) RETURNS bigint
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT hookpost.enqueue_message($1, $2::text, true, $3, $4, $5) $$;

-- functions are executable by PUBLIC by default: the outbox is granted, not assumed
REVOKE ALL ON FUNCTION hookpost.enqueue_message(bigint, text, boolean, jsonb, timestamptz, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION hookpost.enqueue(bigint, text, jsonb, timestamptz, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION hookpost.enqueue(bigint, jsonb, jsonb, timestamptz, text) FROM PUBLIC;
