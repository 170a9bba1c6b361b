"""Against the real server process: resume across a restart, and hundreds of subscribers on a big run."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson
import pytest

from orchestrator.cli.client import Client
from tests.conftest import API_KEY, AUTH, INVOICE_SCHEMA
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
    # Resumes after the cursor (a `progress` event followed by a newer one of its run may be coalesced
    # away, so the next seq can be skipped); nothing is lost: every child's finish arrives exactly once.
    assert rest[0]["seq"] > first[-1]["seq"] and rest[-1]["type"] == "run.finished"
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


async def gated_extract(config: dict[str, Any], inputs: dict[str, Any], pass_index: int) -> dict[str, Any]:
    """The model of the fan-out test's block, run in the SERVER process by its python engine (the
    server's working directory is the repository, so `python:tests.feed.test_server:gated_extract`
    imports): every pass waits until the test creates the gate file, then answers at once."""
    gate = Path(config["gate"])
    # The gate is a file because the test is another process: nothing here could set an Event. A stat is cheap.
    while not gate.exists():  # noqa: ASYNC110, ASYNC240
        await asyncio.sleep(0.005)
    return {"invoice_number": f"INV-{pass_index}", "vendor": "gated", "total": 1.0}


async def gated_run(client: Client, n: int, gate: Path) -> str:
    """An experiment run over n JSON documents whose passes all wait for `gate` to exist."""
    wf = await client.request("POST", "/v1/workflows", json={"name": "fan-out", "project_id": "p"})
    config = {"model": f"python:{__name__}:gated_extract", "json_schema": INVOICE_SCHEMA, "gate": str(gate)}
    block = await client.request(
        "POST",
        "/v1/workflows/blocks",
        json={"workflow_id": wf["id"], "type": "extract", "label": "Extract", "config": config},
    )
    docs = [{"handle_inputs": {"input-json-0": {"type": "json", "data": {"doc": i}}}} for i in range(n)]
    body = {"workflow_id": wf["id"], "block_id": block["id"], "name": "fan-out", "n_consensus": 3, "documents": docs}
    exp = await client.request("POST", "/v1/workflows/experiments", json=body)
    run = await client.request("POST", "/v1/workflows/experiments/runs", json={"experiment_id": exp["id"]})
    return str(run["id"])


@dataclass
class Subscribed:
    """Counts the subscribers that have their snapshot; `all` is set when every one has."""

    expected: int
    count: int = 0
    all: anyio.Event = field(default_factory=anyio.Event)

    def one(self) -> None:
        self.count += 1
        if self.count == self.expected:
            self.all.set()


async def _sse_subscriber(http: aiohttp.ClientSession, url: str, subscribed: Subscribed) -> dict[str, Any]:
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
                    subscribed.one()
                elif event == b"event: run.finished":
                    return {"seqs": seqs, "children": children, "snapshot": snapshot, "last": orjson.loads(data[6:])}
    raise AssertionError("the stream ended without run.finished")


async def _ws_subscriber(http: aiohttp.ClientSession, url: str, subscribed: Subscribed) -> dict[str, Any]:
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
                subscribed.one()
            elif event["type"] == "run.finished":
                return {"seqs": seqs, "children": children, "snapshot": snapshot, "last": event}
        raise AssertionError(f"the stream ended without run.finished: {ws.close_code} {ws.exception()!r}")


async def test_two_hundred_websocket_and_two_hundred_sse_subscribers_on_a_big_run(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Every one of 400 live subscribers (200 SSE, 200 WebSocket) gets every child of the run and its end.
    The run's passes wait on a gate until all 400 have their snapshot, so each child is fanned out to
    all of them as it finishes (none is covered by a snapshot instead)."""
    n, each = 500, 200
    gate = tmp_path / "gate"
    base = await server.start()
    subscribed = Subscribed(2 * each)
    async with Client(base, API_KEY, timeout=300) as client:
        run_id = await gated_run(client, n, gate)
        path = base + client.run_path(run_id)
        outcomes: list[dict[str, Any]] = []
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(headers=AUTH, connector=connector) as http:

            async def one(kind: str) -> None:
                sub = _sse_subscriber if kind == "sse" else _ws_subscriber
                got = await sub(http, path + ("/events" if kind == "sse" else "/ws"), subscribed)
                outcomes.append({"kind": kind, **got})

            with anyio.fail_after(300):
                async with anyio.create_task_group() as tg:
                    for _ in range(each):
                        tg.start_soon(one, "sse")
                        tg.start_soon(one, "ws")
                    await subscribed.all.wait()
                    # open, whichever worker process has started which child yet: nothing ends before the gate
                    assert (await client.get_run(run_id))["lifecycle"]["status"] in ("pending", "queued", "running")
                    gate.touch()
        run = await client.get_run(run_id)
    assert run["lifecycle"]["status"] == "completed" and len(outcomes) == 2 * each
    assert run["counts"]["lifecycle_counts"]["completed"] == n
    for got in outcomes:
        assert got["last"]["run"]["counts"] == run["counts"], got["kind"]
        assert got["seqs"] == sorted(set(got["seqs"])), "strictly increasing"
        before = got["snapshot"]["run"]["counts"]["lifecycle_counts"]
        assert before["completed"] + before["error"] == 0, got["kind"]  # subscribed before any child ended
        assert got["children"] == n, got["kind"]  # so every child reached it as a child.finished, once
    assert await server.stop() == 0
