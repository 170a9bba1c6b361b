"""Recovery: runs left open resume at start-up; results committed before a stop or a crash are
never counted twice. Includes a real server process killed with SIGKILL in the middle of a run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from orchestrator.store import open_store
from orchestrator.store.records import ChildStart
from orchestrator.store.sqlite import SqliteStore
from tests.conftest import INVOICE_SCHEMA, AppFactory
from tests.runner.helpers import (
    add_block,
    add_checks,
    assert_counts_match_children,
    eval_run,
    get_run,
    json_inputs,
    services,
    sim,
    wait_for,
)
from tests.serverproc import ServerProcess, start_server
from tests.sqlite_util import db_of


@pytest.mark.stores("sqlite")  # reads or writes the SQLite file directly
async def test_a_stopped_server_resumes_its_runs_and_counts_each_result_once(make_api: AppFactory) -> None:
    api = await make_api(max_concurrency=2)
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, sim(latency_ms=20))
    await add_checks(api, wf, block, 40)
    run = await eval_run(api, wf)
    await wait_for(lambda: get_run(api, run["id"]), lambda r: r["counts"]["lifecycle_counts"]["completed"] >= 5)
    await api.client.close()  # in-flight children are abandoned mid-pass

    again = await make_api(max_concurrency=8)
    done = await again.wait_run(run["id"])
    assert done["lifecycle"]["status"] == "completed"
    assert done["counts"]["outcome"] == {"passed": 40, "failed": 0, "blocked": 0}
    final = await assert_counts_match_children(again, run["id"])
    store = services(again).store
    rows = await db_of(store).fetchall(
        "SELECT count(*) AS n, count(DISTINCT child_id) AS d FROM artifacts WHERE run_id = ?", (run["id"],)
    )
    assert rows[0]["n"] == rows[0]["d"] == final["c_completed"] == 40
    resumed = await db_of(store).fetchall("SELECT id FROM children WHERE run_id = ? AND attempt > 0", (run["id"],))
    assert resumed, "children open at the stop should have run again"


async def test_finished_children_are_committed_at_shutdown(make_api: AppFactory) -> None:
    # A commit window far longer than the test: finished children wait in the committer until the
    # app stops, which must drain them instead of dropping them.
    api = await make_api(commit_interval_ms=60_000, commit_batch=100_000)
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, {})
    await add_checks(api, wf, block, 5)
    run = await eval_run(api, wf)
    scheduler = services(api).scheduler

    async def all_executed() -> bool:
        active = scheduler._runs.get(run["id"])
        return active is not None and active.exhausted and not active.buffer and active.in_flight == 0

    await wait_for(all_executed, bool, 10)
    assert (await get_run(api, run["id"]))["counts"]["lifecycle_counts"]["completed"] == 0  # not committed yet
    db_path = services(api).settings.db
    await api.client.close()
    store = open_store(db_path)
    await store.open()
    try:
        row = await store.runs.get(run["id"])
        assert row["status"] == "completed" and row["c_completed"] == 5
        assert (await store.children.recount(run["id"])) == {"c_completed": 5, "o_passed": 5}
    finally:
        await store.close()


@pytest.mark.stores("sqlite")  # reads or writes the SQLite file directly
@pytest.mark.parametrize("state", ["pending", "all-committed"])
async def test_open_runs_left_by_a_previous_process_end_at_start_up(make_api: AppFactory, state: str) -> None:
    api = await make_api()
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, {})
    await add_checks(api, wf, block, 3)
    s = services(api)
    checks = await s.store.checks.for_scope(wf, check_id=None, block_id=None)
    row, _ = await s.store.runs.create_run(
        {
            "id": "wfevalrun_left",
            "kind": "eval",
            "workflow_id": wf,
            "workflow_version_id": "draft_x",
            "workflow_name": "wf",
            "scope": {"type": "workflow"},
        },
        [
            {
                "check_id": c["id"],
                "block_id": block,
                "block_type": "extract",
                "handle_inputs": c["source"]["handle_inputs"],
            }
            for c in checks
        ],
    )
    if state == "all-committed":
        # Every child committed, the run itself still "running": a state older builds could leave.
        claimed = await s.store.children.claim(row["id"], 10)
        ts = "2024-01-01T00:00:00.000Z"
        await s.store.children.apply([ChildStart(c["id"], row["id"], ts) for c in claimed], [])
        await db_of(s.store).write(
            lambda conn: conn.execute(
                "UPDATE children SET status = 'completed', verdict = 'passed' WHERE run_id = ?", (row["id"],)
            )
        )
        await db_of(s.store).write(
            lambda conn: conn.execute(
                "UPDATE runs SET c_running = 0, c_completed = 3, o_passed = 3 WHERE id = ?", (row["id"],)
            )
        )
    await api.client.close()

    again = await make_api()
    done = await again.wait_run(row["id"], within_s=10)
    assert done["lifecycle"]["status"] == "completed"
    assert done["counts"]["outcome"]["passed"] == 3
    await assert_counts_match_children(again, row["id"])


# -- a real process, killed with SIGKILL -------------------------------------------------------------


@asynccontextmanager
async def server(db: Path) -> AsyncIterator[ServerProcess]:
    """The shared (blocking) helper in a worker thread; SIGTERM on the way out unless already dead."""
    srv = await anyio.to_thread.run_sync(partial(start_server, db, api_key="k", start_timeout=30))
    try:
        yield srv
    finally:
        await anyio.to_thread.run_sync(srv.stop)


async def _json(session: aiohttp.ClientSession, method: str, url: str, body: Any = None, expect: int = 200) -> Any:
    async with session.request(method, url, json=body, headers={"Authorization": "Bearer k"}) as resp:
        data = await resp.json()
        assert resp.status == expect, (resp.status, data)
        return data


async def _poll(session: aiohttp.ClientSession, url: str, until: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    async def probe() -> Any:
        return await _json(session, "GET", url)

    result: dict[str, Any] = await wait_for(probe, until, 120)
    return result


@pytest.mark.e2e
async def test_sigkill_in_the_middle_of_a_5000_child_run(tmp_path: Path) -> None:
    db = tmp_path / "kill.db"
    docs = 5000
    async with aiohttp.ClientSession() as session:
        async with server(db) as srv:
            url = srv.base_url
            wf = await _json(session, "POST", f"{url}/v1/workflows", {"name": "kill"}, 201)
            block = await _json(
                session,
                "POST",
                f"{url}/v1/workflows/blocks",
                {
                    "workflow_id": wf["id"],
                    "type": "extract",
                    "config": {"model": "simulated", "json_schema": INVOICE_SCHEMA, **sim(latency_ms=2)},
                },
                201,
            )
            exp = await _json(
                session,
                "POST",
                f"{url}/v1/workflows/experiments",
                {
                    "workflow_id": wf["id"],
                    "block_id": block["id"],
                    "n_consensus": 3,
                    "documents": [{"handle_inputs": json_inputs(i)} for i in range(docs)],
                },
                201,
            )
            run = await _json(
                session, "POST", f"{url}/v1/workflows/experiments/runs", {"experiment_id": exp["id"]}, 201
            )
            run_url = f"{url}/v1/workflows/experiments/runs/{run['id']}"
            seen = await _poll(session, run_url, lambda r: r["completed_document_count"] >= docs // 4)
            await anyio.to_thread.run_sync(srv.kill)
            killed_at = seen["completed_document_count"]
            assert killed_at <= docs * 8 // 10, "killed too late: make the run slower"

        async with server(db) as srv:
            run_url = f"{srv.base_url}/v1/workflows/experiments/runs/{run['id']}"
            done = await _poll(session, run_url, lambda r: r["lifecycle"]["status"] == "completed")
            assert done["completed_document_count"] == docs
            print(f"\nSIGKILL with {killed_at}/{docs} committed; after restart {done['completed_document_count']}")
            assert done["counts"]["lifecycle_counts"] == {
                "pending": 0,
                "queued": 0,
                "running": 0,
                "completed": docs,
                "error": 0,
                "cancelled": 0,
            }
    store = SqliteStore(str(db))  # the server has exited (SIGTERM): read the file directly
    await store.open()
    try:
        row = await store.runs.get(run["id"])
        recount = await store.children.recount(run["id"])
        assert recount == {"c_completed": docs}
        assert (row["c_completed"], row["c_pending"], row["c_queued"], row["c_running"]) == (docs, 0, 0, 0)
        art = await db_of(store).fetchone(
            "SELECT count(*) AS n, count(DISTINCT child_id) AS d FROM artifacts WHERE run_id = ?", (run["id"],)
        )
        ev = await db_of(store).fetchone(
            "SELECT count(*) AS n, count(DISTINCT child_id) AS d FROM events"
            " WHERE run_id = ? AND type = 'child.finished'",
            (run["id"],),
        )
        assert art == {"n": docs, "d": docs}
        assert ev == {"n": docs, "d": docs}
        rerun_sql = "SELECT count(*) FROM children WHERE run_id = ? AND attempt > 0"
        rerun = await db_of(store).scalar(rerun_sql, (run["id"],))
        assert rerun > 0, "children open at the kill should have run again"
    finally:
        await store.close()
