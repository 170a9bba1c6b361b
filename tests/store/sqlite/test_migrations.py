"""Numbered migrations: an older database is upgraded in place with its data, a failing migration
changes nothing, and a database written by a newer version is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import StoreError
from orchestrator.store.sqlite import SqliteStore
from orchestrator.store.sqlite import db as sqlite_db

SHIPPED = sqlite_db.migrations()
NEXT = SHIPPED[-1][0] + 1


async def _at(path: Path, migrations: list[tuple[int, str]], monkeypatch: pytest.MonkeyPatch) -> SqliteStore:
    monkeypatch.setattr(sqlite_db, "migrations", lambda: migrations)
    store = SqliteStore(str(path))
    await store.open()
    return store


async def test_an_older_database_is_upgraded_with_its_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.db"
    old = await _at(path, SHIPPED, monkeypatch)
    wf = await old.workflows.create_workflow(name="kept", description="", project_id=None)
    await old.close()
    upgrade = (
        NEXT,
        "ALTER TABLE workflows ADD COLUMN colour TEXT NOT NULL DEFAULT 'blue';\n"
        "CREATE INDEX wf_colour ON workflows(colour);",
    )
    new = await _at(path, [*SHIPPED, upgrade], monkeypatch)
    try:
        assert await new.db.scalar("PRAGMA user_version") == NEXT
        row = await new.db.fetchone("SELECT name, colour FROM workflows WHERE id = ?", (wf["id"],))
        assert row == {"name": "kept", "colour": "blue"}
        assert (await new.workflows.get_workflow(wf["id"]))["name"] == "kept"
    finally:
        await new.close()
    again = await _at(path, [*SHIPPED, upgrade], monkeypatch)  # already at NEXT: nothing re-applied
    await again.close()


async def test_a_failing_migration_rolls_back_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "fail.db"
    old = await _at(path, SHIPPED, monkeypatch)
    await old.workflows.create_workflow(name="kept", description="", project_id=None)
    await old.close()
    broken = (NEXT, "ALTER TABLE workflows ADD COLUMN half TEXT;\nSELECT no_such_function();")
    with pytest.raises(Exception, match="no_such_function"):
        await _at(path, [*SHIPPED, broken], monkeypatch)
    intact = await _at(path, SHIPPED, monkeypatch)
    try:
        assert await intact.db.scalar("PRAGMA user_version") == SHIPPED[-1][0]
        columns = {r["name"] for r in await intact.db.fetchall("PRAGMA table_info(workflows)")}
        assert "half" not in columns, "the first statement of the failed migration was rolled back too"
    finally:
        await intact.close()


async def test_a_database_from_a_newer_version_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "new.db"
    newer = await _at(path, [*SHIPPED, (NEXT, "CREATE TABLE later (x INTEGER);")], monkeypatch)
    await newer.close()
    with pytest.raises(StoreError, match="newer orchestrator") as caught:
        await _at(path, SHIPPED, monkeypatch)
    assert caught.value.code == "schema_too_new"


async def test_migrations_that_land_out_of_order_are_each_applied_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that had 1, 2 and 4 gets 3 when it arrives (numbers reserved by branches that land in another
    order): the applied numbers are recorded one by one, and `user_version` stays the highest."""
    path = tmp_path / "gap.db"
    late = (NEXT + 1, "CREATE TABLE later_one (x INTEGER);")
    first = await _at(path, [*SHIPPED, late], monkeypatch)
    await first.close()
    early = (NEXT, "CREATE TABLE earlier_one (x INTEGER);")
    both = await _at(path, [*SHIPPED, early, late], monkeypatch)
    try:
        assert await both.db.scalar("SELECT count(*) FROM earlier_one") == 0
        assert await both.db.scalar("PRAGMA user_version") == NEXT + 1
        rows = await both.db.fetchall("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == [n for n, _ in SHIPPED] + [NEXT, NEXT + 1]
    finally:
        await both.close()
    again = await _at(path, [*SHIPPED, early, late], monkeypatch)  # nothing left to apply
    await again.close()


async def test_a_file_from_before_the_applied_list_is_read_by_its_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files written before `schema_migrations` existed (schema 2) had their migrations in order:
    `user_version` N means 1..N were applied, and only what comes after runs."""
    path = tmp_path / "old.db"
    before = [m for m in SHIPPED if m[0] <= 2]
    store = await _at(path, before, monkeypatch)
    await store.db.write(lambda conn: conn.execute("DROP TABLE schema_migrations"))  # as that version left it
    await store.close()
    upgraded = await _at(path, SHIPPED, monkeypatch)
    try:
        assert await upgraded.db.scalar("SELECT count(*) FROM pass_cache") == 0
        rows = await upgraded.db.fetchall("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == [n for n, _ in SHIPPED]
    finally:
        await upgraded.close()
