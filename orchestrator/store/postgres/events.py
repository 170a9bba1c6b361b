"""The stored feed: replay after a cursor (per run, or across runs), cursor bounds, snapshots, retention."""

from __future__ import annotations

from orchestrator.store.postgres.db import Conn, Database, affected
from orchestrator.store.postgres.state import OPEN_SQL, TERMINAL_SQL
from orchestrator.store.records import FeedEvent, Row, RunRecord
from orchestrator.store.sqlite.events import epoch
from orchestrator.store.sqlite.jsoncol import loads
from orchestrator.store.sqlite.runs import decode_run

_COLS = "gseq, run_id, seq, type, body_json, created_at"


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
        """Stored events after a cursor (the run's seq, or gseq across runs), in order, with their commit time.

        Across runs, `gseq > after` is a complete answer: numbers are handed out in commit order (see
        state.EventLog), so nothing below the newest visible gseq can still appear."""
        if run_id is None:
            rows = await self.db.fetchall(
                f"SELECT {_COLS} FROM events WHERE gseq > $1 ORDER BY gseq LIMIT $2", after, limit
            )
        else:
            rows = await self.db.fetchall(
                f"SELECT {_COLS} FROM events WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3", run_id, after, limit
            )
        return [_event(r) for r in rows]

    async def first_seq(self, run_id: str) -> int | None:
        v = await self.db.scalar("SELECT min(seq) FROM events WHERE run_id = $1", run_id)
        return int(v) if v is not None else None

    async def first_gseq(self) -> int | None:
        v = await self.db.scalar("SELECT min(gseq) FROM events")
        return int(v) if v is not None else None

    async def last_gseq(self) -> int:
        """The newest committed gseq: the counter, whose committed value is exactly that (and which, unlike
        max(gseq), costs one row whatever the table's size)."""
        return int(await self.db.scalar("SELECT last FROM feed_counter") or 0)

    async def gseq_of(self, run_id: str, seq: int) -> int | None:
        v = await self.db.scalar("SELECT gseq FROM events WHERE run_id = $1 AND seq = $2", run_id, seq)
        return int(v) if v is not None else None

    async def snapshot_runs(self, recent: int, limit: int) -> list[RunRecord]:
        """Every open run plus the `recent` newest ones, newest first, at most `limit`."""
        rows = await self.db.fetchall(
            f"SELECT * FROM runs WHERE status IN {OPEN_SQL}"
            " OR n > (SELECT coalesce(max(n), 0) FROM runs) - $1 ORDER BY n DESC LIMIT $2",
            recent,
            limit,
        )
        return [decode_run(r) for r in rows]

    async def prune(self, finished_before: str) -> int:
        """Retention: drop the events of runs that ended before `finished_before` (ISO), except each run's
        last event."""

        async def tx(conn: Conn) -> int:
            return affected(
                await conn.execute(
                    "DELETE FROM events e USING runs r WHERE r.id = e.run_id"
                    f" AND r.status IN {TERMINAL_SQL} AND r.completed_at < $1 AND e.seq < r.last_seq",
                    finished_before,
                )
            )

        return await self.db.write(tx)

    async def delete_before(self, gseq: int) -> int:
        """Drop every event older than `gseq` (as retention would), whatever its run."""

        async def tx(conn: Conn) -> int:
            return affected(await conn.execute("DELETE FROM events WHERE gseq < $1", gseq))

        return await self.db.write(tx)
