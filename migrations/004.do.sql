-- The attempt log loses its foreign key to messages; a statement trigger on messages deletes the
-- attempts of deleted messages instead. Why: the key's check runs once per logged attempt, and it
-- locks the message row it has just updated (FOR KEY SHARE), a second write and WAL record per
-- delivery. Measured with bench/probe-sql.ts it was about a quarter of PostgreSQL's CPU per delivered
-- message. Attempts are only ever inserted by the delivery statement, joined to the row it updated in
-- the same statement, so the key guarded nothing the engine could get wrong; what it gave was the
-- cascade, which the trigger keeps: one set-based DELETE per statement, whatever deletes the messages
-- (the API, retention, a queue's cascade, or plain SQL).
ALTER TABLE hookpost.attempts DROP CONSTRAINT attempts_message_id_fkey;

CREATE FUNCTION hookpost.messages_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM hookpost.attempts a USING deleted d WHERE a.message_id = d.id;
  RETURN NULL;
END $$;
CREATE TRIGGER messages_after_delete AFTER DELETE ON hookpost.messages
  REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION hookpost.messages_after_delete();

-- TRUNCATE skips delete triggers; it takes the log with it, as the key's TRUNCATE ... CASCADE did
CREATE FUNCTION hookpost.messages_after_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  TRUNCATE hookpost.attempts;
  RETURN NULL;
END $$;
CREATE TRIGGER messages_after_truncate AFTER TRUNCATE ON hookpost.messages
  FOR EACH STATEMENT EXECUTE FUNCTION hookpost.messages_after_truncate();
