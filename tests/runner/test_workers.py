"""Several workers over one store, in one process (each a Scheduler with its own id and leases):
they share a run with exactly one result per child; a worker that vanishes loses nothing; a
cancellation written by anyone reaches every worker; late commits of a lost lease are refused."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest

from orchestrator.core.lifecycle import TERMINAL, invariant_violations
from orchestrator.engines.router import EngineRouter
from orchestrator.runner.membership import share
from orchestrator.runner.scheduler import Scheduler
from orchestrator.settings import Settings
from orchestrator.store import Store
from orchestrator.store.postgres import PostgresStore
from orchestrator.store.records import ChildFinish, PageRequest, ResultRecord, RunRecord
from orchestrator.store.sqlite import SqliteStore
from tests.conftest import INVOICE_SCHEMA
from tests.runner.helpers import json_inputs

FAST = {"heartbeat_s": 0.05, "lease_s": 0.5, "poll_s": 0.05, "commit_interval_ms": 2.0, "max_concurrency": 8}


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Both stores: on PostgreSQL the workers meet on row locks, SKIP LOCKED claims and NOTIFY wake-ups."""
    s: Store
    if request.param == "postgres":
        s = PostgresStore(request.getfixturevalue("pg_url"))
    else:
        s = SqliteStore(str(tmp_path / "w.db"))
    await s.open()
    yield s
    await s.close()


async def _eval_run(store: Store, n: int, latency_ms: float, run_id: str = "wfevalrun_shared") -> str:
    wf = await store.workflows.create_workflow(name="wf", description="", project_id=None)
    config = {"model": "simulated", "json_schema": INVOICE_SCHEMA, "simulation": {"latency_ms": latency_ms}}
    block = await store.workflows.create_block(wf["id"], {"type": "extract", "config": config})
    run: dict[str, Any] = {
        "id": run_id,
        "kind": "eval",
        "workflow_id": wf["id"],
        "workflow_version_id": "draft_x",
        "workflow_name": "wf",
    }
    children = [{"block_id": block["id"], "block_type": "extract", "handle_inputs": json_inputs(i)} for i in range(n)]
    await store.runs.create_run(run, children)
    return run_id


async def _until(probe: Any, within_s: float = 30.0) -> Any:
    """Poll a condition of the store (another process's view: no event to wait on) until it holds."""
    with anyio.fail_after(within_s):
        while True:
            if found := await probe():
                return found
            await anyio.sleep(0.02)


async def _finished(store: Store, run_id: str) -> RunRecord:
    async def probe() -> RunRecord | None:
        run = await store.runs.get(run_id)
        return run if run["status"] in TERMINAL else None

    run: RunRecord = await _until(probe)
    return run


async def _results(store: Store, run_id: str) -> list[ResultRecord]:
    rows = (await store.children.list_page(run_id, PageRequest(limit=1000))).rows
    return rows


def _worker(store: Store, name: str, **overrides: Any) -> Scheduler:
    return Scheduler(Settings(**{**FAST, **overrides}), store, EngineRouter(), worker_id=name)


@pytest.mark.parametrize(("total", "live", "expected"), [(32, ["a", "b"], [16, 16]), (5, ["a", "b", "c"], [2, 2, 1])])
def test_shares_add_up_to_the_global_limit(total: int, live: list[str], expected: list[int]) -> None:
    assert [share(total, live, me) for me in live] == expected
    assert share(1, live, live[-1]) == 1, "never zero"


async def test_two_workers_share_a_run_with_exactly_one_result_per_child(store: Store) -> None:
    run_id = await _eval_run(store, 120, latency_ms=5)
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(_worker(store, "wrk_a", max_concurrency=8))
        b = await stack.enter_async_context(_worker(store, "wrk_b", max_concurrency=8))
        run = await _finished(store, run_id)
        assert a.limiter.total + b.limiter.total == 8, "the global limit is split, not doubled"
    assert run["status"] == "completed" and run["c_completed"] == 120
    assert invariant_violations(run) == [] and (await store.children.recount(run_id))["c_completed"] == 120
    artifacts = await store.children.list_artifacts(PageRequest(limit=1000), run_id=run_id, operation=None)
    by_child = Counter(a["child_id"] for a in artifacts.rows)
    assert len(by_child) == 120 and set(by_child.values()) == {1}, "one artifact (one result) per child"
    assert all(r["status"] == "completed" and r["result"] for r in await _results(store, run_id))


