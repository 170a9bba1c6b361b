"""PostgreSQL's disk full (SQLSTATE 53100, `could not extend file`) is `storage_full` (507), logged once per
30 s, and the store says so until a write succeeds again (the SQLite store meets a real full tmpfs in
tests/runner/test_storage_full.py)."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import pytest

from orchestrator.errors import StorageFull
from orchestrator.store.postgres import PostgresStore


async def test_disk_full_is_storage_full_until_a_write_succeeds(pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    store = PostgresStore(pg_url)
    await store.open()
    try:
        caplog.set_level(logging.WARNING)

        async def full(conn: Any) -> None:
            # What PostgreSQL raises when the filesystem under a table is full.
            await conn.execute("SELECT 1")
            raise asyncpg.DiskFullError('could not extend file "base/1/2": No space left on device')

        for _ in range(5):
            with pytest.raises(StorageFull) as err:
                await store.db.write(full)
        assert err.value.status == 507 and err.value.code == "storage_full"
        assert store.storage_full
        assert len([r for r in caplog.records if "storage full" in r.getMessage()]) == 1
        await store.workflows.create_workflow(name="room again", description="", project_id=None)
        assert not store.storage_full
    finally:
        await store.close()
