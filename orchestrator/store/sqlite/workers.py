"""Runner processes: registration, heartbeats (which renew their leases), and who is alive."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from orchestrator.ids import now_iso
from orchestrator.store.records import Row
from orchestrator.store.sqlite.db import Database
from orchestrator.store.sqlite.state import CLAIMED_SQL


class WorkerStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def register(self, worker_id: str, *, host: str, pid: int, capacity: int) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO workers(id, host, pid, started_at, heartbeat_at, capacity, status)"
                " VALUES (?,?,?,?,?,?,'running') ON CONFLICT(id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at,"
                " capacity = excluded.capacity, status = 'running', stopped_at = NULL",
                (worker_id, host, pid, now_iso(), time.time(), capacity),
            )

        await self.db.write(tx)

    async def heartbeat(self, worker_id: str, *, lease_s: float, stale_s: float, capacity: int) -> list[str]:
        """This worker is alive: renew its heartbeat and the leases of the children it holds. Returns the
        ids of every live worker (heartbeat within `stale_s`), this one included, sorted."""
        now = time.time()

        def tx(conn: sqlite3.Connection) -> list[str]:
            conn.execute(
                "UPDATE workers SET heartbeat_at = ?, capacity = ?, status = 'running', stopped_at = NULL WHERE id = ?",
                (now, capacity, worker_id),
            )
            conn.execute(
                f"UPDATE children SET lease_expires = ? WHERE lease_owner = ? AND status IN {CLAIMED_SQL}",
                (now + lease_s, worker_id),
            )
            rows = conn.execute(
                "SELECT id FROM workers WHERE status = 'running' AND heartbeat_at >= ? ORDER BY id", (now - stale_s,)
            ).fetchall()
            return [r["id"] for r in rows]

        return await self.db.write(tx)

    async def stop(self, worker_id: str) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE workers SET status = 'stopped', stopped_at = ? WHERE id = ?", (now_iso(), worker_id))

        await self.db.write(tx)

    async def reap(self, stale_s: float) -> list[str]:
        """Workers that stopped beating for `stale_s` are dead: mark them, return their ids."""
        cutoff = time.time() - stale_s

        def tx(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "UPDATE workers SET status = 'dead', stopped_at = ? WHERE status = 'running' AND heartbeat_at < ?"
                " RETURNING id",
                (now_iso(), cutoff),
            ).fetchall()
            return [r["id"] for r in rows]

        return await self.db.write(tx)

    async def list(self, *, include_stopped: bool = False) -> list[Row]:
        """Workers with how many children each holds now (`claims`), newest first."""
        where = "" if include_stopped else "WHERE w.status = 'running'"
        rows: list[dict[str, Any]] = await self.db.fetchall(
            "SELECT w.*, (SELECT count(*) FROM children c WHERE c.lease_owner = w.id"
            f" AND c.status IN {CLAIMED_SQL}) AS claims FROM workers w {where} ORDER BY w.started_at DESC"
        )
        return rows