async def test_both_workers_do_part_of_the_work(store: Store) -> None:
    run_id = await _eval_run(store, 200, latency_ms=10)
    ran: Counter[str] = Counter()
    async with AsyncExitStack() as stack:
        for name in ("wrk_a", "wrk_b"):
            worker = _worker(store, name, max_concurrency=4)
            real = worker.executor.execute

            async def counted(
                ctx: Any, child: Any, ticket: Any = None, prep: Any = None, name: str = name, real: Any = real
            ) -> Any:
                ran[name] += 1
                return await real(ctx, child, ticket, prep)

            worker.executor.execute = counted  # type: ignore[method-assign]
            await stack.enter_async_context(worker)
        await _finished(store, run_id)
    assert sum(ran.values()) == 200 and min(ran["wrk_a"], ran["wrk_b"]) > 0, ran


async def test_a_vanished_worker_loses_nothing(store: Store) -> None:
    """A worker that stops beating (its task group is torn down without signing off, as a SIGKILL
    would) holds children under lease: they expire and the other worker runs them; the run ends with
    every child counted once."""
    run_id = await _eval_run(store, 60, latency_ms=20)
    survivor = _worker(store, "wrk_survivor", max_concurrency=4)
    doomed = _worker(store, "wrk_doomed", max_concurrency=4)
    doomed.membership.leave = _no_sign_off  # type: ignore[method-assign]
    async with survivor:
        async with doomed:

            async def doomed_holds_work() -> bool:
                held = {str(w["id"]): int(w["claims"]) for w in await store.workers.list()}
                return held.get("wrk_doomed", 0) > 0

            await _until(doomed_holds_work)
        run = await _finished(store, run_id)

        async def doomed_declared_dead() -> bool:
            status = {str(w["id"]): str(w["status"]) for w in await store.workers.list(include_stopped=True)}
            return status["wrk_doomed"] == "dead"

        await _until(doomed_declared_dead, within_s=10)
    assert (run["status"], run["c_completed"]) == ("completed", 60)
    assert invariant_violations(run) == [] and (await store.children.recount(run_id))["c_completed"] == 60


async def _no_sign_off() -> None:
    return None


async def test_a_late_commit_under_a_lost_lease_is_refused(store: Store) -> None:
    run_id = await _eval_run(store, 2, latency_ms=0)
    claimed = await store.children.claim(run_id, 2, owner="wrk_old", lease_s=0.01)
    assert await store.children.reclaim(time.time() + 1, []) == 2
    again = await store.children.claim(run_id, 2, owner="wrk_new", lease_s=60)
    assert [c["attempt"] for c in again] == [1, 1]
    late = [ChildFinish(child_id=c["id"], run_id=run_id, status="completed", verdict="passed") for c in claimed]
    assert await store.children.apply([], late, owner="wrk_old") == []
    current = [ChildFinish(child_id=c["id"], run_id=run_id, status="completed", verdict="passed") for c in again]
    events = await store.children.apply([], current, owner="wrk_new")
    assert [e["type"] for e in events] == ["child.finished", "child.finished", "run.finished"]


async def test_a_cancellation_written_elsewhere_stops_every_worker(store: Store) -> None:
    run_id = await _eval_run(store, 400, latency_ms=30)
    async with AsyncExitStack() as stack:
        workers = [await stack.enter_async_context(_worker(store, f"wrk_{i}", max_concurrency=4)) for i in "ab"]

        async def both_busy() -> bool:
            return all(w.limiter.in_use > 0 for w in workers)

        await _until(both_busy)
        await store.runs.finish(run_id, "cancelled", reason="from another process")
        store.signals.notify("runs")  # as the API process does; without it the workers' polling finds it

        async def all_idle() -> bool:
            return all(w.limiter.in_use == 0 and w.active_runs == 0 for w in workers)

        await _until(all_idle)  # how soon is measured in scripts/bench, not asserted here
    run = await store.runs.get(run_id)
    assert run["status"] == "cancelled" and invariant_violations(run) == []
    assert run["c_completed"] + run["c_cancelled"] == 400
