"""Sign-in links spent, store-wide (see the SQLite store): one trade per link across API nodes."""

from __future__ import annotations

import time

from orchestrator.store.postgres.db import Conn, Database


class SigninStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def spend(self, nonce: str, expires_at: float) -> bool:
        """Spend a link's nonce: True the first time, False when it was spent before (until it expires)."""
        now = time.time()

        async def tx(conn: Conn) -> bool:
            await conn.execute("DELETE FROM signin_nonces WHERE expires_at < $1", now)
            status = await conn.execute(
                "INSERT INTO signin_nonces(nonce, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING", nonce, expires_at
            )
            return status.endswith(" 1")

        return await self.db.write(tx)
