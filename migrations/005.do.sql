-- Dead-letter copies are inserted by a function that the delivery statement calls with the copies to
-- make, and that inserts nothing, and so fires no trigger, when there are none. Why: the copies were an
-- INSERT inside every outcome-recording statement, and a statement-level AFTER INSERT trigger fires
-- even for an INSERT of no rows: every flush sent a NOTIFY on hookpost_messages, which woke every
-- delivering process and made its next claim that skips saturated queues walk their whole backlog.
CREATE FUNCTION hookpost.dead_letter_copies(queue_ids bigint[], bodies text[], json_flags boolean[], header_sets jsonb[], of_ids bigint[])
RETURNS TABLE (copy_id bigint, copy_of bigint) LANGUAGE plpgsql AS $$
BEGIN
  -- cardinality(NULL) is NULL: array_agg over no rows gives NULL
  IF coalesce(cardinality(of_ids), 0) = 0 THEN
    RETURN;
  END IF;
  RETURN QUERY
    INSERT INTO hookpost.messages AS m (queue_id, body, body_json, headers, dead_letter_of)
    SELECT * FROM unnest(queue_ids, bodies, json_flags, header_sets, of_ids)
    RETURNING m.id, m.dead_letter_of;
END $$;
