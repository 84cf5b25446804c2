-- The attempts of deleted messages go in one set-based DELETE per statement (004). Its join was planned
-- on attempts' statistics, which are stale after a mass insert: a merge join over the whole of
-- attempts_message_id_idx (or a hash join over a sequential scan), 150-250 ms for each retention batch
-- of 500 where index lookups take 3 ms. A nested loop over the index is right for any batch retention
-- deletes, and stays linear for a queue's million.
ALTER FUNCTION hookpost.messages_after_delete()
  SET enable_mergejoin = off
  SET enable_hashjoin = off
  SET enable_seqscan = off;
