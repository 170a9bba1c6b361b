"""The pass cache: pass outputs addressed by their request and pass index, bounded by size, least recently
used evicted first.

One row per request holds its passes by index, so a child's n passes are one row to read and one to write
(rows per pass made a 5-pass child five index entries with random keys: the write transaction, which every
process's writers queue on, grew by half). A run reads the rows of a whole page of children in one
statement (`get_many`); new rows, passes added to existing ones, the moved LRU stamps and the hit/miss
totals are written by `record`, inside the group commit that carries the children (children.py), so the
cache adds no transaction to a run. Totals (entries = cached passes, bytes, hits, misses) live in one row
kept by the same transactions: the size bound and the hit rate never need a scan. Eviction (`trim`) runs
off the hot path, in short transactions of its own.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

import orjson

from orchestrator.store.records import ENTRY_OVERHEAD, CachedPass, CacheEntry, CacheStats, Row
from orchestrator.store.sqlite.db import BLOBS, Database, stage
from orchestrator.store.sqlite.jsoncol import dumps, loads

TRIM_CHUNK = 500  # rows looked at per eviction transaction: short, so group commits interleave
_IN_KEYS = "key IN (SELECT value FROM json_each(?))"


class CacheStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_many(self, keys: Sequence[str]) -> dict[str, dict[int, CachedPass]]:
        if not keys:
            return {}
        # One row holding every entry as JSON (see db.py: rows stepped one by one cost a GIL hand-off each).
        row = await self.db.fetchone(
            "SELECT json_group_array(json_array(key, engine, model, json(passes_json), created_at, last_used_at))"
            f" AS r FROM pass_cache WHERE {_IN_KEYS}",
            (dumps(list(keys)),),
        )
        return {r[0]: cached_passes(*r) for r in loads(row["r"] if row else None, [])}

    async def put(self, entries: Sequence[CacheEntry]) -> int:
        return await self.db.write(lambda conn: record(conn, entries, (), 0, 0, time.time()))

    async def stats(self) -> CacheStats:
        totals = await self.db.fetchone("SELECT entries, bytes, hits, misses FROM pass_cache_totals WHERE id = 1")
        models = await self.db.fetchall(
            "SELECT model, engine, sum(passes) AS entries, sum(size) AS bytes FROM pass_cache"
            " GROUP BY model, engine ORDER BY bytes DESC, model"
        )
        oldest = await self.db.scalar("SELECT min(created_at) FROM pass_cache")
        return cache_stats(totals, models, oldest)

    async def clear(self, *, model: str | None = None, older_than_s: float | None = None) -> int:
        """Delete the entries of `model` (`*` and `?` wildcards) and/or created more than `older_than_s`
        ago; all of them without either. Clearing everything also restarts the hit rate. Returns how many
        cached passes went."""
        conds, params = ["1 = 1"], list[Any]()
        if model is not None:
            conds.append("model GLOB ?")
            params.append(model)
        if older_than_s is not None:
            conds.append("created_at < ?")
            params.append(time.time() - older_than_s)
        where = " AND ".join(conds)
        whole = model is None and older_than_s is None

        def tx(conn: sqlite3.Connection) -> int:
            gone = conn.execute(
                f"SELECT coalesce(sum(passes), 0) AS n, coalesce(sum(size), 0) AS b FROM pass_cache WHERE {where}",
                params,
            ).fetchone()
            conn.execute(f"DELETE FROM pass_cache WHERE {where}", params)
            reset = ", hits = 0, misses = 0" if whole else ""
            conn.execute(
                f"UPDATE pass_cache_totals SET entries = entries - ?, bytes = bytes - ?{reset} WHERE id = 1",
                (gone["n"], gone["b"]),
            )
            return int(gone["n"])

        return await self.db.write(tx)

    async def trim(self, max_bytes: int, target_bytes: int) -> int:
        total = int(await self.db.scalar("SELECT bytes FROM pass_cache_totals WHERE id = 1") or 0)
        if total <= max_bytes:
            return 0
        removed = 0
        while True:
            n = await self.db.write(lambda conn: _evict(conn, target_bytes))
            if n <= 0:
                return removed
            removed += n


def cached_passes(
    key: str, engine: str, model: str, passes: dict[str, Any], created_at: float, last_used_at: float
) -> dict[int, CachedPass]:
    """A stored row's passes by index (both stores)."""
    return {
        int(i): CachedPass(key, int(i), engine, model, p.get("o"), p.get("p"), p.get("c"), created_at, last_used_at)
        for i, p in passes.items()
    }


def merged(old: bytes | str, new: bytes) -> tuple[bytes, int]:
    """An entry's passes with those of a new entry of the same key that it lacks (its own stay: the same
    request and index are the same sample), and how many it gained (both stores)."""
    have: dict[str, Any] = orjson.loads(old)
    added = {i: p for i, p in orjson.loads(new).items() if i not in have}
    return orjson.dumps({**have, **added}), len(added)


