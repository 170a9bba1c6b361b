"""A real SQLite store in tmp_path, with a workflow to hang runs on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.store import Store
from orchestrator.store.sqlite import SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = SqliteStore(str(tmp_path / "store.db"))
    await s.open()
    yield s
    await s.close()


async def new_run(store: Store, children: int, kind: str = "eval", run_id: str | None = None) -> str:
    wf = await store.workflows.create_workflow(name="wf", description="", project_id=None)
    rid = run_id or f"{'exprun' if kind == 'experiment' else 'wfevalrun'}_{wf['id']}"
    run: dict[str, Any] = {
        "id": rid,
        "kind": kind,
        "workflow_id": wf["id"],
        "workflow_version_id": "draft_x",
        "workflow_name": "wf",
    }
    await store.runs.create_run(
        run, [{"block_id": "blk", "block_type": "extract", "handle_inputs": {"i": i}} for i in range(children)]
    )
    return rid
