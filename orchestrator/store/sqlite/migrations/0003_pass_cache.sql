-- The pass cache: one row per request, addressed by the sha256 of everything that determined the model
-- call (engine, its full request, the input documents' sha256), holding its successful passes by pass
-- index (`passes_json`: {"<index>": {"o": output, "p": prompt tokens, "c": completion tokens}}), so a
-- child's n passes are one row to read and to write. `last_used_at` (epoch seconds) orders the
-- least-recently-used eviction; `size` is what the row counts against the size bound.
CREATE TABLE pass_cache (
  key TEXT PRIMARY KEY,
  engine TEXT NOT NULL,
  model TEXT NOT NULL,
  passes_json TEXT NOT NULL,
  passes INTEGER NOT NULL,
  size INTEGER NOT NULL,
  created_at REAL NOT NULL,
  last_used_at REAL NOT NULL
);
CREATE INDEX pass_cache_lru ON pass_cache(last_used_at);

-- Running totals (entries: cached passes), kept in the transactions that change the cache, so the size
-- bound and the hit rate never need a scan of the table.
CREATE TABLE pass_cache_totals (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  entries INTEGER NOT NULL DEFAULT 0,
  bytes INTEGER NOT NULL DEFAULT 0,
  hits INTEGER NOT NULL DEFAULT 0,
  misses INTEGER NOT NULL DEFAULT 0
);
INSERT INTO pass_cache_totals(id) VALUES (1);

-- A run may opt out of the cache (`cache: false`): it then neither reads nor writes it.
ALTER TABLE runs ADD COLUMN cache_enabled INTEGER NOT NULL DEFAULT 1;
