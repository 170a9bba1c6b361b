-- Metrics aggregates of finished experiment runs, computed once and kept: a restarted API process, or
-- another API node, reads the row instead of computing the aggregate again. `key` names the view and its
-- parameters (the prior run compared with, include_prior, the target); a finished run's children never
-- change, so a row stays true as long as its run exists.
CREATE TABLE run_aggregates (
  run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  body_json TEXT NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (run_id, key)
);
