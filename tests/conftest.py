"""Shared fixtures: an in-process app on real SQLite in tmp_path (or a fresh PostgreSQL database), a
throwaway PostgreSQL cluster for the session, and helpers that wait on conditions."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.api.app import create_app
from orchestrator.core.lifecycle import TERMINAL
from orchestrator.demo import MINIMAL_INVOICE_SCHEMA
from orchestrator.settings import Settings
from tests.pg_cluster import Cluster, start_cluster

API_KEY = "test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
INVOICE_SCHEMA = MINIMAL_INVOICE_SCHEMA


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "db": str(tmp_path / "test.db"),
        "api_key": API_KEY,
        "demo": False,
        "workers": 0,  # the runner in this process: tests reach its scheduler (worker processes: tests/e2e)
        "commit_interval_ms": 2.0,
        "retry_base_s": 0.001,
    }
    base.update(overrides)
    return Settings(**base)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """One throwaway PostgreSQL cluster for the whole session, started on first use (tests/pg_cluster.py).
    Skips where PostgreSQL is not installed (scripts/test installs it), unless CI demands it."""
    try:
        cluster = start_cluster()
    except RuntimeError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL for the tests: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """A fresh database holding the current schema, for one test; dropped after it."""
    url = pg_cluster.create_database()
    yield url
    pg_cluster.drop_database(url.rsplit("/", 1)[1])


class Api:
    """A thin JSON helper over aiohttp's TestClient that always authenticates."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
        expect: int | None = None,
    ) -> Any:
        resp = await self.client.request(method, path, json=json, params=params, headers={**AUTH, **(headers or {})})
        body = await resp.json() if resp.status != 204 and resp.content_length != 0 else None
        if expect is not None:
            assert resp.status == expect, (resp.status, body)
        return body

    async def get(self, path: str, **kw: Any) -> Any:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return await self.call("POST", path, json=json, **kw)

    async def patch(self, path: str, json: Any = None, **kw: Any) -> Any:
        return await self.call("PATCH", path, json=json, **kw)

    async def delete(self, path: str, **kw: Any) -> Any:
        return await self.call("DELETE", path, **kw)

    async def wait_run(
        self, run_id: str, within_s: float = 60.0, check: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        """Poll GET until the run is terminal (condition-based; `check` runs on every observation)."""
        kind = (
            "experiments" if run_id.startswith("exprun_") else "tests" if run_id.startswith("wftestrun_") else "evals"
        )
        with anyio.fail_after(within_s):
            while True:
                run = await self.get(f"/v1/workflows/{kind}/runs/{run_id}", expect=200)
                if check is not None:
                    check(run)
                if run["lifecycle"]["status"] in TERMINAL:
                    return dict(run)
                await anyio.sleep(0.01)

    async def upload(self, data: bytes, filename: str = "invoice.txt", mime: str = "text/plain") -> dict[str, Any]:
        up = await self.post(
            "/v1/files/upload", {"filename": filename, "size_bytes": len(data), "content_type": mime}, expect=200
        )
        path = up["upload_url"].split("://", 1)[1].split("/", 1)[1]
        resp = await self.client.put("/" + path, data=data)
        assert resp.status == 200, await resp.text()
        await self.post(f"/v1/files/upload/{up['file_id']}/complete", {}, expect=200)
        return {"id": up["file_id"], "filename": filename, "mime_type": mime}

    async def workflow_with_extract(self, config: dict[str, Any] | None = None) -> tuple[str, str]:
        wf = await self.post("/v1/workflows", {"name": "wf", "project_id": "p"}, expect=201)
        cfg = {"model": "simulated", "json_schema": INVOICE_SCHEMA, **(config or {})}
        block = await self.post(
            "/v1/workflows/blocks",
            {"workflow_id": wf["id"], "type": "extract", "label": "Extract", "config": cfg},
            expect=201,
        )
        return wf["id"], block["id"]


AppFactory = Callable[..., Awaitable[Api]]


STORE_KINDS = ("sqlite", "postgres")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that builds an app runs on both stores, unless marked `@pytest.mark.stores("sqlite")`
    (a test that reads the SQLite file itself, or restarts a process around it)."""
    if "store_kind" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("stores")
        metafunc.parametrize("store_kind", marker.args if marker else STORE_KINDS)


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path, store_kind: str) -> str:
    """The `--db` of this test's store: a SQLite file in tmp_path, or a fresh PostgreSQL database."""
    if store_kind == "postgres":
        url: str = request.getfixturevalue("pg_url")
        return url
    return str(tmp_path / "test.db")


@pytest.fixture
async def make_api(tmp_path: Path, db_url: str) -> AsyncIterator[AppFactory]:
    """`api = await make_api(**settings_overrides)`; several apps may share one database in sequence."""
    clients: list[TestClient[Any, Any]] = []

    async def factory(**overrides: Any) -> Api:
        app = create_app(make_settings(tmp_path, **{"db": db_url, **overrides}))
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return Api(client)

    yield factory
    for c in clients:
        await c.close()


@pytest.fixture
async def api(make_api: AppFactory) -> Api:
    return await make_api()


def invoice_text(number: str = "INV-001", total: str = "$1,234.56", vendor: str = "ACME Inc") -> bytes:
    return f"Invoice Number: {number}\nVendor: {vendor}\nTotal: {total}\n".encode()
