"""Fairness: a 5-check run created while a 100,000-child run is in progress is served in turn, not
after the big run's queue. Measured in the big run's own children, on the global feed order (gseq),
so the bound holds however loaded the machine is: no wall-clock threshold."""

from __future__ import annotations

import anyio
import pytest

from orchestrator.settings import Settings
from tests.conftest import AUTH, Api, AppFactory
from tests.feed.conftest import sse_messages
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

LATENCY_MS = 5  # both runs: how many big children finish meanwhile then depends on turns, not on speeds
SMALL = 5
BIG = 100_000


async def last_gseq(api: Api) -> int:
    """The newest committed event across all runs: the all-runs feed's snapshot says it first."""
    resp = await api.client.get("/v1/events", headers=AUTH)
    async for msg in sse_messages(resp):
        if msg.data is not None:
            resp.close()
            assert msg.data["type"] == "snapshot"
            return int(msg.data["gseq"])
    raise AssertionError("the all-runs feed ended before its snapshot")


async def big_children_until_small_ends(api: Api, after: int, small_id: str, big_id: str, bound: int) -> int:
    """How many of the big run's children were committed after `after` (gseq) and before the small run
    finished, read in commit order from the all-runs feed; stops early once more than `bound` were."""
    moved = 0
    resp = await api.client.get("/v1/events", headers={**AUTH, "Last-Event-ID": str(after)})
    with anyio.fail_after(120):
        async for msg in sse_messages(resp):
            event = msg.data
            if event is None or event.get("gseq") is None:
                continue  # keep-alive or control event (`lagged` is followed by an exact replay)
            if event["type"] == "child.finished" and event["run_id"] == big_id:
                moved += 1
                if moved > bound:
                    break
            elif event["type"] == "run.finished" and event["run_id"] == small_id:
                break
    resp.close()
    return moved


@pytest.mark.parametrize(
    "max_loop_lag_ms",
    [
        pytest.param(0.0, id="round_robin_alone"),  # no admission control: a FIFO would starve the small run
        pytest.param(Settings().max_loop_lag_ms, id="with_lag_admission"),  # as served by default
    ],
)
async def test_a_small_run_is_not_starved_by_a_100k_child_run(make_api: AppFactory, max_loop_lag_ms: float) -> None:
    # default max_concurrency: 32 workers and pass slots shared by every run
    api = await make_api(max_loop_lag_ms=max_loop_lag_ms)
    s = services(api)
    wf_small = (await api.post("/v1/workflows", {"name": "small"}, expect=201))["id"]
    small_block = await add_block(api, wf_small, sim(latency_ms=LATENCY_MS))
    await add_checks(api, wf_small, small_block, SMALL)
    clock = Stopwatch()
    solo = await api.wait_run((await eval_run(api, wf_small))["id"])
    solo_s = clock.elapsed
    assert solo["lifecycle"]["status"] == "completed"

    wf_big = (await api.post("/v1/workflows", {"name": "big"}, expect=201))["id"]
    big_block = await add_block(api, wf_big, sim(latency_ms=LATENCY_MS))
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

    # Behind a FIFO the small run would wait for every big child queued before it (~99,700). Served in
    # turn, only what was already under way goes first: each of its two writes before it reaches the
    # workers (creation, start) may queue behind one group commit of the big run (at most commit_batch
    # children), a third commit may slip in between, and then round-robin gives it the next free worker
    # and pass slot, so per round of its own (one per child at worst, while the loop is saturated) only
    # the big children in flight (at most max_concurrency) finish first; a few rounds more for slack.
    bound = 3 * s.settings.commit_batch + (SMALL + 3) * s.settings.max_concurrency
    before = await last_gseq(api)
    clock = Stopwatch()
    small = await eval_run(api, wf_small)
    moved = await big_children_until_small_ends(api, before, small["id"], big["id"], bound)
    assert moved <= bound, f"the big run committed more than {bound} children before the small run ended"
    done = await api.wait_run(small["id"])
    print(
        f"\n{SMALL}-check run alone: {solo_s * 1000:.0f} ms; beside the {BIG}-child run: {clock.elapsed * 1000:.0f} ms,"
        f" while {moved} big children were committed (bound {bound})"
    )
    assert done["lifecycle"]["status"] == "completed" and done["counts"]["outcome"]["passed"] == SMALL
    running = await get_run(api, big["id"])
    assert running["lifecycle"]["status"] == "running" and running["completed_document_count"] < BIG

    clock = Stopwatch()
    await api.post(f"/v1/workflows/experiments/runs/{big['id']}/cancel", expect=200)
    cancelled = await get_run(api, big["id"])
    assert cancelled["lifecycle"]["status"] == "cancelled"
    print(f"cancelling the big run took {clock.elapsed * 1000:.0f} ms")
    final = await assert_counts_match_children(api, big["id"])
    assert final["c_cancelled"] > BIG // 2
    await wait_for(lambda: _scheduler_idle(api), bool, 10)


async def _scheduler_idle(api: Api) -> bool:
    scheduler = services(api).scheduler
    return scheduler.limiter.in_use == 0 and scheduler.active_runs == 0
