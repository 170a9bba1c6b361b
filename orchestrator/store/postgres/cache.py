"""The pass cache on PostgreSQL: the SQLite store's table, rules and totals (see store/sqlite/cache.py).

What changes is concurrency. Group commits of several workers insert with `ON CONFLICT DO NOTHING` (two
workers may call passes of the same request: the first row stays, and the other's passes it lacks are
merged into it under its row lock), count what went in from `RETURNING`, and take the totals row after
the children's rows and before the feed counter (the lock order of children.py). Eviction picks its
victims `FOR UPDATE SKIP LOCKED`, so it never waits on (or deadlocks with) a commit that is moving the LRU
stamp of a row it would delete. Times are the database clock's, as for leases.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orchestrator.store.postgres.db import Conn, Database
from orchestrator.store.records import ENTRY_OVERHEAD, CachedPass, CacheEntry, CacheStats
from orchestrator.store.sqlite.cache import cache_stats, cached_passes, merged
from orchestrator.store.sqlite.jsoncol import loads

DB_NOW = "extract(epoch from clock_timestamp())::float8"
TRIM_CHUNK = 500


class CacheStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_many(self, keys: Sequence[str]) -> dict[str, dict[int, CachedPass]]:
        if not keys:
            return {}
        rows = await self.db.fetchall(
            "SELECT key, engine, model, passes_json, created_at, last_used_at FROM pass_cache"
            " WHERE key = ANY($1::text[])",
            list(keys),
        )
        return {
            r["key"]: cached_passes(
                r["key"], r["engine"], r["model"], loads(r["passes_json"]), r["created_at"], r["last_used_at"]
            )
            for r in rows
        }

    async def put(self, entries: Sequence[CacheEntry]) -> int:
        async def tx(conn: Conn) -> int:
            return await record(conn, entries, (), 0, 0)

        return await self.db.write(tx)

    async def stats(self) -> CacheStats:
        totals = await self.db.fetchone("SELECT entries, bytes, hits, misses FROM pass_cache_totals WHERE id = 1")
        models = await self.db.fetchall(
            "SELECT model, engine, sum(passes)::int8 AS entries, sum(size)::int8 AS bytes FROM pass_cache"
            " GROUP BY model, engine ORDER BY bytes DESC, model"
        )
        oldest = await self.db.scalar("SELECT min(created_at) FROM pass_cache")
        return cache_stats(totals, models, oldest)

    async def clear(self, *, model: str | None = None, older_than_s: float | None = None) -> int:
        """As the SQLite store: `model` takes `*` and `?` wildcards; without filters, everything and the hit rate."""
        conds, args = ["true"], list[Any]()
        if model is not None:
            args.append(glob_to_like(model))
            conds.append(f"model LIKE ${len(args)}")
        if older_than_s is not None:
            args.append(float(older_than_s))
            conds.append(f"created_at < {DB_NOW} - ${len(args)}::float8")
        where = " AND ".join(conds)
        reset = ", hits = 0, misses = 0" if model is None and older_than_s is None else ""

        async def tx(conn: Conn) -> int:
            gone = await conn.fetchrow(
                f"WITH d AS (DELETE FROM pass_cache WHERE {where} RETURNING size, passes)"
                " SELECT coalesce(sum(passes), 0)::int8 AS n, coalesce(sum(size), 0)::int8 AS b FROM d",
                *args,
            )
            await conn.execute(
                f"UPDATE pass_cache_totals SET entries = entries - $1, bytes = bytes - $2{reset} WHERE id = 1",
                int(gone["n"]),
                int(gone["b"]),
            )
            return int(gone["n"])

        return await self.db.write(tx)

    async def trim(self, max_bytes: int, target_bytes: int) -> int:
        total = int(await self.db.scalar("SELECT bytes FROM pass_cache_totals WHERE id = 1") or 0)
        if total <= max_bytes:
            return 0
        removed = 0
        while True:

            async def tx(conn: Conn) -> int:
                return await _evict(conn, target_bytes)

            n = await self.db.write(tx)
            if n <= 0:
                return removed
            removed += n


async def _evict(conn: Conn, target_bytes: int) -> int:
    # The totals first and locked: two workers trimming at once take turns instead of both deleting what
    # one of them alone should (rows are then skipped when locked, so this never waits on a commit's rows).
    total = int(await conn.fetchval("SELECT bytes FROM pass_cache_totals WHERE id = 1 FOR UPDATE") or 0)
    if total <= target_bytes:
        return 0
    oldest = await conn.fetch(
        "SELECT key, size, passes FROM pass_cache ORDER BY last_used_at, key LIMIT $1 FOR UPDATE SKIP LOCKED",
        TRIM_CHUNK,
    )
    victims: list[str] = []
    freed = passes = 0
    for r in oldest:
        if total - freed <= target_bytes:
            break
        victims.append(r["key"])
        freed += int(r["size"])
        passes += int(r["passes"])
    if not victims:
        return 0
    await conn.execute("DELETE FROM pass_cache WHERE key = ANY($1::text[])", victims)
    await conn.execute(
        "UPDATE pass_cache_totals SET entries = entries - $1, bytes = bytes - $2 WHERE id = 1", passes, freed
    )
    return len(victims)


async def record(conn: Conn, entries: Sequence[CacheEntry], touches: Sequence[str], hits: int, misses: int) -> int:
    """Inside a write transaction: add the entries (new rows, or passes new to an existing row), move the LRU
    stamp of the used ones (in key order: two commits touching the same rows lock them in the same order),
    add to the totals. Returns how many passes were added."""
    if touches:
        await conn.execute(
            f"UPDATE pass_cache SET last_used_at = {DB_NOW} FROM (SELECT key FROM pass_cache"
            " WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE) AS t WHERE pass_cache.key = t.key",
            sorted(set(touches)),
        )
    added, size = await _insert(conn, entries) if entries else (0, 0)
    if added or size or hits or misses:
        await conn.execute(
            "UPDATE pass_cache_totals SET entries = entries + $1, bytes = bytes + $2, hits = hits + $3,"
            " misses = misses + $4 WHERE id = 1",
            added,
            size,
            int(hits),
            int(misses),
        )
    return added


async def _insert(conn: Conn, entries: Sequence[CacheEntry]) -> tuple[int, int]:
    fresh: dict[str, CacheEntry] = {}
    for e in entries:
        if e.key in fresh:
            body, n = merged(fresh[e.key].passes_json, e.passes_json)
            fresh[e.key] = CacheEntry(e.key, e.engine, e.model, body, fresh[e.key].passes + n)
        else:
            fresh[e.key] = e
    rows = sorted(fresh.values(), key=lambda e: e.key)  # lock order
    inserted = await conn.fetch(
        "INSERT INTO pass_cache(key, engine, model, passes_json, passes, size, created_at, last_used_at)"
        f" SELECT u.k, u.e, u.m, u.j, u.n, u.s, {DB_NOW}, {DB_NOW} FROM unnest($1::text[], $2::text[], $3::text[],"
        " $4::text[], $5::int4[], $6::int4[]) AS u(k, e, m, j, n, s) ORDER BY u.k ON CONFLICT (key) DO NOTHING"
        " RETURNING key",
        [e.key for e in rows],
        [e.engine for e in rows],
        [e.model for e in rows],
        [e.passes_json.decode() for e in rows],
        [e.passes for e in rows],
        [e.size for e in rows],
    )
    went = {r["key"] for r in inserted}
    added = sum(e.passes for e in rows if e.key in went)
    size = sum(e.size for e in rows if e.key in went)
    conflicts = [e for e in rows if e.key not in went]
    if conflicts:  # rare: passes of a request cached before (a run at a higher n, a pass that failed then)
        old = await conn.fetch(
            "SELECT key, passes_json, size FROM pass_cache WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE",
            [e.key for e in conflicts],
        )
        by_key = {e.key: e for e in conflicts}
        for r in old:
            body, n = merged(r["passes_json"], by_key[r["key"]].passes_json)
            if n:
                await conn.execute(
                    "UPDATE pass_cache SET passes_json = $1, size = $2, passes = passes + $3 WHERE key = $4",
                    body.decode(),
                    len(body) + ENTRY_OVERHEAD,
                    n,
                    r["key"],
                )
                added, size = added + n, size + len(body) + ENTRY_OVERHEAD - int(r["size"])
    return added, size


def glob_to_like(pattern: str) -> str:
    """`*` and `?` wildcards as a LIKE pattern (case-sensitive in PostgreSQL); `%`, `_` and `\\` literal."""
    out = []
    for ch in pattern:
        if ch in "%_\\":
            out.append("\\" + ch)
        elif ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)
