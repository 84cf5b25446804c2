DROP TABLE IF EXISTS hookpost.dead_letters;
DROP TABLE IF EXISTS hookpost.attempts;
DROP TABLE IF EXISTS hookpost.messages;
DROP TABLE IF EXISTS hookpost.crons;
DROP TABLE IF EXISTS hookpost.queues;
DROP FUNCTION IF EXISTS hookpost.messages_before_insert();
DROP FUNCTION IF EXISTS hookpost.messages_notify();
