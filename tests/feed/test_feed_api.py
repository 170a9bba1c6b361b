"""The feed routes in-process: snapshot first, exact resume, reset, terminal runs, all-runs feeds, errors."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio
import pytest

from orchestrator.api.keys import SERVICES
from tests.conftest import API_KEY, AUTH, INVOICE_SCHEMA, Api
from tests.feed.conftest import FeedFactory, Sse, app_of, experiment_run, result_ids, sse_messages

EVENT_KEYS = {"seq", "gseq", "run_id", "type", "run"}


def run_path(run_id: str) -> str:
    return f"/v1/workflows/experiments/runs/{run_id}"


async def read_sse(
    api: Api, path: str, *, headers: dict[str, str] | None = None, params: dict[str, str] | None = None, stop: int = 0
) -> list[Sse]:
    """Every data message until the server ends the stream (or `stop` child.finished were read)."""
    got: list[Sse] = []
    resp = await api.client.get(path, headers={**AUTH, **(headers or {})}, params=params)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    with anyio.fail_after(60):
        async for msg in sse_messages(resp):
            if msg.data is None:
                continue
            got.append(msg)
            if stop and sum(m.event == "child.finished" for m in got) >= stop:
                break
    resp.close()
    return got


async def read_ws(
    api: Api,
    path: str,
    *,
    params: dict[str, str] | None = None,
    stop: int = 0,
    until: Callable[[dict[str, Any]], bool] | None = None,
) -> list[dict[str, Any]]:
    """Every message until the server closes (or `stop` child.finished were read, or `until` holds)."""
    got: list[dict[str, Any]] = []
    ws = await api.client.ws_connect(path, headers=AUTH, params=params)
    with anyio.fail_after(60):
        async for msg in ws:
            assert msg.type == aiohttp.WSMsgType.TEXT
            got.append(msg.json())
            if stop and sum(e["type"] == "child.finished" for e in got) >= stop:
                break
            if until is not None and until(got[-1]):
                break
    await ws.close()
    return got


async def read_events(
    api: Api, path: str, transport: str, *, after: int | None = None, stop: int = 0
) -> list[dict[str, Any]]:
    if transport == "sse":
        headers = {"Last-Event-ID": str(after)} if after is not None else None
        msgs = await read_sse(api, path + "/events", headers=headers, stop=stop)
        for m in msgs:
            assert m.data is not None and m.event == m.data["type"]
            assert m.id == m.data["seq"]
        return [m.data for m in msgs if m.data is not None]
    params = {"after": str(after)} if after is not None else None
    return await read_ws(api, path + "/ws", params=params, stop=stop)


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_snapshot_first_then_live_until_run_finished(feed_api: FeedFactory, transport: str) -> None:
    api = await feed_api()
    run_id = await experiment_run(api, 40, latency_ms=2)
    events = await read_events(api, run_path(run_id), transport)
    assert events[0]["type"] == "snapshot" and events[0]["run"]["id"] == run_id
    assert events[-1]["type"] == "run.finished"
    assert all(EVENT_KEYS <= e.keys() and e["run_id"] == run_id for e in events)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)), "seq strictly increases"
    finished = [e for e in events if e["type"] == "child.finished"]
    assert all(e["child"]["id"] and e["child"]["lifecycle"]["status"] for e in finished)
    run = await api.get(run_path(run_id), expect=200)
    last = events[-1]["run"]
    assert last["counts"] == run["counts"] and last["lifecycle"] == run["lifecycle"] and last["score"] == run["score"]
    # The snapshot plus the child events account for every child.
    snap_done = events[0]["run"]["counts"]["lifecycle_counts"]
    assert snap_done["completed"] + snap_done["error"] + len(finished) == 40


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_resume_after_a_disconnect_is_exactly_once(feed_api: FeedFactory, transport: str) -> None:
    api = await feed_api()
    run_id = await experiment_run(api, 150, latency_ms=1)
    first = await read_events(api, run_path(run_id), transport, after=0, stop=25)
    # after=0 replays from the start (no snapshot); consecutive progress events may be coalesced, so
    # seq can skip a progress event but never a child.finished (checked below).
    assert first[0]["type"] != "snapshot" and first[0]["seq"] >= 1
    seqs = [e["seq"] for e in first]
    assert seqs == sorted(set(seqs))
    rest = await read_events(api, run_path(run_id), transport, after=first[-1]["seq"])
    assert rest[0]["seq"] > first[-1]["seq"]
    ids = [e["child"]["id"] for e in first + rest if e["type"] == "child.finished"]
    assert len(ids) == len(set(ids)), "no duplicate"
    assert sorted(ids) == sorted(await result_ids(api, run_id)), "no gap"


async def test_a_finished_run_gives_snapshot_then_run_finished(feed_api: FeedFactory) -> None:
    api = await feed_api()
    run_id = await experiment_run(api, 5)
    run = await api.wait_run(run_id)
    events = await read_events(api, run_path(run_id), "sse")
    assert [e["type"] for e in events] == ["snapshot", "run.finished"]
    assert events[1]["run"]["counts"] == run["counts"] and events[0]["seq"] == events[1]["seq"]
    last = events[1]["seq"]
    # An EventSource reconnecting after the end gets 204, which makes browsers stop reconnecting.
    resp = await api.client.get(run_path(run_id) + "/events", headers={**AUTH, "Last-Event-ID": str(last)})
    assert resp.status == 204
    ws_events = await read_events(api, run_path(run_id), "ws", after=last)
    assert [e["type"] for e in ws_events] == ["run.finished"]
    tail = await read_events(api, run_path(run_id), "ws", after=last - 2)
    assert [e["seq"] for e in tail] == [last - 1, last] and tail[-1]["type"] == "run.finished"


@pytest.mark.parametrize(("cursor", "why"), [(10**6, "newer"), (-3, "older")])
async def test_an_out_of_range_cursor_resets_to_a_snapshot(feed_api: FeedFactory, cursor: int, why: str) -> None:
    api = await feed_api()
    run_id = await experiment_run(api, 3)
    await api.wait_run(run_id)
    events = await read_events(api, run_path(run_id), "sse", after=cursor)
    assert [e["type"] for e in events] == ["reset", "snapshot", "run.finished"]
    assert why in events[0]["reason"] and events[0]["seq"] is None


async def test_a_cursor_older_than_the_kept_events_resets(feed_api: FeedFactory) -> None:
    api = await feed_api()
    run_id = await experiment_run(api, 10)
    await api.wait_run(run_id)
    store = app_of(api)[SERVICES].store
    events = await store.events.after(run_id, 0, 100)
    await store.events.delete_before(events[5]["gseq"])  # prune the first five
    for transport in ("sse", "ws"):
        got = await read_events(api, run_path(run_id), transport, after=2)
        assert [e["type"] for e in got][:2] == ["reset", "snapshot"], transport
    kept = await read_events(api, run_path(run_id), "ws", after=5)
    assert kept[0]["seq"] == 6 and kept[0]["type"] != "reset"
    all_runs = await read_ws(api, "/v1/ws", params={"after": "1"}, until=lambda e: e["type"] == "snapshot")
    assert [e["type"] for e in all_runs] == ["reset", "snapshot"]


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_all_runs_feed_snapshot_then_every_run(feed_api: FeedFactory, transport: str) -> None:
    api = await feed_api()
    earlier = await experiment_run(api, 3)
    await api.wait_run(earlier)
    got: list[dict[str, Any]] = []
    snapshot_seen = anyio.Event()

    async def follow() -> None:
        if transport == "sse":
            resp = await api.client.get("/v1/events", headers=AUTH)
            async for msg in sse_messages(resp):
                if msg.data is not None:
                    assert msg.id == msg.data["gseq"]
                    got.append(msg.data)
                    snapshot_seen.set()
                    if msg.data["type"] == "run.finished" and msg.data["run_id"] != earlier:
                        resp.close()
                        return
        else:
            ws = await api.client.ws_connect("/v1/ws", headers=AUTH)
            async for ws_msg in ws:
                got.append(ws_msg.json())
                snapshot_seen.set()
                if got[-1]["type"] == "run.finished" and got[-1]["run_id"] != earlier:
                    await ws.close()
                    return

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            await snapshot_seen.wait()  # the snapshot arrives before the new run is created
            later = await experiment_run(api, 20)
    snap = got[0]
    assert snap["type"] == "snapshot" and earlier in [r["id"] for r in snap["runs"]]
    gseqs = [e["gseq"] for e in got[1:]]
    assert gseqs == sorted(set(gseqs)) and gseqs[0] == snap["gseq"] + 1
    assert {e["run_id"] for e in got[1:]} == {later}
    assert sum(e["type"] == "child.finished" for e in got) == 20
    # Resume the all-runs feed from the middle: exactly the rest.
    middle = got[len(got) // 2]["gseq"]
    again = await read_ws(api, "/v1/ws", params={"after": str(middle)}, until=lambda e: e["type"] == "run.finished")
    assert again[0]["gseq"] > middle

    def children(events: list[dict[str, Any]]) -> list[str]:
        return [e["child"]["id"] for e in events if e["type"] == "child.finished"]

    assert children(again) == children([e for e in got[1:] if e["gseq"] > middle])


async def test_shutdown_ends_every_stream_with_a_last_event(feed_api: FeedFactory) -> None:
    api = await feed_api()
    run_id = await experiment_run(api, 20, latency_ms=200)
    resp = await api.client.get(run_path(run_id) + "/events", headers=AUTH)
    ws = await api.client.ws_connect("/v1/ws", headers=AUTH)
    first = await ws.receive_json()
    assert first["type"] == "snapshot"
    sse_seen: list[Sse] = []
    ws_seen: list[dict[str, Any]] = []
    sse_started = anyio.Event()

    async def read_sse_stream() -> None:
        async for msg in sse_messages(resp):
            if msg.data is not None:
                sse_seen.append(msg)
                sse_started.set()

    async def read_ws_stream() -> None:
        async for msg in ws:
            ws_seen.append(msg.json())

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read_sse_stream)
            tg.start_soon(read_ws_stream)
            await sse_started.wait()
            await api.client.server.close()
    assert sse_seen[-1].data is not None and sse_seen[-1].data["type"] == "shutdown"
    assert ws_seen[-1]["type"] == "shutdown" and ws.close_code == 1001


PING_S = 0.05
CLOCK_SLACK_S = 0.01  # an event's `ts` and a ping's arrival are both read from this machine's wall clock


@dataclass
class Received:
    """What a feed client got, in order: events (their JSON) and keep-alives (`: ping` / a WS ping)."""

    t0: float  # time.monotonic() just before the request went out
    items: list[tuple[float, float, dict[str, Any] | None]] = field(default_factory=list)  # (mono, wall, event)
    pings: int = 0
    two_pings: anyio.Event = field(default_factory=anyio.Event)

    def add(self, event: dict[str, Any] | None) -> None:
        """An event, or a keep-alive (None), as it arrives."""
        self.items.append((time.monotonic(), time.time(), event))
        if event is None:
            self.pings += 1
            if self.pings == 2:
                self.two_pings.set()

    @property
    def events(self) -> list[dict[str, Any]]:
        return [e for _, _, e in self.items if e is not None]

    def assert_pings_only_when_idle(self) -> int:
        """Every keep-alive follows at least PING_S of silence: the k-th comes no sooner than k * PING_S
        after the request, and none sooner than PING_S after the event before it was published (its
        `ts`), so none is sent while events flow. Returns how many there were."""
        last_ts: float | None = None
        pings = 0
        for mono, wall, event in self.items:
            if event is not None:
                last_ts = event["ts"]
                continue
            pings += 1
            assert mono - self.t0 >= pings * PING_S, f"ping {pings} after {mono - self.t0:.3f} s"
            if last_ts is not None:
                assert wall - last_ts >= PING_S - CLOCK_SLACK_S, f"a ping {wall - last_ts:.3f} s after an event"
        return pings


async def sse_feed(api: Api, run_id: str, got: Received) -> None:
    resp = await api.client.get(run_path(run_id) + "/events", headers=AUTH)
    assert resp.status == 200
    async for msg in sse_messages(resp):
        if msg.comment is not None:
            assert msg.comment == "ping"
        got.add(None if msg.comment is not None else msg.data)
    resp.close()


async def ws_feed(api: Api, run_id: str, got: Received) -> None:
    ws = await api.client.ws_connect(run_path(run_id) + "/ws", headers=AUTH, autoping=False)
    while (msg := await ws.receive()).type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.PING):
        got.add(msg.json() if msg.type == aiohttp.WSMsgType.TEXT else None)
    assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 1000, (msg, ws.close_code)
    await ws.close()


async def test_keepalives_are_sent_when_idle_and_only_then(feed_api: FeedFactory) -> None:
    """SSE (`: ping` comment) and WebSocket (protocol ping) alike: an idle stream gets a keep-alive every
    feed_ping_s, and a stream whose events flow gets none within feed_ping_s of an event."""
    api = await feed_api(feed_ping_s=PING_S)
    idle = await experiment_run(api, 2, latency_ms=60_000)  # nothing finishes until it is cancelled
    busy = await jittered_run(api, 40, jitter_ms=800)  # children finish all along, at uneven intervals
    feeds = [(sse_feed, idle), (ws_feed, idle), (sse_feed, busy), (ws_feed, busy)]
    got = [Received(time.monotonic()) for _ in feeds]
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for (read, run_id), received in zip(feeds, got, strict=True):
                tg.start_soon(read, api, run_id, received)
            with anyio.fail_after(20):  # two pings take 2 * PING_S; fail fast when none ever comes
                await got[0].two_pings.wait()
                await got[1].two_pings.wait()
            await api.post(run_path(idle) + "/cancel", expect=200)
    for received, (_, run_id) in zip(got, feeds, strict=True):
        events = received.events
        assert events[0]["type"] == "snapshot" and events[-1]["type"] == "run.finished"
        pings = received.assert_pings_only_when_idle()
        if run_id == idle:
            assert pings >= 2 and events[-1]["run"]["lifecycle"]["status"] == "cancelled"
        else:
            finished = [e for e in events if e["type"] == "child.finished"]
            assert len(finished) + snapshot_finished(events[0]) == 40
            assert events[-1]["run"]["lifecycle"]["status"] == "completed"


async def jittered_run(api: Api, n: int, *, jitter_ms: float) -> str:
    """A running experiment over n JSON documents whose passes take 0..jitter_ms each."""
    wf = await api.post("/v1/workflows", {"name": "wf", "project_id": "p"}, expect=201)
    config = {"model": "simulated", "json_schema": INVOICE_SCHEMA, "simulation": {"jitter_ms": jitter_ms}}
    block = await api.post(
        "/v1/workflows/blocks",
        {"workflow_id": wf["id"], "type": "extract", "label": "Extract", "config": config},
        expect=201,
    )
    docs = [{"handle_inputs": {"input-json-0": {"type": "json", "data": {"doc": i}}}} for i in range(n)]
    exp = await api.post(
        "/v1/workflows/experiments",
        {"workflow_id": wf["id"], "block_id": block["id"], "name": "jitter", "n_consensus": 3, "documents": docs},
        expect=201,
    )
    run = await api.post("/v1/workflows/experiments/runs", {"experiment_id": exp["id"]}, expect=201)
    return str(run["id"])


def snapshot_finished(snapshot: dict[str, Any]) -> int:
    counts = snapshot["run"]["counts"]["lifecycle_counts"]
    return int(counts["completed"] + counts["error"])


@pytest.mark.parametrize(
    ("path", "headers", "params", "status", "code"),
    [
        ("/v1/events", {}, {}, 401, "invalid_api_key"),
        ("/v1/events", {}, {"token": "nope"}, 401, "invalid_api_key"),
        ("/v1/workflows/evals/runs/wfevalrun_missing/events", AUTH, {}, 404, "not_found"),
        ("/v1/workflows/experiments/runs/exprun_missing/ws", AUTH, {}, 404, "not_found"),
        ("/v1/events", AUTH, {"after": "abc"}, 422, "unprocessable_entity"),
    ],
)
async def test_feed_errors_use_the_envelope(
    feed_api: FeedFactory, path: str, headers: dict[str, str], params: dict[str, str], status: int, code: str
) -> None:
    api = await feed_api()
    resp = await api.client.get(path, headers=headers, params=params)
    body = await resp.json()
    assert resp.status == status and set(body["detail"]) == {"code", "message", "details"}
    if status != 422:
        assert body["detail"]["code"] == code


async def test_a_query_token_never_authenticates_an_event_source(feed_api: FeedFactory) -> None:
    """Keys in URLs end up in logs and histories (issue 15): the page's EventSource uses its cookie."""
    api = await feed_api()
    run_id = await experiment_run(api, 2)
    await api.wait_run(run_id)
    resp = await api.client.get(run_path(run_id) + "/events", params={"token": API_KEY})
    assert resp.status == 401


async def test_an_eval_run_is_not_served_under_experiments(feed_api: FeedFactory) -> None:
    api = await feed_api()
    run_id = await experiment_run(api, 1)
    resp = await api.client.get(f"/v1/workflows/evals/runs/{run_id}/events", headers=AUTH)
    assert resp.status == 404
