"""Cancellation: terminal at once, nothing left open, in-flight passes stopped, no late commits."""

from __future__ import annotations

import pytest

from orchestrator.runner.scheduler import Scheduler
from orchestrator.service import Services
from tests.conftest import AppFactory
from tests.runner.helpers import (
    OPEN,
    Stopwatch,
    add_block,
    add_checks,
    assert_counts_match_children,
    eval_run,
    experiment,
    experiment_run,
    get_run,
    services,
    sim,
    wait_for,
)
from tests.sqlite_util import db_of


async def _idle(s: Services[Scheduler]) -> bool:
    """Every limiter slot is back and no run is left in the scheduler."""
    return s.scheduler.limiter.in_use == 0 and s.scheduler.active_runs == 0


async def _in_use(s: Services[Scheduler]) -> int:
    return s.scheduler.limiter.in_use


@pytest.mark.stores("sqlite")  # reads or writes the SQLite file directly
@pytest.mark.parametrize("kind", ["eval", "experiment"])
async def test_cancel_mid_run_leaves_nothing_open(make_api: AppFactory, kind: str) -> None:
    api = await make_api(max_concurrency=8)
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, sim(latency_ms=10))
    if kind == "eval":
        await add_checks(api, wf, block, 400)
        run = await eval_run(api, wf)
        cancel = f"/v1/workflows/evals/runs/{run['id']}/cancel"
    else:
        run = await experiment_run(api, await experiment(api, wf, block, 400))
        cancel = f"/v1/workflows/experiments/runs/{run['id']}/cancel"
    await wait_for(lambda: get_run(api, run["id"]), lambda r: r["counts"]["lifecycle_counts"]["completed"] >= 20)
    clock = Stopwatch()
    await api.post(cancel, expect=200)
    after = await get_run(api, run["id"])
    assert clock.elapsed < 1.0
    assert after["lifecycle"] == {"status": "cancelled", "reason": "cancelled by request"}
    lc = after["counts"]["lifecycle_counts"]
    assert lc["pending"] == lc["queued"] == lc["running"] == 0
    assert lc["cancelled"] > 0 and lc["completed"] >= 20
    # in-flight passes stop: every limiter slot comes back and the run leaves the scheduler
    s = services(api)
    await wait_for(lambda: _idle(s), bool, 1.0)
    final = await assert_counts_match_children(api, run["id"])
    # no result lands after the cancellation
    assert (final["c_completed"], final["c_cancelled"]) == (lc["completed"], lc["cancelled"])
    rows = await db_of(s.store).fetchall(
        "SELECT DISTINCT cancel_reason FROM children WHERE run_id = ? AND status = 'cancelled'", (run["id"],)
    )
    assert [r["cancel_reason"] for r in rows] == ["cancelled by request"]
    recount = await s.store.children.recount(run["id"])
    assert not any(recount.get(f"c_{st}") for st in OPEN)


async def test_cancel_stops_passes_that_would_run_for_a_minute(make_api: AppFactory) -> None:
    api = await make_api()
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, {"n_consensus": 3, **sim(latency_ms=60_000)})
    await add_checks(api, wf, block, 50)
    run = await eval_run(api, wf)
    s = services(api)
    await wait_for(lambda: _in_use(s), lambda n: n == 32, 10)
    clock = Stopwatch()
    cancelled = await api.post(f"/v1/workflows/evals/runs/{run['id']}/cancel", expect=200)
    assert cancelled["lifecycle"]["status"] == "cancelled"
    await wait_for(lambda: _idle(s), bool, 1.0)
    assert clock.elapsed < 1.0
    final = await assert_counts_match_children(api, run["id"])
    assert final["c_cancelled"] == 50


async def test_cancel_right_after_creation(make_api: AppFactory) -> None:
    api = await make_api()
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, sim(latency_ms=5))
    await add_checks(api, wf, block, 300)
    run = await eval_run(api, wf)
    await api.post(f"/v1/workflows/evals/runs/{run['id']}/cancel", expect=200)
    await wait_for(lambda: _idle(services(api)), bool, 2.0)
    final = await assert_counts_match_children(api, run["id"])
    assert final["status"] == "cancelled" and final["c_cancelled"] + final["c_completed"] == 300


async def test_cancelling_a_terminal_run_is_refused(make_api: AppFactory) -> None:
    api = await make_api()
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, {})
    await add_checks(api, wf, block, 2)
    run = await eval_run(api, wf)
    await api.wait_run(run["id"])
    body = await api.post(f"/v1/workflows/evals/runs/{run['id']}/cancel", expect=404)
    assert body["detail"]["code"] == "not_cancellable"
    assert (await get_run(api, run["id"]))["lifecycle"]["status"] == "completed"
