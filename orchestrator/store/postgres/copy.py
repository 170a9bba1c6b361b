"""`orchestrator migrate`: copy a SQLite store into an empty PostgreSQL one, ids and order kept.

The source is read in ONE read transaction (WAL: a consistent snapshot even while a server writes to
it) and the target written in ONE transaction, table by table in foreign-key order, with binary COPY
in pages (a big children table never sits whole in memory). Every column keeps its value, `n`
included, so cursors, ids and feed positions (`gseq`, `seq`) stay valid; identity sequences and the
feed counter are moved past the copied numbers. A target that holds anything is refused, and the
row counts are compared once the copy has committed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.to_thread

from orchestrator.errors import StoreError
from orchestrator.store.postgres import PostgresStore
from orchestrator.store.postgres.db import Conn, redact
from orchestrator.store.postgres.files import CHUNK
from orchestrator.store.sqlite.db import Database as SqliteDatabase

# Parents before children (foreign keys); `file_chunks` is filled from files.data.
TABLES = (
    "workflows",
    "blocks",
    "edges",
    "files",
    "checks",
    "experiments",
    "experiment_documents",
    "runs",
    "children",
    "run_aggregates",
    "artifacts",
    "events",
    "workers",
    "pass_cache",
)
UNNUMBERED = ("events", "workers", "pass_cache", "run_aggregates")  # tables without an `n` sequence
# Not copied: `signin_nonces` (spent sign-in links; a link lives 15 minutes).
PAGE = 2000
_CASTS: dict[str, Callable[[Any], Any]] = {
    "double precision": float,
    "integer": int,
    "bigint": int,
    "text": str,
    "bytea": bytes,
}


async def _pages(src: sqlite3.Connection, sql: str) -> AsyncIterator[list[tuple[Any, ...]]]:
    """The rows of `sql`, PAGE at a time, each read in a thread (the event loop keeps serving PostgreSQL)."""
    cursor = await anyio.to_thread.run_sync(src.execute, sql)
    while page := await anyio.to_thread.run_sync(cursor.fetchmany, PAGE):
        yield page


async def copy_sqlite(source: str, target: str, say: Callable[[str], None] = print) -> dict[str, int]:
    """Copy every table of the SQLite file `source` into the PostgreSQL database `target`; returns the
    row count per table. Raises StoreError when the target is not empty or the counts differ."""
    if not await anyio.Path(source).is_file():
        raise StoreError(f"no SQLite database at {source}", code="not_found")
    # Opening upgrades an older file to the current schema (what any start would do), refuses a newer one.
    src_db = SqliteDatabase(source)
    await src_db.open()
    await src_db.close()
    store = PostgresStore(target)
    await store.open()
    try:
        nonempty = [t for t in TABLES if await store.db.scalar(f"SELECT EXISTS (SELECT 1 FROM {t})")]
        if nonempty:
            raise StoreError(
                f"{redact(target)} is not empty (rows in {', '.join(nonempty)}); migrate into an empty database",
                code="target_not_empty",
            )
        src = await anyio.to_thread.run_sync(lambda: sqlite3.connect(source, check_same_thread=False))
        try:
            src.execute("BEGIN")  # one snapshot for every table
            counts = await store.db.write(lambda conn: _copy(conn, src, say))
        finally:
            src.close()
        for table, expected in counts.items():
            got = int(await store.db.scalar(f"SELECT count(*) FROM {table}"))
            if got != expected:
                raise StoreError(f"{table}: {expected} rows in {source} but {got} in the target", code="count_mismatch")
        return counts
    finally:
        await store.close()


async def _pg_columns(conn: Conn, table: str) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        table,
    )
    return {r["column_name"]: r["data_type"] for r in rows}


async def _copy(conn: Any, src: sqlite3.Connection, say: Callable[[str], None]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in TABLES:
        src_cols = [r[1] for r in src.execute(f"PRAGMA table_info({table})").fetchall()]
        pg = await _pg_columns(conn, table)
        missing = [c for c in src_cols if c not in pg and not (table == "files" and c == "data")]
        if missing:
            raise StoreError(f"{table}: no column {missing} in the PostgreSQL schema", code="schema_mismatch")
        cols = [c for c in src_cols if c in pg]
        casts = [_CASTS.get(pg[c], lambda v: v) for c in cols]
        n = 0
        async for page in _pages(src, f"SELECT {', '.join(cols)} FROM {table} ORDER BY rowid"):
            records = [tuple(None if v is None else f(v) for f, v in zip(casts, row, strict=True)) for row in page]
            await conn.copy_records_to_table(table, records=records, columns=cols)
            n += len(records)
        counts[table] = n
        say(f"{table}: {n} row(s)")
    chunks = 0
    async for page in _pages(src, "SELECT id, data FROM files WHERE data IS NOT NULL ORDER BY rowid"):
        for fid, data in page:
            blob = bytes(data)
            pieces = [(fid, i // CHUNK, blob[i : i + CHUNK]) for i in range(0, len(blob), CHUNK)] or [(fid, 0, b"")]
            await conn.copy_records_to_table("file_chunks", records=pieces, columns=["file_id", "idx", "data"])
            chunks += len(pieces)
    say(f"file bytes: {chunks} chunk(s)")
    for table in TABLES:
        if table not in UNNUMBERED:  # numbered by `n`: new rows continue after the copied ones
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'n'), coalesce((SELECT max(n) FROM {table}), 0) + 1,"
                " false)"
            )
    row = src.execute(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),"
        " coalesce((SELECT max(gseq) FROM events), 0))"
    ).fetchone()
    totals = src.execute("SELECT entries, bytes, hits, misses FROM pass_cache_totals WHERE id = 1").fetchone()
    if totals is not None:  # the target's one totals row exists already (its migration made it)
        await conn.execute(
            "UPDATE pass_cache_totals SET entries = $1, bytes = $2, hits = $3, misses = $4 WHERE id = 1", *totals
        )
    # Past every gseq ever handed out (deleted ones too), so a feed cursor never sees a number twice.
    await conn.execute("UPDATE feed_counter SET last = $1", int(row[0] if row else 0))
    return counts
