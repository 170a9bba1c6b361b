"""orchestrator.cli.client: REST errors, run paths, and run_events resuming by itself after dropped links."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio
import pytest
from anyio.abc import SocketStream, TaskStatus

from orchestrator.cli.client import Client, ClientError, run_path
from tests.conftest import API_KEY
from tests.feed.conftest import FeedFactory, base_url, experiment_run, result_ids


class DroppingProxy:
    """A loopback TCP relay that can cut every open connection at once (a flaky network)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.connections = 0
        self._scopes: set[anyio.CancelScope] = set()

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        task_status.started()
        await listener.serve(self._relay)

    async def _relay(self, client: SocketStream) -> None:
        self.connections += 1
        async with client, await anyio.connect_tcp("127.0.0.1", self.upstream_port) as upstream:
            with anyio.CancelScope() as scope:
                self._scopes.add(scope)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._pipe, client, upstream, tg.cancel_scope)
                    tg.start_soon(self._pipe, upstream, client, tg.cancel_scope)
            self._scopes.discard(scope)

    @staticmethod
    async def _pipe(src: SocketStream, dst: SocketStream, scope: anyio.CancelScope) -> None:
        with suppress(anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            async for chunk in src:
                await dst.send(chunk)
        scope.cancel()

    def drop_all(self) -> None:
        for scope in list(self._scopes):
            scope.cancel()


@asynccontextmanager
async def proxy_to(port: int) -> AsyncIterator[DroppingProxy]:
    proxy = DroppingProxy(port)
    async with anyio.create_task_group() as tg:
        await tg.start(proxy.serve)
        yield proxy
        tg.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("run_id", "path"),
    [
        ("wfevalrun_1", "/v1/workflows/evals/runs/wfevalrun_1"),
        ("wftestrun_2", "/v1/workflows/tests/runs/wftestrun_2"),
        ("exprun_3", "/v1/workflows/experiments/runs/exprun_3"),
    ],
)
def test_run_path_from_the_id_prefix(run_id: str, path: str) -> None:
    assert run_path(run_id) == path


def test_run_path_refuses_other_ids() -> None:
    with pytest.raises(ValueError, match="not a run id"):
        run_path("wf_123")


async def test_errors_carry_the_envelope(feed_api: FeedFactory) -> None:
    api = await feed_api()
    async with Client(base_url(api), API_KEY) as client:
        with pytest.raises(ClientError) as missing:
            await client.get_run("exprun_missing")
        assert missing.value.status == 404 and missing.value.code == "not_found"
        assert missing.value.details == {"run_id": "exprun_missing"}
        with pytest.raises(ClientError) as bad:
            await client.request("POST", "/v1/workflows", json={"name": 3})
        assert bad.value.status == 422
        with pytest.raises(ClientError) as gone:
            async for _ in client.run_events("exprun_missing", transport="ws"):
                pass
        assert gone.value.status == 404
    async with Client(base_url(api), "wrong-key") as client:
        with pytest.raises(ClientError) as denied:
            async for _ in client.run_events("exprun_missing"):
                pass
        assert denied.value.status == 401 and denied.value.code == "invalid_api_key"


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_run_events_resume_by_themselves_after_dropped_connections(feed_api: FeedFactory, transport: Any) -> None:
    api = await feed_api()
    # Passes slow enough that the events trickle in: with batched frames a fast run's whole feed can
    # sit in the client's buffer before the first drop, and then no drop would force a reconnection.
    run_id = await experiment_run(api, 200, latency_ms=20)
    port = int(base_url(api).rsplit(":", 1)[1])
    ids: list[str] = []
    types: list[str] = []
    async with proxy_to(port) as proxy, Client(f"http://127.0.0.1:{proxy.port}", API_KEY, backoff_s=0.01) as client:
        with anyio.fail_after(60):
            async for event in client.run_events(run_id, after=0, transport=transport):
                types.append(event["type"])
                if event["type"] == "child.finished":
                    ids.append(event["child"]["id"])
                    if len(ids) in (20, 90, 150):
                        proxy.drop_all()
        assert proxy.connections >= 2  # a drop may land while the client still reads buffered events
    assert types[-1] == "run.finished" and "snapshot" not in types
    assert len(ids) == len(set(ids)), "no duplicate"
    assert sorted(ids) == sorted(await result_ids(api, run_id)), "no gap"


async def test_run_events_starts_with_a_snapshot_and_all_events_follow_every_run(feed_api: FeedFactory) -> None:
    api = await feed_api()
    run_id = await experiment_run(api, 3)
    final = await api.wait_run(run_id)
    async with Client(base_url(api), API_KEY) as client:
        events = [e async for e in client.run_events(run_id)]
        assert [e["type"] for e in events] == ["snapshot", "run.finished"]
        assert events[-1]["run"]["counts"] == (await client.get_run(run_id))["counts"] == final["counts"]
        with anyio.fail_after(30):
            async for event in client.all_events(after=0, transport="ws"):
                if event["type"] == "run.finished":
                    assert event["run_id"] == run_id
                    break


async def test_run_events_give_up_after_the_retries() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with Client(f"http://127.0.0.1:{port}", API_KEY, retries=2, backoff_s=0.001) as client:
        with pytest.raises(ClientError) as failed:
            async for _ in client.run_events("exprun_x"):
                pass
    assert failed.value.code == "feed_disconnected" and failed.value.status == 0
