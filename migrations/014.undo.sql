DROP TABLE IF EXISTS hookpost.queue_minutes;
