"""The PostgreSQL connections: a pool, one transaction per store method, numbered migrations, the broker hook.

Driver: asyncpg, chosen by measurement on this machine's 2 cores against psycopg 3 (async, binary
wheels), same server, same statements: a group commit of 500 finishes (one `unnest` UPDATE of the
children, the feed counter, one `unnest` INSERT of 500 events) took 4.3–4.5 ms with asyncpg and
14.4–15.8 ms with psycopg, and the client spent ~5× less CPU (0.22 s vs 1.21 s for the whole
measurement); point reads were even (0.05–0.09 ms). The client's CPU is what a busy worker cannot spare:
its event loop also runs the passes.

Same shape as the SQLite store: `write(fn)` runs `fn(conn)` as ONE transaction, shielded so that a
cancelled caller never leaves it half-done (the cancellation is delivered right after); `commit(fn)`
also hands the feed events `fn` produced to the broker once committed (persist, then publish). Unlike
SQLite, writers run concurrently (READ COMMITTED) and serialise only where they meet: a run's row
(`SELECT … FOR UPDATE`, see state.py), the children they claim (`FOR UPDATE SKIP LOCKED`), and the feed
counter. Locks are always taken in that order — runs (sorted by id), children, counter — and a
transaction PostgreSQL still picks as a deadlock victim is retried from the start.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from importlib import resources
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.lowlevel
import asyncpg

from orchestrator.errors import StoreError, Unprocessable
from orchestrator.store.postgres.faults import Faults
from orchestrator.store.records import Broker, FeedEvent, Row

log = logging.getLogger("orchestrator.store")
T = TypeVar("T")
POOL_MAX = 16  # connections per process: the committer, claims, heartbeats and concurrent API requests
RETRIES = 5  # a deadlock victim or a serialization failure is retried this many times
MIGRATION_LOCK = 7_270_001  # pg_advisory_xact_lock key: nodes starting together migrate one at a time


class Conn(Protocol):
    """What the store uses of an asyncpg connection (asyncpg ships no type information)."""

    async def execute(self, query: str, *args: Any) -> str: ...
    async def executemany(self, query: str, args: Iterable[Sequence[Any]]) -> None: ...
    async def fetch(self, query: str, *args: Any) -> list[Any]: ...
    async def fetchrow(self, query: str, *args: Any) -> Any: ...
    async def fetchval(self, query: str, *args: Any) -> Any: ...


Tx = Callable[[Conn], Awaitable[T]]


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def migrations() -> list[tuple[int, str]]:
    folder = resources.files("orchestrator.store.postgres") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql") and entry.name[:4].isdigit():
            found.append((int(entry.name[:4]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def affected(status: str) -> int:
    """The row count of an asyncpg command tag (`UPDATE 3`, `DELETE 0`, `INSERT 0 5`)."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class NullBroker:
    def publish(self, events: Sequence[FeedEvent]) -> None:
        return None


