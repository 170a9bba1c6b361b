"""PostgreSQL store: numbered migrations (and a newer schema refused), uploaded bytes in chunks, text the
server cannot hold, and `orchestrator migrate` from a SQLite file."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from orchestrator.errors import NotFound, StoreError, Unprocessable
from orchestrator.store.postgres import PostgresStore
from orchestrator.store.postgres.copy import copy_sqlite
from orchestrator.store.postgres.db import migrations
from orchestrator.store.postgres.files import CHUNK
from orchestrator.store.records import ENTRY_OVERHEAD, CacheEntry, ChildFinish, ChildStart, PageRequest
from orchestrator.store.sqlite import SqliteStore
from tests.pg_cluster import Cluster
from tests.store.conftest import new_run

TS = "2024-01-01T00:00:00.000Z"


async def test_nodes_starting_together_migrate_an_empty_database_once(pg_cluster: Cluster) -> None:
    url = pg_cluster.create_database(template=None)
    stores = [PostgresStore(url) for _ in range(3)]
    try:
        async with anyio.create_task_group() as tg:
            for s in stores:
                tg.start_soon(s.open)
        latest = migrations()[-1][0]
        assert await stores[0].db.schema_version() == latest
        rows = await stores[0].db.fetchall("SELECT version FROM orchestrator_schema ORDER BY version")
        assert [r["version"] for r in rows] == [n for n, _ in migrations()], "each migration applied once"
    finally:
        for s in stores:
            await s.close()
        pg_cluster.drop_database(url.rsplit("/", 1)[1])


async def test_migrations_that_land_out_of_order_are_each_applied_once(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database that had 1, 2 and 4 gets 3 when it arrives (numbers are reserved by branches that land
    in another order); the applied numbers, not the highest, say what is left to do."""
    from orchestrator.store.postgres import db as pg_db

    shipped = migrations()
    late, early = shipped[-1][0] + 2, shipped[-1][0] + 1
    first = [*shipped, (late, "CREATE TABLE later_one (x integer);")]
    monkeypatch.setattr(pg_db, "migrations", lambda: first)
    s = PostgresStore(pg_url)
    await s.open()
    await s.close()
    both = [*shipped, (early, "CREATE TABLE earlier_one (x integer);"), first[-1]]
    monkeypatch.setattr(pg_db, "migrations", lambda: both)
    s = PostgresStore(pg_url)
    await s.open()
    try:
        rows = await s.db.fetchall("SELECT version FROM orchestrator_schema ORDER BY version")
        assert [r["version"] for r in rows] == [n for n, _ in both]
        assert await s.db.scalar("SELECT count(*) FROM earlier_one") == 0
        assert await s.db.schema_version() == late
    finally:
        await s.close()
    monkeypatch.setattr(pg_db, "migrations", lambda: shipped)
    with pytest.raises(StoreError, match="newer orchestrator"):
        await PostgresStore(pg_url).open()


async def test_a_database_written_by_a_newer_version_is_refused(store: PostgresStore, pg_url: str) -> None:
    await store.db.write(lambda conn: conn.execute("INSERT INTO orchestrator_schema(version) VALUES (99)"))
    newer = PostgresStore(pg_url)
    with pytest.raises(StoreError, match="written by a newer orchestrator") as caught:
        await newer.open()
    assert caught.value.code == "schema_too_new" and "schema 99" in str(caught.value)


