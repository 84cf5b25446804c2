DROP FUNCTION IF EXISTS hookpost.enqueue(bigint, jsonb, jsonb, timestamptz, text);
DROP FUNCTION IF EXISTS hookpost.enqueue(bigint, text, jsonb, timestamptz, text);
DROP FUNCTION IF EXISTS hookpost.enqueue_message(bigint, text, boolean, jsonb, timestamptz, text);
