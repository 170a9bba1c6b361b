"""The SQLite connections: writes (all serialised by one lock) and one reader.

WAL lets the reader see committed state without blocking the writer. Every write runs
under a shield so a cancelled caller never leaves a transaction half-applied.

Two ways to write, behind the same lock so they never overlap:
- `transaction()`: an aiosqlite connection, one thread hop per statement. Fine for the API's writes.
- `write(fn)`: a whole transaction as ONE call of a sync function on a stdlib connection in a
  database thread. The runner's hot writes use it, with set-based statements (json_each) whose
  cost does not grow with the number of Python round trips. Under load each hop waits for the
  busy event loop, and CPython's sqlite3 releases and re-takes the GIL on every row stepped: a
  500-row executemany or a 256-row RETURNING then costs hundreds of GIL hand-offs from a thread
  that competes with the loop (measured: a 400-child group commit took ~0.7 s this way).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import anyio
import anyio.lowlevel
import anyio.to_thread

from orchestrator.errors import StoreError

log = logging.getLogger("orchestrator.store")
Row = dict[str, Any]
T = TypeVar("T")
PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA cache_size=-32000",
)
Params = Sequence[Any] | dict[str, Any]


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("orchestrator.store.sqlite") / "migrations"
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
        self._sync: sqlite3.Connection | None = None
        self._sync_thread = anyio.CapacityLimiter(1)
        self._lock = anyio.Lock()

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._connect()
        try:
            await self._migrate(self._writer)
        except BaseException:
            # An open aiosqlite connection keeps a non-daemon thread alive: close it or the process hangs.
            await self._writer.close()
            self._writer = None
            raise
        self._reader = await self._connect()
        self._sync = await anyio.to_thread.run_sync(self._connect_sync, limiter=self._sync_thread)

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = _dict_row
        for pragma in PRAGMAS:
            await conn.execute(pragma)
        return conn

    def _connect_sync(self) -> sqlite3.Connection:
        # Used from one thread at a time (the limiter of 1 and the write lock), not always the same one.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = _dict_row
        for pragma in PRAGMAS:
            conn.execute(pragma)
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
        """Drain, then close. The lock is FIFO: the write in flight and every write already waiting
        behind it complete first; a write that arrives later fails with "database is closed"."""
        with anyio.CancelScope(shield=True):
            async with self._lock:
                conns, self._reader, self._writer = (self._reader, self._writer), None, None
                sync, self._sync = self._sync, None
                for conn in conns:
                    if conn is not None:
                        try:
                            await conn.close()
                        except Exception:  # still close the others
                            log.exception("closing %s failed", self.path)
                if sync is not None:
                    await anyio.to_thread.run_sync(sync.close, limiter=self._sync_thread)

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
        """One store method = one transaction. Shielded: commit or rollback always completes, and a
        cancelled caller never leaves a half-applied write; the cancellation is delivered right
        after. Bodies only await the database, so the lock is always released in bounded time (no
        deadlock at shutdown)."""
        with anyio.CancelScope(shield=True):
            async with self._lock:
                conn = self.writer
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    await conn.execute("COMMIT")
                except BaseException:
                    # Also when COMMIT itself failed: never leave the writer inside a transaction.
                    with suppress(Exception):
                        await conn.execute("ROLLBACK")
                    raise
        # The write is done: now let a cancellation that arrived meanwhile through. Without this
        # checkpoint a caller looping over writes would never notice it was cancelled.
        await anyio.lowlevel.checkpoint_if_cancelled()

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` as one transaction in the database thread, in one hop; shielded like
        `transaction()`, and serialised with it by the same lock. `fn` must not touch the loop."""
        with anyio.CancelScope(shield=True):
            async with self._lock:
                conn = self._sync
                if conn is None:
                    raise StoreError("database is closed")
                result = await anyio.to_thread.run_sync(_in_transaction, conn, fn, limiter=self._sync_thread)
        await anyio.lowlevel.checkpoint_if_cancelled()
        return result

    # Execute and fetch in ONE hop to the reader's thread: a statement left open between two hops
    # (while another coroutine uses the shared reader) would pin an old snapshot and serve stale reads.
    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        rows: Iterable[Row] = await self.reader.execute_fetchall(sql, params)
        for row in rows:
            return row
        return None

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        rows: Iterable[Row] = await self.reader.execute_fetchall(sql, params)
        return list(rows)

    async def scalar(self, sql: str, params: Params = ()) -> Any:
        row = await self.fetchone(sql, params)
        if row is None:
            return None
        return next(iter(row.values()))


def _in_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
        conn.execute("COMMIT")
    except BaseException:
        with suppress(Exception):
            conn.execute("ROLLBACK")
        raise
    return result


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
