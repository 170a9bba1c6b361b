"""Worker processes for real: `serve --workers 2`, `orchestrator worker` by hand and `serve --api-only`.

A worker killed with SIGKILL mid-run loses nothing and is restarted; a cancellation reaches the workers
through the store; SIGTERM drains them and the run goes on after a restart; and the feed resumes across a
restart of the API process while a worker keeps working.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import anyio.to_thread

from orchestrator.cli.client import Client
from orchestrator.core.lifecycle import TERMINAL, invariant_violations
from orchestrator.store.records import PageRequest
from orchestrator.store.sqlite import SqliteStore
from tests.feed.conftest import create_experiment_run
from tests.serverproc import ROOT, ServerProcess, clean_env, start_server

KEY = "k"
AUTH = {"Authorization": f"Bearer {KEY}"}


@asynccontextmanager
async def serving(db: Path, *extra: str, env: Mapping[str, str] | None = None) -> AsyncIterator[ServerProcess]:
    srv = await anyio.to_thread.run_sync(partial(start_server, db, api_key=KEY, extra=extra, env=env, start_timeout=60))
    try:
        yield srv
    finally:
        await anyio.to_thread.run_sync(srv.stop)


class Http:
    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base, self.session = base, session

    async def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        async with self.session.request(method, self.base + path, json=body, headers=AUTH) as resp:
            data = await resp.json()
            assert resp.status == expect, (resp.status, data)
            return data

    async def post(self, path: str, body: Any) -> Any:
        return await self.call("POST", path, body, 201 if not path.endswith("/cancel") else 200)

    async def run(self, run_id: str) -> Any:
        return await self.call("GET", f"/v1/workflows/experiments/runs/{run_id}")

    async def workers(self) -> list[dict[str, Any]]:
        return list((await self.call("GET", "/v1/workers"))["data"])


async def until(probe: Callable[[], Awaitable[Any]], within_s: float = 120.0) -> Any:
    """Poll another process's state (no event of ours to wait on) until `probe` returns something true."""
    with anyio.fail_after(within_s):
        while True:
            if found := await probe():
                return found
            await anyio.sleep(0.05)


async def finished(http: Http, run_id: str) -> Any:
    async def probe() -> Any:
        run = await http.run(run_id)
        return run if run["lifecycle"]["status"] in TERMINAL else None

    return await until(probe)


async def exactly_once(db: Path, run_id: str, expected: int, *, rerun: bool = False) -> None:
    """Read the database after the server stopped: every child committed once, counts = a recount;
    with `rerun`, some children ran again (their first worker died holding them)."""
    store = SqliteStore(str(db))
    await store.open()
    try:
        run = dict(await store.runs.get(run_id))
        recount = await store.children.recount(run_id)
        assert {k: run[k] for k in recount} == recount and invariant_violations(run) == []
        assert run["c_completed"] == expected
        artifacts = await store.children.list_artifacts(PageRequest(limit=1000), run_id=run_id, operation=None)
        per_child = Counter(a["child_id"] for a in artifacts.rows)
        assert len(per_child) == expected and set(per_child.values()) == {1}, "one result per child, no double"
        children = (await store.children.list_page(run_id, PageRequest(limit=1000))).rows
        assert any(c["attempt"] > 0 for c in children) == rerun
    finally:
        await store.close()


async def test_a_worker_killed_mid_run_loses_nothing_and_is_restarted(tmp_path: Path) -> None:
    db = tmp_path / "kill.db"
    async with serving(db, "--workers", "2", "--heartbeat-s", "0.2") as srv, aiohttp.ClientSession() as s:
        http = Http(srv.base_url, s)
        run_id = await create_experiment_run(http.post, 400, latency_ms=20)

        async def both_hold_claims() -> list[dict[str, Any]] | None:
            live = await http.workers()
            return live if len(live) == 2 and all(w["claims"] > 0 for w in live) else None

        victim = (await until(both_hold_claims))[0]
        os.kill(int(victim["pid"]), signal.SIGKILL)
        run = await finished(http, run_id)
        assert run["lifecycle"]["status"] == "completed" and run["completed_document_count"] == 400

        async def replaced() -> bool:
            pids = {w["pid"] for w in await http.workers()}
            return len(pids) == 2 and victim["pid"] not in pids

        await until(replaced)
    assert "restarting it" in srv.stderr_tail(20000), "the supervisor says it restarted the worker"
    await exactly_once(db, run_id, 400, rerun=True)


