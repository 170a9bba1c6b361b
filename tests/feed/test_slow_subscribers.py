"""Slow and stuck subscribers: bounded memory, `lagged` then an exact replay, and the run never waits."""

from __future__ import annotations

from typing import Any

import anyio

from tests.conftest import AUTH
from tests.feed.conftest import FeedFactory, RawSse, base_url, experiment_run, hub_of, result_ids, sse_messages


def children(events: list[dict[str, Any]], run_id: str) -> list[str]:
    return [e["child"]["id"] for e in events if e["type"] == "child.finished" and e["run_id"] == run_id]


async def read_until_finished(raw: RawSse, run_id: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    with anyio.fail_after(60):
        async for event in raw.events():
            got.append(event)
            if event["type"] == "run.finished" and event["run_id"] == run_id:
                break
    return got


async def test_a_lagging_all_runs_reader_gets_lagged_then_every_event(feed_api: FeedFactory) -> None:
    api = await feed_api(feed_buffer=4)  # the all-runs history holds 16 events
    raw = await RawSse.open(base_url(api), "/v1/events")
    with anyio.fail_after(30):
        async for event in raw.events():
            assert event["type"] == "snapshot"
            break
    run_id = await experiment_run(api, 600)
    await api.wait_run(run_id)  # the reader reads nothing meanwhile
    events = await read_until_finished(raw, run_id)
    await raw.close()
    assert "lagged" in [e["type"] for e in events]
    lagged = next(e for e in events if e["type"] == "lagged")
    assert lagged["reason"] and isinstance(lagged["after"], int) and lagged["gseq"] is None
    ids = children(events, run_id)
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(await result_ids(api, run_id))
    gseqs = [e["gseq"] for e in events if e["gseq"] is not None]
    assert gseqs == sorted(set(gseqs))


async def test_a_stalled_per_run_replay_is_still_exactly_once(feed_api: FeedFactory) -> None:
    api = await feed_api(feed_buffer=4)
    run_id = await experiment_run(api, 600)
    raw = await RawSse.open(base_url(api), f"/v1/workflows/experiments/runs/{run_id}/events?after=0")
    await api.wait_run(run_id)
    events = await read_until_finished(raw, run_id)
    await raw.close()
    ids = children(events, run_id)
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(await result_ids(api, run_id))


async def test_a_stuck_subscriber_neither_blocks_the_run_nor_holds_memory(feed_api: FeedFactory) -> None:
    api = await feed_api(feed_buffer=64)
    hub = hub_of(api)
    stuck_all = await RawSse.open(base_url(api), "/v1/events")
    # 5,000 events of ~1.4 KB: more than the kernel and transport buffers absorb for a non-reader.
    run_id = await experiment_run(api, 5000)
    path = f"/v1/workflows/experiments/runs/{run_id}"
    stuck_run = await RawSse.open(base_url(api), path + "/events")
    healthy: list[dict[str, Any]] = []

    async def follow() -> None:
        resp = await api.client.get(path + "/events", headers=AUTH)
        async for msg in sse_messages(resp):
            if msg.data is not None:
                healthy.append(msg.data)
        resp.close()

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            run = await api.wait_run(run_id)
    assert healthy[-1]["type"] == "run.finished" and healthy[-1]["run"]["counts"] == run["counts"]
    # Both stuck readers are still connected, fell behind, and hold at most a window of a shared ring.
    stuck = hub.subscriptions()
    assert sorted(str(s.run_id) for s in stuck) == sorted(["None", run_id])
    assert all(s.lagged and s.pending <= s.ring.size <= 4 * 64 for s in stuck)
    assert len(hub.encoded) <= hub.encoded.size
    await stuck_all.close()
    await stuck_run.close()
    with anyio.fail_after(30):  # their handlers notice the closed sockets and unsubscribe
        for _ in range(100_000):
            if not hub.subscriber_count:
                break
            await anyio.sleep(0.01)
