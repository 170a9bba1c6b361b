-- Worker processes claim children with a lease: the claim names its owner and an expiry (epoch seconds)
-- that the owner renews while it lives. A finish is applied only under the lease it was claimed with,
-- so a worker that lost its lease (it stalled, or was presumed dead) can never commit twice.
ALTER TABLE children ADD COLUMN lease_owner TEXT;
ALTER TABLE children ADD COLUMN lease_expires REAL;
CREATE INDEX children_lease_owner ON children(lease_owner) WHERE lease_owner IS NOT NULL;
CREATE INDEX children_lease_expires ON children(lease_expires) WHERE lease_expires IS NOT NULL;
-- Open runs that still have children to hand out: what a worker looks for.
CREATE INDEX runs_open ON runs(status, c_pending);

-- The runner processes alive (heartbeat), what each may run at once (its share of the global limits),
-- and when it stopped. Rows of stopped workers are kept a while for /v1/workers.
CREATE TABLE workers (
  id TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  started_at TEXT NOT NULL,
  heartbeat_at REAL NOT NULL,
  capacity INTEGER NOT NULL DEFAULT 0,
  status TEXT NOT NULL DEFAULT 'running',
  stopped_at TEXT
);
