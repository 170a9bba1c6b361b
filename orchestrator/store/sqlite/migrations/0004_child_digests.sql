-- What the metrics summary needs of a completed experiment child's consensus record (its targets' scores,
-- or its label units), written with the record by the group commit: a summary of a 20,000-document run
-- reads these few hundred bytes per document instead of decoding every record. NULL for children written
-- before this migration and for eval/test children; readers derive it from the record then.
ALTER TABLE children ADD COLUMN digest_json TEXT;
