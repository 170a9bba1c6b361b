"""The write paths of Database: shielded, serialised, drained at close, never deadlocked."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import anyio
import anyio.lowlevel
import pytest

from orchestrator.errors import StoreError
from orchestrator.store.sqlite import SqliteStore as Store


def _insert(name: str, delay: float = 0.0) -> Callable[[sqlite3.Connection], None]:
    def fn(conn: sqlite3.Connection) -> None:
        if delay:
            time.sleep(delay)  # runs in the database thread: holds the write for a while
        conn.execute(
            "INSERT INTO workflows(id, name, created_at, updated_at) VALUES (?, ?, 'now', 'now')", (name, name)
        )

    return fn


async def _names(store: Store) -> list[str]:
    return [r["id"] for r in await store.db.fetchall("SELECT id FROM workflows ORDER BY n")]


async def test_a_cancelled_caller_still_commits_its_write(store: Store) -> None:
    with anyio.move_on_after(0.01) as scope:
        await store.db.write(_insert("shielded", delay=0.2))
        await anyio.lowlevel.checkpoint()  # the cancellation arrives once the write is done
        raise AssertionError("not reached")
    assert scope.cancelled_caught
    assert await _names(store) == ["shielded"]


async def test_a_failing_write_rolls_back_and_leaves_the_writer_usable(store: Store) -> None:
    def boom(conn: sqlite3.Connection) -> None:
        _insert("half")(conn)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await store.db.write(boom)
    await store.db.write(_insert("after"))
    assert await _names(store) == ["after"]


async def test_close_drains_the_writes_already_waiting(tmp_path: object) -> None:
    store = Store(str(tmp_path) + "/drain.db")
    await store.open()
    started = anyio.Event()

    async def writer(i: int) -> None:
        if i == 0:
            started.set()
        await store.db.write(_insert(f"w{i}", delay=0.02))

    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(writer, i)
        await started.wait()
        await anyio.lowlevel.checkpoint()  # every writer is now queued on the lock
        await store.close()
    with pytest.raises(StoreError):
        await store.db.write(_insert("late"))
    again = Store(str(tmp_path) + "/drain.db")
    await again.open()
    try:
        assert sorted(await _names(again)) == [f"w{i}" for i in range(5)]
    finally:
        await again.close()


async def test_cancelling_every_writer_at_shutdown_cannot_deadlock(store: Store) -> None:
    def insert_then_delete(i: int) -> Callable[[sqlite3.Connection], None]:
        def fn(conn: sqlite3.Connection) -> None:
            _insert(f"s{i}", delay=0.001)(conn)
            conn.execute("DELETE FROM workflows WHERE id = ?", (f"s{i}",))

        return fn

    async def sync_writer(i: int) -> None:
        # No checkpoint outside the shielded writes: the cancellation must still get through.
        while True:
            await store.db.write(insert_then_delete(i))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for i in range(16):
                tg.start_soon(sync_writer, i)
            await anyio.sleep(0.2)
            tg.cancel_scope.cancel()
        await store.close()
    # every cancelled transaction either committed whole or not at all: no row left half-deleted
    reopened = Store(store.db.path)
    await reopened.open()
    try:
        assert await _names(reopened) == []
    finally:
        await reopened.close()
