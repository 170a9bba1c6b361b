"""Issue 15: a server refuses a database it cannot use — corrupt, truncated, garbage, read-only — with a
message and a non-zero exit, never a traceback and a process that stays up without listening; and a
second server on the same SQLite file refuses, naming the first (its own workers may share the file)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import anyio
import pytest
from aiohttp import web

from orchestrator.api.app import create_app
from orchestrator.errors import StoreError
from orchestrator.store.sqlite import SqliteStore
from tests.conftest import make_settings
from tests.serverproc import ROOT, clean_env, server


def serve(db: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "orchestrator", "serve", "--db", str(db), "--port", "0", "--workers", "0"]
    cmd += ["--no-demo", "--api-key", "k"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=clean_env())


async def _fill(path: Path) -> None:
    store = SqliteStore(str(path))
    await store.open()
    for i in range(40):
        await store.workflows.create_workflow(name=f"w{i}" * 50, description="d" * 500, project_id=None)
    await store.close()


def good_database(path: Path) -> bytes:
    anyio.run(_fill, path)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(str(path) + suffix):
            os.remove(str(path) + suffix)
    return path.read_bytes()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "corrupt-middle"])
def test_a_damaged_database_is_refused_with_a_message(tmp_path: Path, damage: str) -> None:
    data = good_database(tmp_path / "good.db")
    db = tmp_path / "bad.db"
    if damage == "garbage":
        db.write_bytes(os.urandom(len(data)))
    elif damage == "truncated":
        db.write_bytes(data[: len(data) // 2])
    else:
        middle = len(data) // 2
        db.write_bytes(data[:middle] + b"\x5a" * 8192 + data[middle + 8192 :])
    done = serve(db)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "damaged" in done.stderr and "backup" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_read_only_database_is_refused_with_a_message(tmp_path: Path) -> None:
    (tmp_path / "rw").mkdir()
    good_database(tmp_path / "rw" / "runs.db")
    ro = tmp_path / "ro"
    ro.mkdir()
    bound = subprocess.run(["mount", "--bind", str(tmp_path / "rw"), str(ro)], capture_output=True, check=False)
    if bound.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {bound.stderr.strip()!r}")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], check=True, capture_output=True)
        done = serve(ro / "runs.db")
    finally:
        subprocess.run(["umount", str(ro)], check=False)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "cannot be written" in done.stderr or "Read-only file system" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def lifecycle(app: web.Application) -> AsyncIterator[None]:
    """The app's store/runner context (its first cleanup context), stepped by hand."""
    return cast(AsyncIterator[None], app.cleanup_ctx[0](app))


async def test_a_second_server_on_one_sqlite_file_refuses_naming_the_first(tmp_path: Path) -> None:
    first = create_app(make_settings(tmp_path))
    runner_first = lifecycle(first)
    await runner_first.__anext__()  # the first server's lifecycle: store open and locked
    try:
        second = create_app(make_settings(tmp_path))
        with pytest.raises(StoreError) as err:
            await lifecycle(second).__anext__()
        assert err.value.code == "store_locked"
        assert f"pid {os.getpid()}" in err.value.message, err.value.message
        # Workers (and tools) open the same file without the lock.
        worker = SqliteStore(make_settings(tmp_path).db)
        await worker.open()
        await worker.close()
    finally:
        with pytest.raises(StopAsyncIteration):
            await runner_first.__anext__()
    third = create_app(make_settings(tmp_path))  # the first one stopped: the file is free again
    ctx = lifecycle(third)
    await ctx.__anext__()
    with pytest.raises(StopAsyncIteration):
        await ctx.__anext__()


def test_a_second_serve_process_exits_with_the_message(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    with server(db, api_key="k", extra=["--workers", "0"]) as proc:
        done = serve(db)
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert "Another orchestrator server is using" in done.stderr
        assert f"pid {proc.proc.pid}" in done.stderr, done.stderr
