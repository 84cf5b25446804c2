DROP FUNCTION IF EXISTS hookpost.dead_letter_copies(bigint[], text[], boolean[], jsonb[], bigint[]);
