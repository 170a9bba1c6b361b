-- What the metrics summary needs of a completed experiment child's consensus record (SQLite migration
-- 0004): its targets' scores or its label units, written with the record by the group commit. NULL for
-- children written before it and for eval/test children; readers derive it from the record then.
ALTER TABLE children ADD COLUMN digest_json text;
