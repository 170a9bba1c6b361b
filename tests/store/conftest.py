"""The store contract's fixtures: every test under tests/store/contract runs against every store.

`STORES` names the implementations and how to open a fresh, empty one; a new store joins the suite by
adding itself here. Each store is opened with a recording broker, so tests can check what was published.
PostgreSQL gets a fresh database of the session's throwaway cluster (tests/pg_cluster.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from orchestrator.store import Store
from orchestrator.store.postgres import PostgresStore
from orchestrator.store.records import FeedEvent
from orchestrator.store.sqlite import SqliteStore


class RecordingBroker:
    """Keeps every published event, in publication order."""

    def __init__(self) -> None:
        self.events: list[FeedEvent] = []

    def publish(self, events: Sequence[FeedEvent]) -> None:
        self.events.extend(events)


async def _sqlite(request: pytest.FixtureRequest, tmp_path: Path, broker: RecordingBroker) -> Store:
    return SqliteStore(str(tmp_path / "store.db"), broker)


async def _postgres(request: pytest.FixtureRequest, tmp_path: Path, broker: RecordingBroker) -> Store:
    return PostgresStore(request.getfixturevalue("pg_url"), broker)


STORES: dict[str, Callable[[pytest.FixtureRequest, Path, RecordingBroker], Awaitable[Store]]] = {
    "sqlite": _sqlite,
    "postgres": _postgres,
}


@pytest.fixture
def broker() -> RecordingBroker:
    return RecordingBroker()


@pytest.fixture(params=sorted(STORES))
async def store(request: pytest.FixtureRequest, tmp_path: Path, broker: RecordingBroker) -> AsyncIterator[Store]:
    s = await STORES[request.param](request, tmp_path, broker)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def new_run(
    store: Store, children: int, kind: str = "eval", run_id: str | None = None, workflow_id: str | None = None
) -> str:
    if workflow_id is None:
        wf = await store.workflows.create_workflow(name="wf", description="", project_id=None)
        workflow_id = wf["id"]
    rid = run_id or f"{'exprun' if kind == 'experiment' else 'wfevalrun'}_{workflow_id}"
    run: dict[str, Any] = {
        "id": rid,
        "kind": kind,
        "workflow_id": workflow_id,
        "workflow_version_id": "draft_x",
        "workflow_name": "wf",
    }
    await store.runs.create_run(
        run, [{"block_id": "blk", "block_type": "extract", "handle_inputs": {"i": i}} for i in range(children)]
    )
    return rid
