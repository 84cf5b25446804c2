-- Queue names may repeat, as in pg-hooks: scripts that create "their" queue on every run, and pg-hooks
-- databases imported with duplicate names, keep working. Ids are what identify a queue; the name stays
-- indexed for where.name filters.
ALTER TABLE hookpost.queues DROP CONSTRAINT queues_name_key;
CREATE INDEX queues_name_idx ON hookpost.queues (name);
