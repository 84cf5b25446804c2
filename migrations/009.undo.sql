-- fails while two queues share a name: rename them first
DROP INDEX hookpost.queues_name_idx;
ALTER TABLE hookpost.queues ADD CONSTRAINT queues_name_key UNIQUE (name);
