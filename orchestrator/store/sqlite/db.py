"""The SQLite connections: one writer (all writes serialised), one reader, and the broker hook.

WAL lets the reader see committed state without blocking the writer. One write style: a whole
transaction is ONE call of a sync function on a stdlib connection in the database thread, under one
lock, shielded so a cancelled caller never leaves a transaction half-applied. Statements are
set-based (json_each) so a transaction's cost does not grow with Python round trips: under load each
thread hop waits for the busy event loop, and CPython's sqlite3 releases and re-takes the GIL on every
row stepped, so a 500-row executemany or a 256-row RETURNING costs hundreds of GIL hand-offs from a
thread that competes with the loop (measured: a 400-child group commit took ~0.7 s that way).

Persist, then publish: `commit(fn)` runs the transaction and hands the feed events it produced to the
broker only once it has committed, so no caller can forget to publish or publish uncommitted state.
Reads go through aiosqlite on the reader connection, one hop per query.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import anyio
import anyio.lowlevel
import anyio.to_thread

from orchestrator.errors import StoreError
from orchestrator.store.records import Broker, FeedEvent, Row
from orchestrator.store.sqlite.faults import Faults, describe
from orchestrator.store.sqlite.startup import ServerLock, check_file

log = logging.getLogger("orchestrator.store")
T = TypeVar("T")
PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA cache_size=-8000",  # KiB per connection: the OS caches the file too; RSS stays flat in N
    # Checkpoints copy the log into the file and fsync: every 1,000 pages (the default) is every few
    # hundred children of a big run; 8,000 pages (~32 MB of log) makes them rarer.
    "PRAGMA wal_autocheckpoint=8000",
)
Params = Sequence[Any] | dict[str, Any]
Tx = Callable[[sqlite3.Connection], T]


def migrations() -> list[tuple[int, str]]:
    folder = resources.files("orchestrator.store.sqlite") / "migrations"
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> Row:
    return {d[0]: v for d, v in zip(cursor.description, row, strict=True)}


class NullBroker:
    """No subscribers (tools, tests, a worker without a feed)."""

    def publish(self, events: Sequence[FeedEvent]) -> None:
        return None


class Database:
    def __init__(self, path: str, broker: Broker | None = None, *, server: bool = False) -> None:
        self.path = path
        self.broker: Broker = broker or NullBroker()
        self._reader: aiosqlite.Connection | None = None
        self._sync: sqlite3.Connection | None = None
        self._sync_thread = anyio.CapacityLimiter(1)
        self._lock = anyio.Lock()
        self._queue_fd: int | None = None  # the processes' writers' queue (see _in_transaction)
        # True while this process's database thread holds the write lock: set and cleared by that thread.
        self.holding = False
        self._released: asyncio.Future[None] | None = None
        self.faults = Faults(path)
        # Held by a server (the API process) for its life: one server per file. None for workers and tools.
        self.lock: ServerLock | None = ServerLock(path) if server and path != ":memory:" else None

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        if self.lock is not None:
            self.lock.acquire(self.path)
        try:
            self._sync = await anyio.to_thread.run_sync(self._connect_sync, limiter=self._sync_thread)
        except sqlite3.Error as exc:
            if self.lock is not None:
                self.lock.release()
            raise describe(self.path, exc) or StoreError(f"The database {self.path} cannot be used: {exc}") from exc
        try:
            if self.lock is not None:  # a server starting: worth a scan of the file
                await anyio.to_thread.run_sync(check_file, self._sync, self.path, limiter=self._sync_thread)
            await anyio.to_thread.run_sync(self._migrate, self._sync, limiter=self._sync_thread)
            self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self.close()
            if isinstance(exc, sqlite3.Error):
                raise describe(self.path, exc) or StoreError(f"The database {self.path} cannot be used: {exc}") from exc
            raise
        self._reader.row_factory = _dict_row
        for pragma in PRAGMAS:
            await self._reader.execute(pragma)

    def _connect_sync(self) -> sqlite3.Connection:
        # Used from one thread at a time (the limiter of 1 and the write lock), not always the same one.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = _dict_row
        for pragma in PRAGMAS:
            conn.execute(pragma)
        conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {BLOBS} (k INTEGER PRIMARY KEY, v TEXT)")
        if self.path != ":memory:":
            self._queue_fd = os.open(self.path + ".writers", os.O_RDWR | os.O_CREAT, 0o600)
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Apply every known migration the file has not had, each in its own transaction. Applied numbers
        are recorded one by one (`schema_migrations`), not only as the highest (`user_version`): numbers
        may land out of order (0004 before 0003), and a file that has 1, 2 and 4 must still get 3."""
        found = migrations()
        known = {number for number, _ in found}
        latest = max(known, default=0)
        unknown = sorted(_applied(conn) - known)
        if unknown:
            raise StoreError(
                f"The database {self.path} was written by a newer orchestrator (schema {max(unknown)}; "
                f"this version knows up to {latest}). Upgrade orchestrator or point --db at another file.",
                code="schema_too_new",
            )
        for number, sql in found:

            def step(c: sqlite3.Connection, sql: str = sql, number: int = number) -> None:
                applied = _applied(c)  # again under the write lock: another process may have just done it
                if number in applied:
                    return
                # executescript() would COMMIT first; split on statements to stay inside one transaction.
                for statement in split_sql(sql):
                    c.execute(statement)
                c.executemany(
                    "INSERT OR IGNORE INTO schema_migrations(version) VALUES (?)", [(v,) for v in applied | {number}]
                )
                c.execute(f"PRAGMA user_version={max(applied | {number})}")

            if number not in _applied(conn):
                _in_transaction(conn, step, self._queue_fd)

    async def close(self) -> None:
        """Drain, then close. The lock is FIFO: the write in flight and every write already waiting
        behind it complete first; a write that arrives later fails with "database is closed"."""
        with anyio.CancelScope(shield=True):
            async with self._lock:
                reader, self._reader = self._reader, None
                sync, self._sync = self._sync, None
                if reader is not None:
                    try:
                        await reader.close()
                    except Exception:  # still close the writer
                        log.exception("closing %s failed", self.path)
                if sync is not None:
                    await anyio.to_thread.run_sync(sync.close, limiter=self._sync_thread)
                if self._queue_fd is not None:
                    os.close(self._queue_fd)
                    self._queue_fd = None
                if self.lock is not None:
                    self.lock.release()

    async def until_written(self) -> None:
        """Return when this process's write transaction no longer holds the lock. A CPU-bound caller
        waits here instead of competing for the GIL with the database thread, which then finishes the
        transaction (and frees the lock every process queues on) sooner."""
        if not self.holding:
            return
        if self._released is None:
            self._released = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._released)

    @property
    def reader(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StoreError("database is closed")
        return self._reader

    async def write(self, fn: Tx[T]) -> T:
        """Run `fn(conn)` as one transaction in the database thread, in one hop. Shielded: commit or
        rollback always completes, and a cancelled caller never leaves a half-applied write; the
        cancellation is delivered right after. `fn` must not touch the event loop."""
        with anyio.CancelScope(shield=True):
            async with self._lock:
                conn = self._sync
                if conn is None:
                    raise StoreError("database is closed")
                try:
                    result = await anyio.to_thread.run_sync(
                        _in_transaction, conn, fn, self._queue_fd, self, limiter=self._sync_thread
                    )
                    self.faults.wrote()
                except sqlite3.Error as exc:
                    mapped = self.faults.translate(exc)
                    if mapped is None:
                        raise
                    raise mapped from exc
                finally:
                    released, self._released = self._released, None
                    if released is not None and not released.done():
                        released.set_result(None)
        # The write is done: now let a cancellation that arrived meanwhile through. Without this
        # checkpoint a caller looping over writes would never notice it was cancelled.
        await anyio.lowlevel.checkpoint_if_cancelled()
        return result

    async def commit(self, fn: Tx[tuple[T, list[FeedEvent]]]) -> T:
        """`write(fn)` for a transaction that produces feed events: they reach the broker once committed."""
        with anyio.CancelScope(shield=True):  # a cancelled caller must not skip the publish
            result, events = await self.write(fn)
            if events:
                try:
                    self.broker.publish(events)
                except Exception:  # the feed must never fail a write; subscribers resync from the store
                    log.exception("publishing %d event(s) failed", len(events))
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


def _applied(conn: sqlite3.Connection) -> set[int]:
    """The migrations a file has had. Files from before `schema_migrations` existed had them in order, so
    their `user_version` N means 1..N."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)")
    rows = conn.execute("SELECT version FROM schema_migrations").fetchall()
    if rows:
        return {int(r["version"]) for r in rows}
    current = int(conn.execute("PRAGMA user_version").fetchone()["user_version"])
    return set(range(1, current + 1))


def _in_transaction(
    conn: sqlite3.Connection, fn: Tx[T], queue_fd: int | None = None, holder: Database | None = None
) -> T:
    # Several processes write one file (the API process and its workers). SQLite makes a writer that
    # finds the file locked sleep and retry (1, 2, 5, 10 … 100 ms), so under contention writers sleep
    # while the lock is free. An exclusive flock taken first queues them in the kernel instead: each
    # wakes as soon as the previous one commits (measured: 2 workers on one run, ~70% → ~100% busy).
    if queue_fd is not None:
        fcntl.flock(queue_fd, fcntl.LOCK_EX)
    if holder is not None:
        holder.holding = True
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            # Also when COMMIT itself failed: never leave the writer inside a transaction.
            with suppress(Exception):
                conn.execute("ROLLBACK")
            raise
    finally:
        if holder is not None:
            holder.holding = False
        if queue_fd is not None:
            fcntl.flock(queue_fd, fcntl.LOCK_UN)
    return result


# Large JSON values of a batch (results, artifact bodies, event bodies) travel as a JSON array of their
# own, staged here by index: a row array that embedded them would be re-parsed whole by each `->>`
# of each column (measured: 500 results of 1.2 KB, 14 ms nested against 4 ms staged).
BLOBS = "temp.batch_blobs"


def stage(conn: sqlite3.Connection, values_json: str | None) -> None:
    """Put a JSON array's elements in BLOBS by index (as JSON text; null → NULL) for the next statement."""
    conn.execute(f"DELETE FROM {BLOBS}")
    if values_json is not None:
        conn.execute(f"INSERT INTO {BLOBS}(k, v) SELECT key, value FROM json_each(?)", (values_json,))


def one(conn: sqlite3.Connection, sql: str, params: Params = ()) -> Row | None:
    row: Row | None = conn.execute(sql, params).fetchone()
    return row


def split_sql(sql: str) -> list[str]:
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
