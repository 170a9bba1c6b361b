-- Metrics aggregates of finished experiment runs, computed once and kept (SQLite migration 0005): a
-- restarted API process, or another API node, reads the row instead of computing it again.
CREATE TABLE run_aggregates (
  run_id text NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  key text NOT NULL,
  body_json text NOT NULL,
  created_at text NOT NULL,
  PRIMARY KEY (run_id, key)
);
