"""Reads the feed needs beyond EventStore: cursor bounds and the runs of an all-runs snapshot."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestrator.store.sqlite.db import Database, Row
from orchestrator.store.sqlite.jsoncol import loads
from orchestrator.store.sqlite.runs import decode_run


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


def epoch(created_at: str | None) -> float | None:
    """`created_at` (ISO, UTC, set at commit) as epoch seconds: the `ts` of an event read back."""
    if not created_at:
        return None
    try:
        return datetime.fromisoformat(created_at).timestamp()
    except ValueError:
        return None


async def events_after(db: Database, run_id: str | None, after: int, limit: int) -> list[dict[str, Any]]:
    """Stored events after a cursor (the run's seq, or gseq across runs), with their commit time `ts`."""
    if run_id is None:
        sql = "SELECT gseq, run_id, seq, type, body_json, created_at FROM events WHERE gseq > ? ORDER BY gseq LIMIT ?"
        args: tuple[Any, ...] = (after, limit)
    else:
        sql = (
            "SELECT gseq, run_id, seq, type, body_json, created_at FROM events"
            " WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        )
        args = (run_id, after, limit)
    return [
        {
            "gseq": r["gseq"],
            "run_id": r["run_id"],
            "seq": r["seq"],
            "type": r["type"],
            "body": loads(r["body_json"]),
            "ts": epoch(r["created_at"]),
        }
        for r in await db.fetchall(sql, args)
    ]
