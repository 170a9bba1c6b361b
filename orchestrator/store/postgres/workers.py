"""Runner processes on any machine: registration, heartbeats (which renew their leases), and who is alive.

Heartbeats and leases are epoch seconds of the DATABASE clock (see children.py): whether a worker on
machine A is alive is decided against the same clock as a worker on machine B beats with.
"""

from __future__ import annotations

from orchestrator.ids import now_iso
from orchestrator.store.postgres.children import DB_NOW
from orchestrator.store.postgres.db import Conn, Database
from orchestrator.store.postgres.state import CLAIMED_SQL
from orchestrator.store.records import Row


class WorkerStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def register(self, worker_id: str, *, host: str, pid: int, capacity: int) -> None:
        async def tx(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO workers(id, host, pid, started_at, heartbeat_at, capacity, status)"
                f" VALUES ($1, $2, $3, $4, {DB_NOW}, $5, 'running') ON CONFLICT (id) DO UPDATE SET"
                " heartbeat_at = excluded.heartbeat_at, capacity = excluded.capacity, status = 'running',"
                " stopped_at = NULL",
                worker_id,
                host,
                pid,
                now_iso(),
                capacity,
            )
            # The other workers beat at once and learn that their shares of the global limits shrank.
            await conn.execute("SELECT pg_notify('workers', 'join')")

        await self.db.write(tx)

    async def heartbeat(self, worker_id: str, *, lease_s: float, stale_s: float, capacity: int) -> list[str]:
        """This worker is alive: renew its heartbeat and the leases of the children it holds. Returns the
        ids of every live worker (heartbeat within `stale_s`), this one included, sorted."""

        async def tx(conn: Conn) -> list[str]:
            await conn.execute(
                f"UPDATE workers SET heartbeat_at = {DB_NOW}, capacity = $1, status = 'running', stopped_at = NULL"
                " WHERE id = $2",
                capacity,
                worker_id,
            )
            # SKIP LOCKED: a child being committed or released right now is skipped rather than waited on
            # (its lease is cleared by that transaction, or renewed at the next beat — a lease outlives
            # several beats), so a heartbeat never waits on, nor deadlocks with, this worker's own commits.
            await conn.execute(
                f"UPDATE children SET lease_expires = {DB_NOW} + $1::float8 WHERE id IN (SELECT id FROM children"
                f" WHERE lease_owner = $2 AND status IN {CLAIMED_SQL} FOR UPDATE SKIP LOCKED)",
                float(lease_s),
                worker_id,
            )
            rows = await conn.fetch(
                f"SELECT id FROM workers WHERE status = 'running' AND heartbeat_at >= {DB_NOW} - $1::float8"
                " ORDER BY id",
                float(stale_s),
            )
            return [r["id"] for r in rows]

        return await self.db.write(tx)

    async def stop(self, worker_id: str) -> None:
        async def tx(conn: Conn) -> None:
            await conn.execute(
                "UPDATE workers SET status = 'stopped', stopped_at = $1 WHERE id = $2", now_iso(), worker_id
            )
            await conn.execute("SELECT pg_notify('workers', 'leave')")

        await self.db.write(tx)

    async def reap(self, stale_s: float) -> list[str]:
        """Workers that stopped beating for `stale_s` are dead: mark them, return their ids."""

        async def tx(conn: Conn) -> list[str]:
            rows = await conn.fetch(
                "UPDATE workers SET status = 'dead', stopped_at = $1 WHERE status = 'running'"
                f" AND heartbeat_at < {DB_NOW} - $2::float8 RETURNING id",
                now_iso(),
                float(stale_s),
            )
            return [r["id"] for r in rows]

        return await self.db.write(tx)

    async def list(self, *, include_stopped: bool = False) -> list[Row]:
        """Workers with how many children each holds now (`claims`), newest first."""
        where = "" if include_stopped else "WHERE w.status = 'running'"
        return await self.db.fetchall(
            "SELECT w.*, (SELECT count(*) FROM children c WHERE c.lease_owner = w.id"
            f" AND c.status IN {CLAIMED_SQL}) AS claims FROM workers w {where} ORDER BY w.started_at DESC"
        )
