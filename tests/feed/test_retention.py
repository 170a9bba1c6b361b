"""Event retention: a finished run's events are pruned to its last one after the retention period; a
feed then still ends that run with `run.finished`, and an older cursor gets `reset` and a snapshot."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anyio

from orchestrator.api.keys import SERVICES
from orchestrator.ids import now
from orchestrator.runner.maintenance import prune_events
from tests.conftest import AUTH, Api
from tests.feed.conftest import FeedFactory, app_of, experiment_run, sse_messages


async def _sse(api: Api, run_id: str, after: int | None) -> list[dict[str, Any]]:
    headers = {**AUTH, **({"Last-Event-ID": str(after)} if after is not None else {})}
    resp = await api.client.get(f"/v1/workflows/experiments/runs/{run_id}/events", headers=headers)
    got = []
    with anyio.fail_after(30):
        async for msg in sse_messages(resp):
            if msg.data is not None:
                got.append(msg.data)
    resp.close()
    return got


async def test_retention_prunes_finished_runs_only_after_the_period(feed_api: FeedFactory) -> None:
    api = await feed_api()
    done = await experiment_run(api, 6)
    await api.wait_run(done)
    store = app_of(api)[SERVICES].store
    before = await store.events.after(done, 0, 100)
    assert len(before) > 6
    assert await prune_events(store, 30) == 0, "finished just now: kept"
    assert await prune_events(store, 0, at=now() + timedelta(days=365)) == 0, "0 days means keep everything"
    removed = await prune_events(store, 30, at=now() + timedelta(days=31))
    assert removed == len(before) - 1
    kept = await store.events.after(done, 0, 100)
    assert [e["type"] for e in kept] == ["run.finished"] and kept[0]["seq"] == before[-1]["seq"]

    fresh = await _sse(api, done, None)
    assert [e["type"] for e in fresh] == ["snapshot", "run.finished"]
    assert fresh[-1]["run"]["lifecycle"]["status"] == "completed"
    old_cursor = await _sse(api, done, 2)
    assert [e["type"] for e in old_cursor] == ["reset", "snapshot", "run.finished"]
