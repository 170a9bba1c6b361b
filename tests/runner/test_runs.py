"""Runs end to end in process: scopes, errors, retries, caps, and the run-level error paths."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.runner.pages import PAGE
from tests.conftest import AppFactory
from tests.runner.helpers import (
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


@pytest.mark.parametrize(
    ("scope_of", "expected_total"),
    [
        (lambda checks, block: {"type": "single", "eval_id": checks[0]}, 1),
        (lambda checks, block: {"type": "block", "block_id": block}, 3),
        (lambda checks, block: {"type": "workflow"}, 5),
        (lambda checks, block: None, 5),
    ],
    ids=["single", "block", "workflow", "omitted"],
)
async def test_every_eval_scope_runs_its_checks(make_api: AppFactory, scope_of: Any, expected_total: int) -> None:
    api = await make_api()
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block_a, block_b = await add_block(api, wf, {}), await add_block(api, wf, {})
    checks = await add_checks(api, wf, block_a, 3) + await add_checks(api, wf, block_b, 2)
    run = await eval_run(api, wf, scope_of(checks, block_a))
    assert run["lifecycle"]["status"] == "pending" and run["total_evals"] == expected_total
    done = await api.wait_run(run["id"])
    assert done["lifecycle"]["status"] == "completed"
    assert done["counts"]["outcome"] == {"passed": expected_total, "failed": 0, "blocked": 0}
    await assert_counts_match_children(api, run["id"])


async def test_test_runs_share_the_runner(make_api: AppFactory) -> None:
    api = await make_api()
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, {})
    await add_checks(api, wf, block, 2, prefix="wfnodetest")
    run = await eval_run(api, wf, {"type": "block", "block_id": block}, kind="tests")
    assert run["id"].startswith("wftestrun_")
    done = await api.wait_run(run["id"])
    assert done["counts"]["outcome"]["passed"] == 2


@pytest.mark.parametrize("count", [0, PAGE, PAGE + 1], ids=["empty", "one-full-page", "page-plus-one"])
async def test_run_ends_whatever_its_size_against_the_page(make_api: AppFactory, count: int) -> None:
    api = await make_api()
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, {})
    await add_checks(api, wf, block, count)
    run = await eval_run(api, wf)
    done = await api.wait_run(run["id"], within_s=60)
    assert done["lifecycle"]["status"] == "completed"
    assert done["counts"]["lifecycle_counts"]["completed"] == count
    await assert_counts_match_children(api, run["id"])


async def test_the_creating_request_never_waits_for_the_work(make_api: AppFactory) -> None:
    api = await make_api()
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, sim(latency_ms=60_000))
    await add_checks(api, wf, block, 3)
    run = await eval_run(api, wf)
    assert run["lifecycle"]["status"] == "pending"
    running = await wait_for(
        lambda: get_run(api, run["id"]), lambda r: r["counts"]["lifecycle_counts"]["running"] == 3, 10
    )
    assert running["lifecycle"]["status"] == "running"
    await api.post(run_cancel(run["id"]), expect=200)


def run_cancel(run_id: str) -> str:
    return f"/v1/workflows/evals/runs/{run_id}/cancel"


async def test_per_run_concurrency_caps_children_in_flight(make_api: AppFactory) -> None:
    api = await make_api(per_run_concurrency=2)
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, sim(latency_ms=15))
    await add_checks(api, wf, block, 12)
    run = await eval_run(api, wf)
    peaks: list[int] = []

    def observe(r: dict[str, Any]) -> None:
        peaks.append(r["counts"]["lifecycle_counts"]["running"])

    done = await api.wait_run(run["id"], check=observe)
    assert done["lifecycle"]["status"] == "completed"
    assert max(peaks) <= 2
    assert max(peaks) >= 1


async def test_transient_errors_are_retried_and_counted(make_api: AppFactory) -> None:
    api = await make_api()
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, {"n_consensus": 3, **sim(transient_error_rate=1.0)})
    await add_checks(api, wf, block, 4)
    run = await eval_run(api, wf)
    done = await api.wait_run(run["id"])
    assert done["lifecycle"]["status"] == "completed"
    assert done["counts"]["outcome"] == {"passed": 4, "failed": 0, "blocked": 0}
    # every pass failed once, then succeeded: 4 children x 3 passes
    assert done["stats"]["retried"] == 12
    assert done["stats"].get("failed_passes", 0) == 0


async def test_permanent_errors_block_eval_children(make_api: AppFactory) -> None:
    api = await make_api()
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, sim(error_rate=1.0))
    await add_checks(api, wf, block, 3)
    run = await eval_run(api, wf)
    done = await api.wait_run(run["id"])
    assert done["lifecycle"]["status"] == "completed"
    assert done["counts"]["lifecycle_counts"]["completed"] == 3
    assert done["counts"]["outcome"] == {"passed": 0, "failed": 0, "blocked": 3}
    assert done["stats"].get("retried", 0) == 0  # permanent errors are not retried
    results = await api.get("/v1/workflows/evals/results", params={"run_id": run["id"]}, expect=200)
    for r in results["data"]:
        assert r["verdict"] == "blocked"
        assert r["assertion_result"]["failure"]["code"] == "block_execution_failed"


async def test_pass_timeout_is_a_transient_error(make_api: AppFactory) -> None:
    api = await make_api(pass_timeout_s=0.05, pass_retries=1)
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, sim(latency_ms=5_000))
    await add_checks(api, wf, block, 2)
    run = await eval_run(api, wf)
    done = await api.wait_run(run["id"], within_s=20)
    assert done["counts"]["outcome"]["blocked"] == 2
    assert done["stats"]["timed_out"] == 4 and done["stats"]["retried"] == 2


async def test_experiment_documents_err_on_permanent_errors_and_the_run_errs_when_all_do(
    make_api: AppFactory,
) -> None:
    api = await make_api()
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, sim(error_rate=1.0))
    exp = await experiment(api, wf, block, 5)
    run = await experiment_run(api, exp)
    done = await api.wait_run(run["id"])
    assert done["lifecycle"]["status"] == "error"
    assert done["error_count"] == 5
    assert done["lifecycle"]["details"]["error_code"] == "all_documents_failed"
    results = await api.get("/v1/workflows/experiments/results", params={"run_id": run["id"]}, expect=200)
    assert {r["lifecycle"]["status"] for r in results["data"]} == {"error"}
    await assert_counts_match_children(api, run["id"])


async def test_some_documents_failing_leave_the_experiment_completed(make_api: AppFactory) -> None:
    api = await make_api()
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, sim(error_rate=0.5))
    exp = await experiment(api, wf, block, 40, n_consensus=3)
    run = await experiment_run(api, exp)
    done = await api.wait_run(run["id"])
    # a document errs only when all 3 passes fail (p = 1/8): some do, most do not
    assert done["lifecycle"]["status"] == "completed"
    assert 0 < done["error_count"] < 40
    assert done["completed_document_count"] + done["error_count"] == 40
    await assert_counts_match_children(api, run["id"])


async def test_run_whose_block_is_gone_when_it_executes_ends_in_error(make_api: AppFactory) -> None:
    api = await make_api()
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, {})
    exp = await experiment(api, wf, block, 3)
    s = services(api)
    exp_row = await s.store.experiments.get(exp)
    # Remove the block, then create the run row behind the service's back: the scheduler finds it (by its
    # poll, or at once where the store's commit wakes the workers, as PostgreSQL's does) without the block.
    await api.delete(f"/v1/workflows/blocks/{block}", expect=204)
    row, _ = await s.store.runs.create_run(
        {
            "id": "exprun_gone",
            "kind": "experiment",
            "workflow_id": wf,
            "workflow_version_id": "draft_x",
            "workflow_name": "wf",
            "experiment_id": exp,
            "block_id": block,
            "block_type": "extract",
            "n_consensus": exp_row["n_consensus"],
        },
        experiment_id=exp,
    )
    s.scheduler.submit(row["id"])
    done = await api.wait_run(row["id"], within_s=10)
    assert done["lifecycle"]["status"] == "error"
    assert done["lifecycle"]["message"] == f"Block {block} no longer exists in workflow {wf}"
    assert done["lifecycle"]["details"]["error_code"] == "block_not_found"
    assert done["counts"]["lifecycle_counts"]["cancelled"] == 3  # nothing is left open
    await assert_counts_match_children(api, row["id"])


async def test_scoped_eval_run_whose_block_is_gone_ends_in_error(make_api: AppFactory) -> None:
    api = await make_api(max_concurrency=1)
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, {})
    await add_checks(api, wf, block, 2)
    s = services(api)
    run = await eval_run(api, wf, {"type": "block", "block_id": block})
    assert (await api.wait_run(run["id"]))["lifecycle"]["status"] == "completed"
    # The API refuses to create a run on a missing block: write the run row directly, as if the
    # block had been deleted between the request and the start.
    await s.store.workflows.delete_block(block)
    again, _ = await s.store.runs.create_run(
        {
            "id": "wfevalrun_gone",
            "kind": "eval",
            "workflow_id": wf,
            "workflow_version_id": "draft_x",
            "workflow_name": "wf",
            "block_id": block,
            "scope": {"type": "block", "block_id": block},
        },
        [{"check_id": None, "block_id": block, "block_type": "extract", "handle_inputs": {}}],
    )
    s.scheduler.submit(again["id"])
    failed = await api.wait_run(again["id"], within_s=10)
    assert failed["lifecycle"]["status"] == "error"
    assert failed["lifecycle"]["details"]["error_code"] == "block_not_found"
    await assert_counts_match_children(api, again["id"])


async def test_workflow_wide_run_blocks_the_checks_of_a_deleted_block(make_api: AppFactory) -> None:
    api = await make_api()
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    keep, gone = await add_block(api, wf, {}), await add_block(api, wf, {})
    await add_checks(api, wf, keep, 2)
    await add_checks(api, wf, gone, 2)
    await api.delete(f"/v1/workflows/blocks/{gone}", expect=204)
    run = await eval_run(api, wf)
    done = await api.wait_run(run["id"])
    assert done["lifecycle"]["status"] == "completed"
    assert done["counts"]["outcome"] == {"passed": 2, "failed": 0, "blocked": 2}


async def test_children_finishing_together_share_one_transaction(make_api: AppFactory) -> None:
    api = await make_api(commit_interval_ms=20)
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, {})
    await add_checks(api, wf, block, 300)
    store = services(api).store
    batches: list[int] = []
    apply = store.children.apply

    async def counting(starts: Any, finishes: Any, **kw: Any) -> Any:
        batches.append(len(finishes))
        return await apply(starts, finishes, **kw)

    store.children.apply = counting  # type: ignore[method-assign]
    run = await eval_run(api, wf)
    done = await api.wait_run(run["id"])
    assert done["counts"]["lifecycle_counts"]["completed"] == 300
    assert sum(batches) == 300
    assert len([b for b in batches if b]) < 300 // 5, batches  # far fewer transactions than children
    assert max(batches) > 10


async def test_an_executor_bug_fails_the_child_not_the_run(make_api: AppFactory, monkeypatch: Any) -> None:
    api = await make_api()
    wf = (await api.post("/v1/workflows", {"name": "wf"}, expect=201))["id"]
    block = await add_block(api, wf, {})
    await add_checks(api, wf, block, 4)
    executor = services(api).scheduler.executor
    real = executor.execute

    async def flaky(ctx: Any, child: Any, ticket: Any = None, prep: Any = None) -> Any:
        if child["position"] == 2:
            raise RuntimeError("bug")
        return await real(ctx, child, ticket, prep)

    monkeypatch.setattr(executor, "execute", flaky)
    run = await eval_run(api, wf)
    done = await api.wait_run(run["id"])
    assert done["lifecycle"]["status"] == "completed"
    assert done["counts"]["lifecycle_counts"]["error"] == 1 and done["counts"]["outcome"]["passed"] == 3
    await assert_counts_match_children(api, run["id"])
