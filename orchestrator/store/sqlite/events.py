"""The stored feed: replay after a cursor (per run, or across runs), cursor bounds, snapshots, retention."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from orchestrator.store.records import FeedEvent, Row, RunRecord
from orchestrator.store.sqlite.db import Database
from orchestrator.store.sqlite.jsoncol import loads
from orchestrator.store.sqlite.runs import decode_run
from orchestrator.store.sqlite.state import OPEN_SQL, TERMINAL_SQL


def epoch(created_at: str | None) -> float | None:
    """`created_at` (ISO, UTC, set at commit) as epoch seconds: the `ts` of an event read back."""
    if not created_at:
        return None
    try:
        return datetime.fromisoformat(created_at).timestamp()
    except ValueError:
        return None


def _event(r: Row) -> FeedEvent:
    return {
        "gseq": r["gseq"],
        "run_id": r["run_id"],
        "seq": r["seq"],
        "type": r["type"],
        "body": loads(r["body_json"]),
        "ts": epoch(r["created_at"]),
    }


class EventStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def after(self, run_id: str | None, after: int, limit: int) -> list[FeedEvent]:
        """Stored events after a cursor (the run's seq, or gseq across runs), in order, with their commit time."""
        cols = "gseq, run_id, seq, type, body_json, created_at"
        if run_id is None:
            sql = f"SELECT {cols} FROM events WHERE gseq > ? ORDER BY gseq LIMIT ?"
            args: tuple[Any, ...] = (after, limit)
        else:
            sql = f"SELECT {cols} FROM events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?"
            args = (run_id, after, limit)
        return [_event(r) for r in await self.db.fetchall(sql, args)]

    async def first_seq(self, run_id: str) -> int | None:
        """The oldest seq of this run still stored (events may be pruned from the front)."""
        v = await self.db.scalar("SELECT min(seq) FROM events WHERE run_id = ?", (run_id,))
        return int(v) if v is not None else None

    async def first_gseq(self) -> int | None:
        """The oldest all-runs cursor still stored."""
        v = await self.db.scalar("SELECT min(gseq) FROM events")
        return int(v) if v is not None else None

    async def last_gseq(self) -> int:
        v = await self.db.scalar("SELECT coalesce(max(gseq), 0) FROM events")
        return int(v or 0)

    async def gseq_of(self, run_id: str, seq: int) -> int | None:
        v = await self.db.scalar("SELECT gseq FROM events WHERE run_id = ? AND seq = ?", (run_id, seq))
        return int(v) if v is not None else None

    async def snapshot_runs(self, recent: int, limit: int) -> list[RunRecord]:
        """Every open run plus the `recent` newest ones, newest first, at most `limit`."""
        rows = await self.db.fetchall(
            f"SELECT * FROM runs WHERE status IN {OPEN_SQL}"
            " OR n > (SELECT coalesce(max(n), 0) FROM runs) - ? ORDER BY n DESC LIMIT ?",
            (recent, limit),
        )
        return [decode_run(r) for r in rows]

    async def prune(self, finished_before: str) -> int:
        """Retention: drop the events of runs that ended before `finished_before` (ISO), except each run's
        last event, so a feed still ends such a run properly while the table stops growing."""

        def tx(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM events WHERE run_id IN (SELECT id FROM runs WHERE status IN"
                f" {TERMINAL_SQL} AND completed_at < ?)"
                " AND seq < (SELECT last_seq FROM runs WHERE runs.id = events.run_id)",
                (finished_before,),
            ).rowcount

        return int(await self.db.write(tx))

    async def delete_before(self, gseq: int) -> int:
        """Drop every event older than `gseq` (as retention would), whatever its run."""

        def tx(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM events WHERE gseq < ?", (gseq,)).rowcount

        return int(await self.db.write(tx))