async def test_a_cancellation_reaches_every_worker(tmp_path: Path) -> None:
    async with serving(tmp_path / "cancel.db", "--workers", "2") as srv, aiohttp.ClientSession() as s:
        http = Http(srv.base_url, s)
        run_id = await create_experiment_run(http.post, 2000, latency_ms=50)

        async def busy() -> bool:
            return sum(int(w["claims"]) for w in await http.workers()) > 0

        await until(busy)
        await http.post(f"/v1/workflows/experiments/runs/{run_id}/cancel", {})

        async def idle() -> bool:
            return sum(int(w["claims"]) for w in await http.workers()) == 0

        await until(idle, within_s=30)
        run = await http.run(run_id)
        assert run["lifecycle"]["status"] == "cancelled"
        counts = run["document_counts"] if "document_counts" in run else run["counts"]["lifecycle_counts"]
        assert sum(v for k, v in counts.items() if k in ("pending", "queued", "running")) == 0


async def test_sigterm_drains_the_workers_and_the_run_goes_on_after_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "drain.db"
    srv = await anyio.to_thread.run_sync(partial(start_server, db, api_key=KEY, extra=("--workers", "2")))
    async with aiohttp.ClientSession() as s:
        http = Http(srv.base_url, s)
        run_id = await create_experiment_run(http.post, 600, latency_ms=20)

        async def started() -> bool:
            return int((await http.run(run_id))["completed_document_count"]) > 20

        await until(started)
    code = await anyio.to_thread.run_sync(partial(srv.stop, signal.SIGTERM, 10))
    assert code == 0, f"serve did not drain and exit cleanly within 10 s: {code}"
    async with serving(db, "--workers", "2") as again, aiohttp.ClientSession() as s:
        run = await finished(Http(again.base_url, s), run_id)
        assert run["lifecycle"]["status"] == "completed" and run["completed_document_count"] == 600
    await exactly_once(db, run_id, 600, rerun=True)  # what was in flight at SIGTERM was given back


async def test_the_feed_resumes_across_an_api_restart_while_a_worker_keeps_working(tmp_path: Path) -> None:
    db = tmp_path / "apart.db"
    api = await anyio.to_thread.run_sync(partial(start_server, db, api_key=KEY, extra=("--api-only",)))
    worker = subprocess.Popen(  # noqa: ASYNC220 - started once, never waited on in the loop
        [sys.executable, "-m", "orchestrator", "worker", "--db", str(db)],
        cwd=ROOT,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "worker.stderr").open("w"),
    )
    try:
        async with aiohttp.ClientSession() as s:
            run_id = await create_experiment_run(Http(api.base_url, s).post, 300, latency_ms=20)
        seen: list[int] = []
        children: list[str] = []

        def note(event: dict[str, Any]) -> None:
            if isinstance(event.get("seq"), int) and event["type"] != "snapshot":
                seen.append(event["seq"])
            if event["type"] == "child.finished":
                children.append(event["child"]["id"])

        async with Client(api.base_url, KEY) as client:
            async for event in client.run_events(run_id):
                note(event)
                if len(children) >= 30:
                    break
        await anyio.to_thread.run_sync(api.kill)  # the API process dies; the worker does not
        async with serving(db, "--api-only") as again, aiohttp.ClientSession() as s:
            http = Http(again.base_url, s)
            assert worker.poll() is None, "the worker kept running"
            async with Client(again.base_url, KEY) as client:
                async for event in client.run_events(run_id, after=seen[-1]):
                    note(event)
            run = await finished(http, run_id)
            assert run["lifecycle"]["status"] == "completed" and run["completed_document_count"] == 300
        # Progress events a later event covers are coalesced away on replay; no child is missed or repeated.
        assert seen == sorted(set(seen)), "in order, none twice"
        assert len(children) == len(set(children)) == 300, "every child once, across the restart"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
