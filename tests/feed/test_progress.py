"""Progress mode, `ts` on every event, frames encoded once and shared, bounded replay pages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import anyio
import pytest

from orchestrator.cli.client import Client
from orchestrator.feed.hub import Event, Hub
from orchestrator.feed.stream import Feed, Frame, by_bytes
from orchestrator.store import Store
from tests.conftest import API_KEY, AUTH
from tests.feed.conftest import FeedFactory, base_url, experiment_run
from tests.feed.test_feed_api import read_sse, read_ws, run_path


def ev(seq: int, type_: str = "child.finished", run_id: str = "r1", gseq: int | None = None) -> Event:
    body = {"run": {"status": "running", "c_completed": seq}, "child": {"id": f"c{seq}", "status": "completed"}}
    return {"gseq": gseq if gseq is not None else seq, "run_id": run_id, "seq": seq, "type": type_, "body": body}


def test_progress_readers_get_one_coalesced_entry_per_run_then_run_finished() -> None:
    hub = Hub(capacity=16)  # no event loop: each publish flushes at once
    with hub.subscribe(None, "progress") as everyone, hub.subscribe("r1", "progress") as one:
        hub.publish([ev(1), ev(2), ev(1, run_id="r2", gseq=3), ev(3, gseq=4)])
        hub.publish([ev(4, "run.finished", gseq=5)])
        got = everyone.read(10)
        assert [(e["run_id"], e["seq"], e["type"]) for e in got] == [
            ("r2", 1, "progress"),
            ("r1", 3, "progress"),
            ("r1", 4, "run.finished"),
        ]
        assert "child" not in got[0]["body"] and all(isinstance(e["ts"], float) for e in got)
        assert [e["seq"] for e in one.read(10)] == [3, 4]


async def test_progress_is_flushed_at_most_once_per_interval() -> None:
    hub = Hub(capacity=16, progress_interval_s=0.05)
    with hub.subscribe("r1", "progress") as sub:
        for i in range(1, 6):  # five commits in a row: one flush for all of them
            hub.publish([ev(i)])
        with anyio.fail_after(5):
            await sub.wait()
        assert [(e["seq"], e["type"]) for e in sub.read(10)] == [(5, "progress")]


class _Render:
    def __init__(self) -> None:
        self.calls = 0

    def run(self, row: Mapping[str, Any]) -> dict[str, Any]:
        self.calls += 1
        return {"id": row["id"], "done": row.get("c_completed")}

    def child(self, child: Mapping[str, Any]) -> dict[str, Any]:
        return {"id": child["id"]}


async def test_an_event_is_rendered_once_and_its_frames_shared_by_every_reader() -> None:
    hub = Hub(capacity=16)
    hub.rows.put("r1", {"id": "r1"})
    render = _Render()
    feed = Feed(cast(Store, None), hub, render)
    event = ev(7, gseq=70)
    hub.publish([event])
    first = await feed.frame(event, per_run=False)
    assert await feed.frame(event, per_run=False) is first
    per_run = await feed.frame(event, per_run=True)
    assert render.calls == 1, "one render per event, whatever the number of readers or scopes"
    assert per_run.data is first.data and per_run.ws is first.ws
    assert first.sse.startswith(b"id: 70\nevent: child.finished\ndata: {") and per_run.sse.startswith(b"id: 7\n")
    assert b'"ts":' in first.data


@pytest.mark.parametrize(("sizes", "limit", "expected"), [([3, 3, 3], 6, [2, 1]), ([10, 1], 4, [1, 1]), ([], 5, [])])
def test_batches_are_bounded_in_bytes(sizes: list[int], limit: int, expected: list[int]) -> None:
    frames = [Frame(i, "x", b"a" * n) for i, n in enumerate(sizes)]
    assert [len(b) for b in by_bytes(frames, limit)] == expected


def test_a_replay_page_is_bounded_and_found_without_scanning() -> None:
    hub = Hub(capacity=64)
    with hub.subscribe("r1"):
        hub.publish([ev(i) for i in range(1, 51)])
    page = hub.history_after(10, None, 5)
    assert page is not None and [e["gseq"] for e in page] == [11, 12, 13, 14, 15]
    page = hub.history_after(45, "r1", 100)
    assert page is not None and [e["seq"] for e in page] == [46, 47, 48, 49, 50]


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_progress_mode_sends_snapshot_progress_then_run_finished(feed_api: FeedFactory, transport: str) -> None:
    api = await feed_api()
    run_id = await experiment_run(api, 60, latency_ms=1)
    params = {"mode": "progress"}
    if transport == "sse":
        events = [m.data for m in await read_sse(api, run_path(run_id) + "/events", params=params) if m.data]
    else:
        events = await read_ws(api, run_path(run_id) + "/ws", params=params)
    types = [e["type"] for e in events]
    assert types[0] == "snapshot" and types[-1] == "run.finished"
    assert set(types[1:-1]) <= {"progress"}, "no per-child events"
    assert all("child" not in e for e in events)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs))
    assert all(isinstance(e["ts"], float) for e in events)
    run = await api.get(run_path(run_id), expect=200)
    assert events[-1]["run"]["counts"] == run["counts"]


async def test_every_live_and_replayed_event_carries_ts(feed_api: FeedFactory) -> None:
    api = await feed_api()
    run_id = await experiment_run(api, 20, latency_ms=1)
    await api.wait_run(run_id)
    replayed = await read_ws(api, run_path(run_id) + "/ws", params={"after": "0"})
    assert replayed and all(isinstance(e["ts"], float) and e["ts"] > 1e9 for e in replayed)


async def test_an_unknown_mode_is_refused(feed_api: FeedFactory) -> None:
    api = await feed_api()
    resp = await api.client.get("/v1/events", headers=AUTH, params={"mode": "fast"})
    assert resp.status == 422


async def test_client_run_events_in_progress_mode(feed_api: FeedFactory) -> None:
    api = await feed_api()
    run_id = await experiment_run(api, 30, latency_ms=1)
    async with Client(base_url(api), API_KEY) as client:
        events = [e async for e in client.run_events(run_id, mode="progress")]
    assert events[0]["type"] == "snapshot" and events[-1]["type"] == "run.finished"
    assert {e["type"] for e in events[1:-1]} <= {"progress"}