def test_serve_refuses_a_newer_database_with_one_line(pg_url: str) -> None:
    async def bump() -> None:
        s = PostgresStore(pg_url)
        await s.open()
        await s.db.write(lambda conn: conn.execute("INSERT INTO orchestrator_schema(version) VALUES (99)"))
        await s.close()

    anyio.run(bump)
    cmd = [sys.executable, "-m", "orchestrator", "serve", "--port", "0", "--api-key", "k", "--no-demo", "--db", pg_url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "written by a newer orchestrator" in done.stderr and "Traceback" not in done.stderr


def test_serve_on_postgres_needs_an_explicit_key(pg_url: str) -> None:
    cmd = [sys.executable, "-m", "orchestrator", "serve", "--port", "0", "--no-demo", "--db", pg_url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "--api-key" in done.stderr


async def test_uploaded_bytes_are_stored_in_chunks(store: PostgresStore, other: PostgresStore) -> None:
    data = bytes(range(256)) * (CHUNK * 5 // 2 // 256)  # 2.5 chunks
    up = await store.files.create_upload(
        filename="big.bin", size_bytes=len(data), mime_type="application/octet-stream", sha256=None, ttl_s=60
    )
    await store.files.put_bytes(up["id"], b"replaced soon")
    await store.files.put_bytes(up["id"], data)
    done = await store.files.complete(up["id"], hashlib.sha256(data).hexdigest())
    assert done["status"] == "complete"
    chunks = await store.db.fetchall("SELECT idx, length(data) AS n FROM file_chunks WHERE file_id = $1", up["id"])
    assert sorted((r["idx"], r["n"]) for r in chunks) == [(0, CHUNK), (1, CHUNK), (2, len(data) - 2 * CHUNK)]
    assert await other.files.data(up["id"]) == data, "any node reads what another stored"
    empty = await store.files.create_complete(filename="empty.txt", mime_type="text/plain", data=b"")
    assert await other.files.data(empty["id"]) == b""


async def test_text_with_nul_is_not_found_or_refused(store: PostgresStore) -> None:
    with pytest.raises(NotFound):
        await store.workflows.get_workflow("wf_\x00")
    with pytest.raises(Unprocessable, match="NUL"):
        await store.workflows.create_workflow(name="a\x00b", description="", project_id=None)


async def _sqlite_store_with_history(path: Path) -> tuple[str, str, bytes]:
    s = SqliteStore(str(path))
    await s.open()
    try:
        wf = await s.workflows.create_workflow(name="wf", description="d", project_id="p")
        await s.workflows.create_block(wf["id"], {"id": "blk_x", "type": "extract", "config": {"model": "m"}})
        data = b"invoice bytes " * 1000
        f = await s.files.create_complete(filename="a.txt", mime_type="text/plain", data=data)
        docs = [{"handle_inputs": {"h": {"type": "json", "data": i}}} for i in range(3)]
        await s.experiments.create(workflow_id=wf["id"], block_id="blk_x", name="e", n_consensus=3, documents=docs)
        old = await new_run(s, 2, run_id="wfevalrun_old", workflow_id=wf["id"])
        for c in await s.children.claim(old, 2):
            await s.children.apply(
                [ChildStart(c["id"], old, TS)],
                [ChildFinish(child_id=c["id"], run_id=old, status="completed", verdict="passed", completed_at=TS)],
            )
        await new_run(s, 3, run_id="wfevalrun_open", workflow_id=wf["id"])
        await s.events.delete_before(3)  # deleted numbers must stay used after the move
        await s.workers.register("wrk_old", host="h", pid=1, capacity=2)
        passes = b'{"0":{"o":{"total":1},"p":3,"c":2},"1":{"o":"two","p":null,"c":null}}'
        await s.cache.put([CacheEntry("reqkey", "openai", "gpt-x", passes, 2)])
        return wf["id"], f["id"], data
    finally:
        await s.close()


async def test_migrate_copies_a_sqlite_store_and_keeps_every_id(
    tmp_path: Path, store: PostgresStore, pg_url: str
) -> None:
    wf_id, file_id, data = await _sqlite_store_with_history(tmp_path / "runs.db")
    passes = b'{"0":{"o":{"total":1},"p":3,"c":2},"1":{"o":"two","p":null,"c":null}}'
    src = SqliteStore(str(tmp_path / "runs.db"))
    await src.open()
    try:
        before_runs = (await src.runs.list_page(("eval",), PageRequest(limit=10), {})).rows
        before_events = await src.events.after(None, 0, 1000)
        top = await src.events.last_gseq()
    finally:
        await src.close()
    lines: list[str] = []
    counts = await copy_sqlite(str(tmp_path / "runs.db"), pg_url, say=lines.append)
    assert counts["runs"] == 2 and counts["children"] == 5 and counts["workflows"] == 1 and counts["workers"] == 1
    after_runs = (await store.runs.list_page(("eval",), PageRequest(limit=10), {})).rows
    assert after_runs == before_runs, "same rows, same order, same values"
    assert [(e["gseq"], e["seq"], e["body"]) for e in await store.events.after(None, 0, 1000)] == [
        (e["gseq"], e["seq"], e["body"]) for e in before_events
    ]
    assert await store.files.data(file_id) == data
    assert (await store.workflows.get_workflow(wf_id))["name"] == "wf"
    cached = (await store.cache.get_many(["reqkey"]))["reqkey"]
    assert (cached[0].output, cached[0].prompt_tokens, cached[1].output) == ({"total": 1}, 3, "two")
    stats = await store.cache.stats()
    assert (stats.entries, stats.bytes) == (2, len(passes) + ENTRY_OVERHEAD), "the totals moved with the rows"
    later = await new_run(store, 1, run_id="wfevalrun_new", workflow_id=wf_id)
    assert min(e["gseq"] for e in await store.events.after(later, 0, 10)) > top, "numbers continue, never repeat"
    fresh = await store.workflows.create_workflow(name="after", description="", project_id="p")
    assert fresh["n"] > 1, "identities continue after the copied rows"
    with pytest.raises(StoreError, match="not empty"):
        await copy_sqlite(str(tmp_path / "runs.db"), pg_url, say=lines.append)


def test_the_migrate_command(tmp_path: Path, pg_cluster: Cluster) -> None:
    anyio.run(_sqlite_store_with_history, tmp_path / "runs.db")
    url = pg_cluster.create_database(template=None)
    cmd = [sys.executable, "-m", "orchestrator", "migrate", "--from", str(tmp_path / "runs.db"), "--to", url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "children: 5 row(s)" in done.stdout and "row counts verified" in done.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 2 and "not empty" in again.stderr and "Traceback" not in again.stderr
    pg_cluster.drop_database(url.rsplit("/", 1)[1])
