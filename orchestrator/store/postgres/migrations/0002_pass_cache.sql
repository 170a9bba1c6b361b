-- The pass cache (SQLite migration 0004): one row per request, addressed by the sha256 of everything that
-- determined the model call (engine, its full request, the input documents' sha256), holding its
-- successful passes by pass index (`passes_json`). `last_used_at` (epoch seconds) orders the
-- least-recently-used eviction; `size` is what the row counts against the size bound. Same columns as
-- SQLite, so `orchestrator migrate` copies them.
CREATE TABLE pass_cache (
  key text PRIMARY KEY,
  engine text NOT NULL,
  model text NOT NULL,
  passes_json text NOT NULL,
  passes integer NOT NULL,
  size integer NOT NULL,
  created_at double precision NOT NULL,
  last_used_at double precision NOT NULL
);
CREATE INDEX pass_cache_lru ON pass_cache(last_used_at);

-- Running totals (entries: cached passes), kept in the transactions that change the cache: the size bound
-- and the hit rate never need a scan. Group commits take this row after the children's rows and before the feed counter.
CREATE TABLE pass_cache_totals (
  id integer PRIMARY KEY CHECK (id = 1),
  entries bigint NOT NULL DEFAULT 0,
  bytes bigint NOT NULL DEFAULT 0,
  hits bigint NOT NULL DEFAULT 0,
  misses bigint NOT NULL DEFAULT 0
);
INSERT INTO pass_cache_totals(id) VALUES (1);

-- A run may opt out of the cache (`cache: false`): it then neither reads nor writes it. An integer as in
-- SQLite, so a migrated row keeps its value.
ALTER TABLE runs ADD COLUMN cache_enabled integer NOT NULL DEFAULT 1;
