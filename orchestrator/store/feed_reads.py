"""Reads the feed needs beyond EventStore: cursor bounds and the runs of an all-runs snapshot."""

from __future__ import annotations

from orchestrator.store.db import Database, Row
from orchestrator.store.runs import decode_run


async def first_gseq(db: Database) -> int | None:
    """The oldest all-runs cursor still stored (events may be pruned from the front)."""
    v = await db.scalar("SELECT min(gseq) FROM events")
    return int(v) if v is not None else None


async def gseq_of(db: Database, run_id: str, seq: int) -> int | None:
    v = await db.scalar("SELECT gseq FROM events WHERE run_id = ? AND seq = ?", (run_id, seq))
    return int(v) if v is not None else None


async def snapshot_runs(db: Database, recent: int, limit: int) -> list[Row]:
    """Every open run plus the `recent` newest ones, newest first, at most `limit`."""
    rows = await db.fetchall(
        "SELECT * FROM runs WHERE status IN ('pending','queued','running')"
        " OR n > (SELECT coalesce(max(n), 0) FROM runs) - ? ORDER BY n DESC LIMIT ?",
        (recent, limit),
    )
    return [decode_run(r) for r in rows]