def cache_stats(totals: Row | None, models: list[Row], oldest: Any) -> CacheStats:
    """The totals row, the per-model rows and the oldest `created_at` as one record (both stores)."""
    t = totals or {"entries": 0, "bytes": 0, "hits": 0, "misses": 0}
    return CacheStats(
        entries=int(t["entries"]),
        bytes=int(t["bytes"]),
        hits=int(t["hits"]),
        misses=int(t["misses"]),
        oldest=None if oldest is None else float(oldest),
        models=[{**m, "entries": int(m["entries"]), "bytes": int(m["bytes"])} for m in models],
    )


def _evict(conn: sqlite3.Connection, target_bytes: int) -> int:
    """Delete least recently used rows (at most TRIM_CHUNK) until the totals are at `target_bytes`."""
    total = int(conn.execute("SELECT bytes FROM pass_cache_totals WHERE id = 1").fetchone()["bytes"])
    if total <= target_bytes:
        return 0
    oldest = loads(
        conn.execute(
            "SELECT json_group_array(json_array(key, size, passes)) AS r FROM"
            " (SELECT key, size, passes FROM pass_cache ORDER BY last_used_at, key LIMIT ?)",
            (TRIM_CHUNK,),
        ).fetchone()["r"],
        [],
    )
    victims: list[str] = []
    freed = passes = 0
    for key, size, n in oldest:
        if total - freed <= target_bytes:
            break
        victims.append(key)
        freed += int(size)
        passes += int(n)
    if not victims:  # the totals say more than the table holds: set them right
        conn.execute(
            "UPDATE pass_cache_totals SET (entries, bytes) ="
            " (SELECT coalesce(sum(passes), 0), coalesce(sum(size), 0) FROM pass_cache) WHERE id = 1"
        )
        return 0
    conn.execute(f"DELETE FROM pass_cache WHERE {_IN_KEYS}", (dumps(victims),))
    conn.execute("UPDATE pass_cache_totals SET entries = entries - ?, bytes = bytes - ? WHERE id = 1", (passes, freed))
    return len(victims)


def record(
    conn: sqlite3.Connection,
    entries: Sequence[CacheEntry],
    touches: Sequence[str],
    hits: int,
    misses: int,
    now: float,
) -> int:
    """Inside a write transaction: add the entries (new rows, or passes new to an existing row), move the
    LRU stamp of the used ones, add to the totals. Returns how many passes were added."""
    added, size = _insert(conn, entries, now) if entries else (0, 0)
    if touches:
        conn.execute(f"UPDATE pass_cache SET last_used_at = ? WHERE {_IN_KEYS}", (now, dumps(list(touches))))
    if added or size or hits or misses:
        conn.execute(
            "UPDATE pass_cache_totals SET entries = entries + ?, bytes = bytes + ?, hits = hits + ?,"
            " misses = misses + ? WHERE id = 1",
            (added, size, int(hits), int(misses)),
        )
    return added


def _insert(conn: sqlite3.Connection, entries: Sequence[CacheEntry], now: float) -> tuple[int, int]:
    """(passes added, bytes added). Two workers may have called passes of the same request, or one batch
    hold it twice: the passes already there stay, the others join them, and the totals count exactly that."""
    fresh: dict[str, CacheEntry] = {}
    for e in entries:
        if e.key in fresh:  # the same request twice in one batch: one row holding both
            body, n = merged(fresh[e.key].passes_json, e.passes_json)
            fresh[e.key] = CacheEntry(e.key, e.engine, e.model, body, fresh[e.key].passes + n)
        else:
            fresh[e.key] = e
    rows = [[e.key, e.engine, e.model, e.passes, e.size] for e in fresh.values()]
    # The passes are JSON objects already encoded: joined as they are into the staged array (no re-encoding),
    # each comes out of json_each as its JSON text.
    stage(conn, (b"[" + b",".join(e.passes_json for e in fresh.values()) + b"]").decode())
    before = conn.total_changes
    conn.execute(
        "INSERT INTO pass_cache(key, engine, model, passes_json, passes, size, created_at, last_used_at)"
        " SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, b.v, j.value ->> 3, j.value ->> 4, ?, ?"
        f" FROM json_each(?) AS j JOIN {BLOBS} AS b ON b.k = j.key WHERE true ON CONFLICT(key) DO NOTHING",
        (now, now, dumps(rows)),
    )
    added = sum(e.passes for e in fresh.values())
    size = sum(e.size for e in fresh.values())
    if conn.total_changes - before == len(fresh):
        return added, size  # the common case: every request was new
    # Some requests were cached before (a run at a higher n, passes that failed then): the rows this
    # statement did not write are those not stamped `now`; they keep their passes and gain the others.
    there = loads(
        conn.execute(
            "SELECT json_group_array(json_array(key, passes_json, size)) AS r FROM pass_cache"
            f" WHERE {_IN_KEYS} AND created_at != ?",
            (dumps(list(fresh)), now),
        ).fetchone()["r"],
        [],
    )
    updates = []
    for key, old, old_size in there:
        entry = fresh[key]
        added, size = added - entry.passes, size - entry.size
        body, n = merged(old, entry.passes_json)
        if n:
            updates.append((body.decode(), len(body) + ENTRY_OVERHEAD, n, key))
            added, size = added + n, size + len(body) + ENTRY_OVERHEAD - int(old_size)
    conn.executemany("UPDATE pass_cache SET passes_json = ?, size = ?, passes = passes + ? WHERE key = ?", updates)
    return added, size
