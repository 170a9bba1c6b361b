"""The SQLite connection pair: one writer (all transactions, serialised) and one reader.

WAL lets the reader see committed state without blocking the writer. Every write runs
under a shield so a cancelled caller never leaves a transaction half-applied.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite
import anyio

from orchestrator.errors import StoreError

Row = dict[str, Any]
Params = Sequence[Any] | dict[str, Any]


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("orchestrator.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> Row:
    return {d[0]: v for d, v in zip(cursor.description, row, strict=True)}


class Database:
    def __init__(self, path: str) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = anyio.Lock()

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._connect()
        await self._migrate(self._writer)
        self._reader = await self._connect()

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = _dict_row
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=10000",
            "PRAGMA temp_store=MEMORY",
            "PRAGMA cache_size=-32000",
        ):
            await conn.execute(pragma)
        return conn

    async def _migrate(self, conn: aiosqlite.Connection) -> None:
        migrations = _migrations()
        latest = migrations[-1][0] if migrations else 0
        async with conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        current = int(row["user_version"]) if row else 0
        if current > latest:
            raise StoreError(
                f"The database {self.path} was written by a newer orchestrator (schema {current}; "
                f"this version knows up to {latest}). Upgrade orchestrator or point --db at another file.",
                code="schema_too_new",
            )
        for number, sql in migrations:
            if number <= current:
                continue
            await conn.execute("BEGIN IMMEDIATE")
            try:
                await self._run_script(conn, sql)
                await conn.execute(f"PRAGMA user_version={number}")
                await conn.execute("COMMIT")
            except BaseException:
                await conn.execute("ROLLBACK")
                raise

    @staticmethod
    async def _run_script(conn: aiosqlite.Connection, sql: str) -> None:
        # executescript() would COMMIT first; split on statements to stay inside our transaction.
        for statement in _split_sql(sql):
            await conn.execute(statement)

    async def close(self) -> None:
        # Taking the lock waits for an in-flight write transaction to finish.
        async with self._lock:
            for conn in (self._reader, self._writer):
                if conn is not None:
                    await conn.close()
            self._reader = self._writer = None

    @property
    def writer(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise StoreError("database is closed")
        return self._writer

    @property
    def reader(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StoreError("database is closed")
        return self._reader

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One store method = one transaction. Shielded: commit or rollback always completes."""
        with anyio.CancelScope(shield=True):
            async with self._lock:
                conn = self.writer
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    await conn.execute("ROLLBACK")
                    raise
                else:
                    await conn.execute("COMMIT")

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        async with self.reader.execute(sql, params) as cur:
            row: Row | None = await cur.fetchone()
            return row

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        async with self.reader.execute(sql, params) as cur:
            rows: Iterable[Row] = await cur.fetchall()
            return list(rows)

    async def scalar(self, sql: str, params: Params = ()) -> Any:
        row = await self.fetchone(sql, params)
        if row is None:
            return None
        return next(iter(row.values()))


def _split_sql(sql: str) -> list[str]:
    statements, buf = [], []
    for line in sql.splitlines():
        stripped = line.strip()
        if stripped.startswith("--") or not stripped:
            continue
        buf.append(line)
        if sqlite3.complete_statement("\n".join(buf)):
            statements.append("\n".join(buf))
            buf = []
    if buf:
        statements.append("\n".join(buf))
    return statements
