-- Bodies out of line (TOAST, uncompressed) once a row passes 128 bytes. Delivering a message rewrites
-- its row twice, at the claim and at the outcome; a 1 KB body stored inline was rewritten with it, in
-- the heap and in the WAL, both times. Out of line those updates copy an 18-byte pointer, the heap
-- holds ~150 bytes a message, and a backlog of a million stays in memory (bench/delivery.ts, README:
-- Scaling). The body is read once, by the claim. Rows written before this keep their layout.
ALTER TABLE hookpost.messages SET (toast_tuple_target = 128);
ALTER TABLE hookpost.messages ALTER COLUMN body SET STORAGE EXTERNAL;
