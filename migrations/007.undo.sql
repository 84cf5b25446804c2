ALTER TABLE hookpost.messages ALTER COLUMN body SET STORAGE EXTENDED;
ALTER TABLE hookpost.messages RESET (toast_tuple_target);
