DROP TRIGGER IF EXISTS messages_after_truncate ON hookpost.messages;
DROP FUNCTION IF EXISTS hookpost.messages_after_truncate();
DROP TRIGGER IF EXISTS messages_after_delete ON hookpost.messages;
DROP FUNCTION IF EXISTS hookpost.messages_after_delete();
DELETE FROM hookpost.attempts a WHERE NOT EXISTS (SELECT 1 FROM hookpost.messages m WHERE m.id = a.message_id);
ALTER TABLE hookpost.attempts ADD CONSTRAINT attempts_message_id_fkey
  FOREIGN KEY (message_id) REFERENCES hookpost.messages (id) ON DELETE CASCADE;
