"""Against the real server process: resume across a restart, and hundreds of subscribers on a big run."""

from __future__ import annotations

from typing import Any

import aiohttp
import anyio
import orjson
import pytest

from orchestrator.cli.client import Client
from tests.conftest import API_KEY, AUTH
from tests.feed.conftest import ServerProcess, create_experiment_run, finished_child_ids, sse_messages

pytestmark = pytest.mark.e2e


async def start_run(client: Client, n: int, latency_ms: float = 0.0) -> str:
    async def post(path: str, body: dict[str, Any]) -> Any:
        return await client.request("POST", path, json=body)

    return await create_experiment_run(post, n, latency_ms=latency_ms)


async def results(client: Client, run_id: str) -> list[str]:
    async def get(path: str, params: dict[str, str]) -> Any:
        return await client.request("GET", path, params=params)

    return await finished_child_ids(get, run_id)


async def test_last_event_id_resumes_exactly_once_after_a_server_restart(server: ServerProcess) -> None:
    base = await server.start()
    async with Client(base, API_KEY) as client:
        run_id = await start_run(client, 300, latency_ms=20)
        url = base + client.run_path(run_id) + "/events"
        first: list[dict[str, Any]] = []
        async with aiohttp.ClientSession(headers=AUTH) as http, http.get(url, params={"after": "0"}) as resp:
            with anyio.fail_after(60):
                async for msg in sse_messages(resp):
                    if msg.data is not None:
                        assert msg.id == msg.data["seq"]
                        first.append(msg.data)
                        if sum(e["type"] == "child.finished" for e in first) == 30:
                            break
    assert await server.stop() == 0
    base = await server.start()  # same port, same database: the run resumes
    rest: list[dict[str, Any]] = []
    headers = {**AUTH, "Last-Event-ID": str(first[-1]["seq"])}
    async with aiohttp.ClientSession(headers=headers) as http, http.get(url) as resp:
        with anyio.fail_after(120):
            async for msg in sse_messages(resp):
                if msg.data is not None:
                    rest.append(msg.data)
    assert rest[0]["seq"] == first[-1]["seq"] + 1 and rest[-1]["type"] == "run.finished"
    ids = [e["child"]["id"] for e in first + rest if e["type"] == "child.finished"]
    async with Client(base, API_KEY) as client:
        assert rest[-1]["run"]["counts"] == (await client.get_run(run_id))["counts"]
        assert len(ids) == len(set(ids)) and sorted(ids) == sorted(await results(client, run_id))
    assert await server.stop() == 0


async def test_the_client_follows_a_run_through_a_server_restart(server: ServerProcess) -> None:
    base = await server.start()
    types: list[str] = []
    ids: list[str] = []
    async with Client(base, API_KEY, backoff_s=0.05, retries=30) as client:
        run_id = await start_run(client, 300, latency_ms=20)

        async def restart() -> None:
            await server.stop()
            await server.start()

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                async for event in client.run_events(run_id, after=0, transport="ws"):
                    types.append(event["type"])
                    if event["type"] == "child.finished":
                        ids.append(event["child"]["id"])
                        if len(ids) == 30:
                            tg.start_soon(restart)
        assert len(ids) == len(set(ids)) and sorted(ids) == sorted(await results(client, run_id))
    assert types[-1] == "run.finished"
    assert "shutdown" in types  # the open stream was told, then the client reconnected by itself
    assert await server.stop() == 0


async def _sse_subscriber(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """Read a per-run SSE stream cheaply: ids and types from the framing, JSON only for the last event."""
    async with http.get(url) as resp:
        assert resp.status == 200
        pending, seqs, children, snapshot = b"", [], 0, None
        async for chunk in resp.content.iter_any():
            pending += chunk
            *messages, pending = pending.split(b"\n\n")
            for message in messages:
                if not message.startswith(b"id: "):
                    continue  # retry hint, keep-alive, control events
                ident, event, data = message.split(b"\n", 2)
                seqs.append(int(ident[4:]))
                if event == b"event: child.finished":
                    children += 1
                elif event == b"event: snapshot":
                    snapshot = orjson.loads(data[6:])
                elif event == b"event: run.finished":
                    return {"seqs": seqs, "children": children, "snapshot": snapshot, "last": orjson.loads(data[6:])}
    raise AssertionError("the stream ended without run.finished")


async def _ws_subscriber(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.ws_connect(url, compress=0) as ws:
        seqs, children, snapshot = [], 0, None
        async for msg in ws:
            event = orjson.loads(msg.data)
            if event["seq"] is None:
                continue  # a control event (`lagged` when this process falls behind): a replay follows
            seqs.append(event["seq"])
            if event["type"] == "child.finished":
                children += 1
            elif event["type"] == "snapshot":
                snapshot = event
            elif event["type"] == "run.finished":
                return {"seqs": seqs, "children": children, "snapshot": snapshot, "last": event}
        raise AssertionError(f"the stream ended without run.finished: {ws.close_code} {ws.exception()!r}")


@pytest.mark.slow
async def test_two_hundred_websocket_and_two_hundred_sse_subscribers_on_a_big_run(server: ServerProcess) -> None:
    n, each = 10_000, 200
    base = await server.start()
    async with Client(base, API_KEY, timeout=300) as client:
        run_id = await start_run(client, n)
        path = base + client.run_path(run_id)
        outcomes: list[dict[str, Any]] = []
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(headers=AUTH, connector=connector) as http:

            async def one(kind: str) -> None:
                sub = _sse_subscriber if kind == "sse" else _ws_subscriber
                outcomes.append({"kind": kind, **await sub(http, path + ("/events" if kind == "sse" else "/ws"))})

            with anyio.fail_after(600):
                async with anyio.create_task_group() as tg:
                    for _ in range(each):
                        tg.start_soon(one, "sse")
                        tg.start_soon(one, "ws")
        run = await client.get_run(run_id)
    assert run["lifecycle"]["status"] == "completed" and len(outcomes) == 2 * each
    for got in outcomes:
        assert got["last"]["run"]["counts"] == run["counts"], got["kind"]
        assert got["seqs"] == sorted(set(got["seqs"])), "strictly increasing"
        # Every child is in the snapshot or in exactly one child.finished after it.
        before = got["snapshot"]["run"]["counts"]["lifecycle_counts"]
        assert before["completed"] + before["error"] + got["children"] == n, got["kind"]
    assert await server.stop() == 0
