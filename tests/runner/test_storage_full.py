"""Issue 15: a full disk is first-class. On a real full filesystem (a small tmpfs) writes answer 507
`storage_full` with the envelope, a handful of log lines (not a traceback per write), /health says so, the
run pauses instead of failing or sticking, and goes on to the end by itself once space is freed."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from orchestrator.api.keys import SERVICES
from orchestrator.runner.scheduler import Scheduler
from tests.api.test_support import assert_envelope, raw
from tests.conftest import AppFactory, invoice_text


@contextlib.contextmanager
def small_filesystem(where: Path, megabytes: int) -> Iterator[Path]:
    """A tmpfs of `megabytes` at `where` (root only: skipped elsewhere)."""
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(where)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path: Path) -> None:
    """Write `path` until the filesystem has no byte left."""
    with open(path, "wb", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise


@pytest.mark.stores("sqlite")
async def test_a_full_disk_pauses_runs_which_finish_once_space_is_back(
    make_api: AppFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with small_filesystem(tmp_path / "disk", 24) as disk:
        api = await make_api(db=str(disk / "runs.db"))
        wf, block = await api.workflow_with_extract({"simulation": {"latency_ms": 20}})
        docs = []
        for i in range(12):
            doc = await api.upload(invoice_text(number=f"INV-{i}"), f"inv{i}.txt")
            docs.append({"handle_inputs": {"input-file-document": {"type": "file", "document": doc}}})
        exp = await api.post(
            "/v1/workflows/experiments",
            {"workflow_id": wf, "block_id": block, "n_consensus": 3, "documents": docs},
            expect=201,
        )
        run = await api.post("/v1/workflows/experiments/runs", {"experiment_id": exp["id"]}, expect=201)
        caplog.set_level(logging.WARNING)
        filler = disk / "filler"
        await anyio.to_thread.run_sync(fill, filler)

        r = await raw(api, "POST", "/v1/workflows", json={"name": "no room"})
        detail = assert_envelope(r, 507, "storage_full")
        assert "full" in detail["message"]
        health = await raw(api, "GET", "/v1/health", auth=False)
        assert health.status == 200 and health.body["store"] == "full"
        assert api.client.app is not None
        scheduler = api.client.app[SERVICES].scheduler
        assert isinstance(scheduler, Scheduler)
        for _ in range(1500):  # up to 30 s: the run's next commit or claim meets the full disk
            if scheduler.paused:
                break
            await anyio.sleep(0.02)
        assert scheduler.paused
        current = await api.get(f"/v1/workflows/experiments/runs/{run['id']}", expect=200)
        assert current["lifecycle"]["status"] in ("pending", "queued", "running"), "paused, not failed"

        os.remove(filler)
        finished = await api.wait_run(run["id"], within_s=60)
        assert finished["lifecycle"]["status"] == "completed"
        results = await api.get("/v1/workflows/experiments/results", params={"run_id": run["id"]}, expect=200)
        assert [r["lifecycle"]["status"] for r in results["data"]] == ["completed"] * 12
        health = await raw(api, "GET", "/v1/health", auth=False)
        assert health.body["store"] == "ok"
        await api.post("/v1/workflows", {"name": "room again"}, expect=201)
        full_lines = [r for r in caplog.records if "storage full" in r.getMessage()]
        assert 1 <= len(full_lines) <= 4, [r.getMessage() for r in full_lines]  # once per 30 s per store
        assert not [r for r in caplog.records if r.exc_info], "no tracebacks for a full disk"
        await api.client.close()
