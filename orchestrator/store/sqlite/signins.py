"""Sign-in links spent, store-wide: the second trade of a link fails on every API node and after restarts."""

from __future__ import annotations

import sqlite3
import time

from orchestrator.store.sqlite.db import Database


class SigninStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def spend(self, nonce: str, expires_at: float) -> bool:
        """Spend a link's nonce: True the first time, False when it was spent before (until it expires)."""
        now = time.time()

        def tx(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM signin_nonces WHERE expires_at < ?", (now,))
            cur = conn.execute(
                "INSERT INTO signin_nonces(nonce, expires_at) VALUES (?, ?) ON CONFLICT DO NOTHING", (nonce, expires_at)
            )
            return cur.rowcount == 1

        return await self.db.write(tx)
