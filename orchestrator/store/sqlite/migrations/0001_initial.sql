-- Every table has an integer `n` (insertion order) used for stable cursor pagination.
CREATE TABLE workflows (
  n INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  project_id TEXT,
  published_json TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);

CREATE TABLE blocks (
  n INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  workflow_id TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
  type TEXT NOT NULL,
  label TEXT NOT NULL DEFAULT '',
  position_x REAL NOT NULL DEFAULT 0,
  position_y REAL NOT NULL DEFAULT 0,
  width REAL,
  height REAL,
  config_json TEXT,
  parent_id TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX blocks_workflow ON blocks(workflow_id, updated_at);

CREATE TABLE edges (
  n INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  workflow_id TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
  source_block TEXT NOT NULL,
  target_block TEXT NOT NULL,
  source_handle TEXT,
  target_handle TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX edges_workflow ON edges(workflow_id);

CREATE TABLE files (
  n INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  filename TEXT NOT NULL,
  mime_type TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  sha256 TEXT,
  status TEXT NOT NULL,              -- pending | uploaded | complete
  expires_at TEXT NOT NULL,
  data BLOB,
  page_count INTEGER,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);

-- Saved evals and saved tests: one table, two wire dialects.
CREATE TABLE checks (
  n INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  workflow_id TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
  block_id TEXT NOT NULL,
  name TEXT,
  source_json TEXT NOT NULL,
  assertion_json TEXT,
  latest_json TEXT,
  latest_passing_json TEXT,
  latest_failing_json TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX checks_workflow ON checks(workflow_id, block_id);

CREATE TABLE experiments (
  n INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  workflow_id TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
  block_id TEXT NOT NULL,
  name TEXT NOT NULL,
  n_consensus INTEGER NOT NULL,
  document_count INTEGER NOT NULL DEFAULT 0,
  documents_fingerprint TEXT NOT NULL,
  last_run_id TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX experiments_workflow ON experiments(workflow_id);

CREATE TABLE experiment_documents (
  n INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  experiment_id TEXT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  filename TEXT NOT NULL,
  handle_inputs_json TEXT NOT NULL,
  provenance_json TEXT
);
CREATE INDEX experiment_documents_exp ON experiment_documents(experiment_id, position);

CREATE TABLE runs (
  n INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,                 -- eval | test | experiment
  workflow_id TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
  workflow_version_id TEXT NOT NULL,
  workflow_name TEXT NOT NULL,
  experiment_id TEXT,
  block_id TEXT,
  block_type TEXT,
  check_id TEXT,
  scope_json TEXT,
  n_consensus INTEGER,
  status TEXT NOT NULL,
  error_json TEXT,
  cancel_reason TEXT,
  trigger_type TEXT NOT NULL DEFAULT 'api',
  seed INTEGER NOT NULL DEFAULT 0,
  total INTEGER NOT NULL,
  c_pending INTEGER NOT NULL DEFAULT 0,
  c_queued INTEGER NOT NULL DEFAULT 0,
  c_running INTEGER NOT NULL DEFAULT 0,
  c_completed INTEGER NOT NULL DEFAULT 0,
  c_error INTEGER NOT NULL DEFAULT 0,
  c_cancelled INTEGER NOT NULL DEFAULT 0,
  o_passed INTEGER NOT NULL DEFAULT 0,
  o_failed INTEGER NOT NULL DEFAULT 0,
  o_blocked INTEGER NOT NULL DEFAULT 0,
  score_sum REAL NOT NULL DEFAULT 0,
  score REAL,
  fingerprints_json TEXT NOT NULL DEFAULT '{}',
  stats_json TEXT NOT NULL DEFAULT '{}',
  last_seq INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  started_at TEXT,
  completed_at TEXT
);
CREATE INDEX runs_kind ON runs(kind, workflow_id);
CREATE INDEX runs_status ON runs(status);
CREATE INDEX runs_experiment ON runs(experiment_id);

-- One row per child (an eval/test result or an experiment result).
CREATE TABLE children (
  n INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  check_id TEXT,
  document_id TEXT,
  block_id TEXT NOT NULL,
  block_type TEXT NOT NULL,
  status TEXT NOT NULL,
  verdict TEXT,
  error_json TEXT,
  cancel_reason TEXT,
  attempt INTEGER NOT NULL DEFAULT 0,
  score REAL,
  handle_inputs_json TEXT NOT NULL DEFAULT '{}',
  result_json TEXT,                   -- outputs, assertion result, consensus record, fingerprints
  artifact_id TEXT,
  created_at TEXT NOT NULL,
  started_at TEXT,
  completed_at TEXT
);
CREATE INDEX children_run ON children(run_id, position);
CREATE INDEX children_run_status ON children(run_id, status, position);
CREATE INDEX children_check ON children(check_id);

CREATE TABLE artifacts (
  n INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  child_id TEXT NOT NULL,
  operation TEXT NOT NULL,
  body_json TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX artifacts_run ON artifacts(run_id);

-- The feed: one row per published event. `gseq` is the all-runs cursor, (run_id, seq) the per-run one.
CREATE TABLE events (
  gseq INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  type TEXT NOT NULL,
  child_id TEXT,
  body_json TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX events_run_seq ON events(run_id, seq);