class Database:
    def __init__(self, url: str, broker: Broker | None = None) -> None:
        self.url = url
        self.broker: Broker = broker or NullBroker()
        self._pool: Any = None
        self.on_use: Callable[[], Awaitable[None]] | None = None  # the signals' reconnect check (see signals.py)
        self.faults = Faults(redact(url))

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=POOL_MAX, server_settings={"application_name": "orchestrator"}
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"cannot connect to {redact(self.url)}: {exc}", code="store_unavailable") from exc
        try:
            await self._migrate()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.close()
            raise

    async def _migrate(self) -> None:
        """Apply every known migration the database has not had. Each applied number is a row, so numbers
        that land out of order (0003 before 0002) are still each applied once."""
        found = migrations()
        latest = found[-1][0] if found else 0
        async with self._pool.acquire() as conn, conn.transaction():
            # Every node runs this at start-up: the lock makes the second one wait, then find nothing to do.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute("CREATE TABLE IF NOT EXISTS orchestrator_schema (version integer NOT NULL)")
            applied = {int(r[0]) for r in await conn.fetch("SELECT version FROM orchestrator_schema")}
            unknown = sorted(applied - {number for number, _ in found})
            if unknown:
                raise StoreError(
                    f"The database {redact(self.url)} was written by a newer orchestrator (schema {max(unknown)};"
                    f" this version knows up to {latest}). Upgrade orchestrator or point --db at another database.",
                    code="schema_too_new",
                )
            for number, sql in found:
                if number not in applied:
                    await conn.execute(sql)  # several statements: asyncpg sends a script as one simple query
                    await conn.execute("INSERT INTO orchestrator_schema(version) VALUES ($1)", number)

    async def schema_version(self) -> int:
        return int(await self.scalar("SELECT max(version) FROM orchestrator_schema") or 0)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            with anyio.CancelScope(shield=True):
                try:
                    with anyio.fail_after(10):
                        await pool.close()  # waits for the connections in use to be released
                except TimeoutError:
                    pool.terminate()

    @property
    def pool(self) -> Any:
        if self._pool is None:
            raise StoreError("database is closed")
        return self._pool

    async def write(self, fn: Tx[T]) -> T:
        """Run `fn(conn)` as one transaction. Shielded: commit or rollback always completes; a deadlock
        victim is retried from the start (`fn` reads everything it decides on inside the transaction)."""
        with anyio.CancelScope(shield=True):
            if self.on_use is not None:
                await self.on_use()
            for attempt in range(RETRIES + 1):
                try:
                    async with self.pool.acquire() as conn, conn.transaction():
                        result: T = await fn(conn)
                    self.faults.wrote()
                    break
                except asyncpg.DiskFullError as exc:
                    raise self.faults.full(exc) from exc
                except _BAD_TEXT as exc:
                    raise Unprocessable(NUL_MESSAGE, code="invalid_text") from exc
                except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                    if attempt == RETRIES:
                        raise
                    log.info("transaction retried after a lock conflict (attempt %d)", attempt + 1)
                    await anyio.sleep(0.005 * (attempt + 1))
        await anyio.lowlevel.checkpoint_if_cancelled()
        return result

    async def commit(self, fn: Tx[tuple[T, list[FeedEvent]]]) -> T:
        """`write(fn)` for a transaction that produces feed events: they reach the broker once committed."""
        with anyio.CancelScope(shield=True):
            result, events = await self.write(fn)
            if events:
                try:
                    self.broker.publish(events)
                except Exception:  # the feed must never fail a write; subscribers resync from the store
                    log.exception("publishing %d event(s) failed", len(events))
        await anyio.lowlevel.checkpoint_if_cancelled()
        return result

    # Reads: one statement on a pooled connection, outside any explicit transaction (its own snapshot).
    # A parameter holding NUL never reaches the server: PostgreSQL text cannot hold one (SQLite's can),
    # so no stored value equals or contains it, and the lookup finds nothing — a 404, as with SQLite.
    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        if self.on_use is not None:
            await self.on_use()
        if _has_nul(args):
            return []
        async with self.pool.acquire() as conn:
            return [dict(r) for r in await conn.fetch(sql, *args)]

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        if _has_nul(args):
            return None
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(sql, *args)
        return dict(row) if row is not None else None

    async def scalar(self, sql: str, *args: Any) -> Any:
        if _has_nul(args):
            return None
        async with self.pool.acquire() as conn:
            return await conn.fetchval(sql, *args)


NUL_MESSAGE = "Text values cannot contain the NUL character (\\u0000) in this store (PostgreSQL)"
_BAD_TEXT = (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError)


def _has_nul(args: tuple[Any, ...]) -> bool:
    for a in args:
        if isinstance(a, str) and "\x00" in a:
            return True
        if isinstance(a, list) and any(isinstance(v, str) and "\x00" in v for v in a):
            return True
    return False


async def one(conn: Conn, sql: str, *args: Any) -> Row | None:
    row = await conn.fetchrow(sql, *args)
    return dict(row) if row is not None else None
