"""Feed fixtures: in-process apps with the feed's shutdown hook, a real server process, SSE parsing."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.api.app import create_app
from orchestrator.api.keys import HUB
from orchestrator.api.routes import feed
from orchestrator.feed.hub import Hub
from tests import serverproc
from tests.conftest import API_KEY, INVOICE_SCHEMA, Api, make_settings

FeedFactory = Callable[..., Awaitable[Api]]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a long feed test (hundreds of subscribers)")


@pytest.fixture
async def feed_api(tmp_path: Path, db_url: str) -> AsyncIterator[FeedFactory]:
    """Like make_api (on both stores), with `app.on_shutdown` closing the feeds (added if create_app does not)."""
    clients: list[TestClient[Any, Any]] = []

    async def factory(**overrides: Any) -> Api:
        app = create_app(make_settings(tmp_path, **{"db": db_url, **overrides}))
        if feed.on_shutdown not in app.on_shutdown:
            app.on_shutdown.append(feed.on_shutdown)
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return Api(client)

    yield factory
    for c in clients:
        await c.close()


def app_of(api: Api) -> web.Application:
    app = api.client.app
    assert isinstance(app, web.Application)
    return app


def hub_of(api: Api) -> Hub:
    return app_of(api)[HUB]


def base_url(api: Api) -> str:
    return str(api.client.make_url("")).rstrip("/")


Post = Callable[[str, dict[str, Any]], Awaitable[Any]]
Get = Callable[[str, dict[str, str]], Awaitable[Any]]


async def create_experiment_run(post: Post, n: int, *, latency_ms: float = 0.0) -> str:
    """A running experiment over n JSON documents on the simulated engine; returns the run id."""
    config: dict[str, Any] = {"model": "simulated", "json_schema": INVOICE_SCHEMA}
    if latency_ms:
        config["simulation"] = {"latency_ms": latency_ms}
    wf = await post("/v1/workflows", {"name": "wf", "project_id": "p"})
    block = await post(
        "/v1/workflows/blocks", {"workflow_id": wf["id"], "type": "extract", "label": "Extract", "config": config}
    )
    docs = [{"handle_inputs": {"input-json-0": {"type": "json", "data": {"doc": i}}}} for i in range(n)]
    exp = await post(
        "/v1/workflows/experiments",
        {"workflow_id": wf["id"], "block_id": block["id"], "name": "feed", "n_consensus": 3, "documents": docs},
    )
    run = await post("/v1/workflows/experiments/runs", {"experiment_id": exp["id"]})
    return str(run["id"])


async def experiment_run(api: Api, n: int, *, latency_ms: float = 0.0) -> str:
    async def post(path: str, body: dict[str, Any]) -> Any:
        return await api.post(path, body, expect=201)

    return await create_experiment_run(post, n, latency_ms=latency_ms)


async def finished_child_ids(get: Get, run_id: str) -> list[str]:
    """Ids of the run's children that finished (completed or error), from the results list."""
    ids: list[str] = []
    after: str | None = None
    while True:
        params = {"run_id": run_id, "limit": "1000", **({"after": after} if after else {})}
        page = await get("/v1/workflows/experiments/results", params)
        ids += [r["id"] for r in page["data"] if r["lifecycle"]["status"] in ("completed", "error")]
        after = page["list_metadata"]["after"]
        if not after or not page["data"]:
            return ids


async def result_ids(api: Api, run_id: str) -> list[str]:
    async def get(path: str, params: dict[str, str]) -> Any:
        return await api.get(path, params=params, expect=200)

    return await finished_child_ids(get, run_id)


@dataclass
class Sse:
    id: int | None
    event: str | None
    data: dict[str, Any] | None
    comment: str | None = None


async def sse_messages(resp: aiohttp.ClientResponse) -> AsyncIterator[Sse]:
    """Raw SSE messages, keep-alive comments included (ids and event names kept apart from the data)."""
    pending = b""
    fields: dict[bytes, bytes] = {}
    async for chunk in resp.content.iter_any():
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.startswith(b":"):
                yield Sse(None, None, None, comment=line[1:].strip().decode())
            elif line:
                name, _, value = line.partition(b":")
                fields[name] = value.removeprefix(b" ")
            elif b"data" in fields:
                ident = fields.get(b"id")
                event = fields.get(b"event")
                yield Sse(
                    int(ident) if ident else None, event.decode() if event else None, orjson.loads(fields[b"data"])
                )
                fields = {}
            else:
                fields = {}


class ServerProcess:
    """`orchestrator serve` in a child process on a fixed database; restartable on the same port.

    The shared helper is synchronous: start-up and shutdown run in a worker thread so the event loop
    keeps serving the test's own clients (one of them follows a run across a restart)."""

    def __init__(self, tmp_path: Path) -> None:
        self.db = tmp_path / "server.db"
        self.log = tmp_path / "server.log"
        self.port = 0
        self.running: serverproc.ServerProcess | None = None

    async def start(self, *flags: str) -> str:
        # The fan-out test's block runs `python:tests.feed.test_server:gated_extract`: allowed explicitly.
        flags = ("--python-modules", "tests.feed", *flags)
        start = partial(serverproc.start_server, self.db, api_key=API_KEY, port=self.port, extra=flags, stderr=self.log)
        self.running = await anyio.to_thread.run_sync(start)
        self.port = int(self.running.base_url.rsplit(":", 1)[1])
        return self.running.base_url

    async def stop(self) -> int:
        running, self.running = self.running, None
        if running is None:
            return 0
        return await anyio.to_thread.run_sync(partial(running.stop, timeout=60))

    def kill(self) -> None:
        running, self.running = self.running, None
        if running is not None:
            running.kill()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    proc = ServerProcess(tmp_path)
    try:
        yield proc
    finally:
        proc.kill()


class RawSse:
    """An HTTP/1.0 SSE client on a bare socket with a tiny receive buffer: it reads only when told to.

    Until it reads, the server's writes to it block within a few hundred kilobytes: a stuck subscriber.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.pending = b""
        self.headers_done = False

    @classmethod
    async def open(cls, base: str, path: str, headers: dict[str, str] | None = None) -> RawSse:
        host, port = base.split("://", 1)[1].split(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        reader, writer = await asyncio.open_connection(sock=sock)
        lines = [f"GET {path} HTTP/1.0", f"Host: {host}", f"Authorization: Bearer {API_KEY}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        return cls(reader, writer)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Data messages (parsed) until the server closes the connection."""
        while True:
            chunk = await self.reader.read(65536)
            if not chunk:
                return
            self.pending += chunk
            if not self.headers_done:
                head, sep, rest = self.pending.partition(b"\r\n\r\n")
                if not sep:
                    continue
                assert head.split(b" ", 2)[1] == b"200", head
                self.headers_done, self.pending = True, rest
            *messages, self.pending = self.pending.split(b"\n\n")
            for message in messages:
                for line in message.split(b"\n"):
                    if line.startswith(b"data: "):
                        yield orjson.loads(line[6:])

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
