"""Fairness: a 5-check run created while a 100,000-child run is in progress starts at once and
finishes in about the time it takes alone (both measured in this test, on this machine)."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api, AppFactory
from tests.runner.helpers import (
    Stopwatch,
    add_block,
    add_checks,
    assert_counts_match_children,
    eval_run,
    experiment_run,
    get_run,
    json_inputs,
    services,
    sim,
    wait_for,
)

SMALL_LATENCY_MS = 200
BIG = 100_000


async def _small_run(api: Api, wf: str, big_id: str | None = None) -> dict[str, Any]:
    """Time a 5-check run; with `big_id`, also how far the big run moved meanwhile."""

    async def big_done() -> int:
        return int((await get_run(api, big_id))["completed_document_count"]) if big_id else 0

    out: dict[str, Any] = {"big_at_create": await big_done()}
    clock = Stopwatch()
    run = await eval_run(api, wf)
    await wait_for(
        lambda: get_run(api, run["id"]),
        lambda r: r["counts"]["lifecycle_counts"]["running"] + r["counts"]["lifecycle_counts"]["completed"] > 0,
        60,
    )
    out["started_s"] = clock.elapsed
    if big_id:  # the small run has a running or completed child, and the big run is still going
        big = await get_run(api, big_id)
        assert big["lifecycle"]["status"] == "running" and big["completed_document_count"] < BIG
    done = await api.wait_run(run["id"], within_s=60)
    out["done_s"] = clock.elapsed
    out["big_at_done"] = await big_done()
    assert done["lifecycle"]["status"] == "completed" and done["counts"]["outcome"]["passed"] == 5
    return out


async def test_a_small_run_is_not_starved_by_a_100k_child_run(make_api: AppFactory) -> None:
    api = await make_api()  # default max_concurrency: 32 pass slots shared by every run
    s = services(api)
    wf_small = (await api.post("/v1/workflows", {"name": "small"}, expect=201))["id"]
    small_block = await add_block(api, wf_small, sim(latency_ms=SMALL_LATENCY_MS))
    await add_checks(api, wf_small, small_block, 5)
    solo = await _small_run(api, wf_small)

    wf_big = (await api.post("/v1/workflows", {"name": "big"}, expect=201))["id"]
    big_block = await add_block(api, wf_big, sim(latency_ms=5))
    exp = await s.store.experiments.create(
        workflow_id=wf_big,
        block_id=big_block,
        name="big",
        n_consensus=3,
        documents=[{"handle_inputs": json_inputs(i)} for i in range(BIG)],
    )
    big = await experiment_run(api, exp["id"])
    assert big["total_document_count"] == BIG
    # steady state: the big run saturates every pass slot (and, on 2 cores, the event loop)
    await wait_for(lambda: get_run(api, big["id"]), lambda r: r["completed_document_count"] >= 300, 60)

    loaded = await _small_run(api, wf_small, big["id"])
    moved = loaded["big_at_done"] - loaded["big_at_create"]
    print(
        f"\nsmall run alone: {solo['done_s'] * 1000:.0f} ms; beside the {BIG}-child run: first child after "
        f"{loaded['started_s'] * 1000:.0f} ms, done after {loaded['done_s'] * 1000:.0f} ms "
        f"(x{loaded['done_s'] / solo['done_s']:.2f}) while the big run committed {moved} children"
    )
    # Behind a FIFO the small run would wait for the ~99,000 children queued before it. Served in
    # turn, it is done while the big run commits a few thousand at most. Counted in big-run
    # children, the bound holds however loaded the machine is; a wall-clock ratio (typically x1.5-3
    # here) does not on 2 shared cores, so it is printed, and only gross starvation fails on time.
    assert moved < 10_000
    assert loaded["done_s"] < solo["done_s"] + 20

    clock = Stopwatch()
    await api.post(f"/v1/workflows/experiments/runs/{big['id']}/cancel", expect=200)
    cancelled = await get_run(api, big["id"])
    assert cancelled["lifecycle"]["status"] == "cancelled"
    assert clock.elapsed < 1.0, f"cancelling took {clock.elapsed:.2f}s"
    final = await assert_counts_match_children(api, big["id"])
    assert final["c_cancelled"] > BIG // 2
    await wait_for(lambda: _scheduler_idle(api), bool, 2)


async def _scheduler_idle(api: Api) -> bool:
    scheduler = services(api).scheduler
    return scheduler.limiter.in_use == 0 and scheduler.active_runs == 0
