"""Batched every-event feeds (`?batch=1`): one message per commit slice, encoded once and shared by every
subscriber in step; flattened, exactly the events of the unbatched feed, in order, resumable by id."""

from __future__ import annotations

from typing import Any

import anyio
import orjson
import pytest

from orchestrator.feed.hub import Hub
from tests.conftest import AUTH, Api
from tests.feed.conftest import FeedFactory, experiment_run, sse_messages
from tests.feed.test_progress import ev


def test_readers_in_step_read_whole_slices() -> None:
    hub = Hub(capacity=64)
    with hub.subscribe(None) as a, hub.subscribe(None) as b:
        hub.publish([ev(1), ev(2), ev(3)])
        hub.publish([ev(4), ev(5)])
        assert [e["seq"] for e in a.read_slices(4)] == [1, 2, 3], "stops where a slice ends"
        assert [e["seq"] for e in a.read_slices(4)] == [4, 5]
        assert [e["seq"] for e in b.read_slices(2)] == [1, 2], "a slice longer than the limit is split"
        assert [e["seq"] for e in b.read_slices(10)] == [3, 4, 5]


async def _sse(api: Api, path: str, headers: dict[str, str] | None = None) -> list[tuple[str, int | None, Any]]:
    """(event type, id, data) of every message until the stream ends."""
    resp = await api.client.get(path, headers={**AUTH, **(headers or {})})
    got: list[tuple[str, int | None, Any]] = []
    with anyio.fail_after(60):
        async for msg in sse_messages(resp):
            if msg.data is not None:
                got.append((msg.event or "", msg.id, msg.data))
    resp.close()
    return got


async def _ws(api: Api, path: str) -> list[Any]:
    ws = await api.client.ws_connect(path, headers=AUTH)
    got = [orjson.loads(m.data) async for m in ws]
    await ws.close()
    return got


def _flatten(messages: list[Any]) -> list[dict[str, Any]]:
    return [e for m in messages for e in (m if isinstance(m, list) else [m])]


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_a_batched_feed_is_the_same_events_in_fewer_messages(feed_api: FeedFactory, transport: str) -> None:
    api = await feed_api()
    run_id = await experiment_run(api, 60, latency_ms=1)
    path = f"/v1/workflows/experiments/runs/{run_id}"
    await api.wait_run(run_id)
    if transport == "sse":
        plain = [d for _, _, d in await _sse(api, path + "/events?after=0")]
        batched_msgs = await _sse(api, path + "/events?after=0&batch=1")
        batched = [d for _, _, d in batched_msgs]
        for kind, ident, data in batched_msgs:
            if kind == "batch":
                assert isinstance(data, list) and ident == data[-1]["seq"], "a batch's id is its last seq"
    else:
        plain = await _ws(api, path + "/ws?after=0")
        batched = await _ws(api, path + "/ws?after=0&batch=1")
    assert _flatten(batched) == plain
    assert len(batched) < len(plain), "fewer messages than events"
    seqs = [e["seq"] for e in _flatten(batched)]
    assert seqs == sorted(set(seqs)) and _flatten(batched)[-1]["type"] == "run.finished"


async def test_resuming_from_a_batch_id_gives_exactly_what_followed(feed_api: FeedFactory) -> None:
    api = await feed_api()
    run_id = await experiment_run(api, 40, latency_ms=1)
    path = f"/v1/workflows/experiments/runs/{run_id}/events?batch=1"
    await api.wait_run(run_id)
    whole = await _sse(api, path + "&after=0")
    everything = _flatten([d for _, _, d in whole])
    cut = next(ident for kind, ident, _ in whole if kind == "batch" and ident and ident > 5)
    resumed = _flatten([d for _, _, d in await _sse(api, path, {"Last-Event-ID": str(cut)})])
    assert resumed == [e for e in everything if e["seq"] > cut]


async def test_subscribers_in_step_share_one_encoded_batch(feed_api: FeedFactory) -> None:
    """Live: every subscriber of the all-runs feed gets the very same bytes for each slice (one encoding)."""
    api = await feed_api()
    frames: list[list[bytes]] = [[], []]

    async def follow(i: int, started: anyio.Event) -> None:
        resp = await api.client.get("/v1/events?batch=1", headers=AUTH)
        started.set()
        raw = b""
        with anyio.fail_after(60):
            async for chunk in resp.content.iter_any():
                raw += chunk
                *messages, raw = raw.split(b"\n\n")
                frames[i] += [m for m in messages if b"event: batch" in m]
                if any(b'"run.finished"' in m for m in messages):
                    break
        resp.close()

    async with anyio.create_task_group() as tg:
        for i in range(2):
            started = anyio.Event()
            tg.start_soon(follow, i, started)
            await started.wait()
        await experiment_run(api, 30, latency_ms=2)
    assert frames[0] and frames[0] == frames[1]
    events = _flatten([orjson.loads(m.split(b"data: ", 1)[1]) for m in frames[0]])
    assert [e["type"] for e in events].count("child.finished") == 30
