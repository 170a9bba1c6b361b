"""Reading the stored feed: replay after a cursor, per run or across all runs."""

from __future__ import annotations

from typing import Any

from orchestrator.store.sqlite.db import Database
from orchestrator.store.sqlite.jsoncol import loads


class EventStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def run_after(self, run_id: str, after_seq: int, limit: int = 1000) -> list[dict[str, Any]]:
        rows = await self.db.fetchall(
            "SELECT gseq, run_id, seq, type, body_json FROM events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (run_id, after_seq, limit),
        )
        return [
            {
                "gseq": r["gseq"],
                "run_id": r["run_id"],
                "seq": r["seq"],
                "type": r["type"],
                "body": loads(r["body_json"]),
            }
            for r in rows
        ]

    async def all_after(self, after_gseq: int, limit: int = 1000) -> list[dict[str, Any]]:
        rows = await self.db.fetchall(
            "SELECT gseq, run_id, seq, type, body_json FROM events WHERE gseq > ? ORDER BY gseq LIMIT ?",
            (after_gseq, limit),
        )
        return [
            {
                "gseq": r["gseq"],
                "run_id": r["run_id"],
                "seq": r["seq"],
                "type": r["type"],
                "body": loads(r["body_json"]),
            }
            for r in rows
        ]

    async def first_seq(self, run_id: str) -> int | None:
        v = await self.db.scalar("SELECT min(seq) FROM events WHERE run_id = ?", (run_id,))
        return int(v) if v is not None else None

    async def last_gseq(self) -> int:
        v = await self.db.scalar("SELECT coalesce(max(gseq), 0) FROM events")
        return int(v or 0)
