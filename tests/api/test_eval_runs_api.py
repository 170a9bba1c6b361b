"""Eval runs (SDK160 §2.7–2.8): scopes, list filters, pagination, cancel, results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from retab.types.workflows.evals.results import WorkflowEvalResult
from retab.types.workflows.evals.runs import WorkflowEvalRun

from tests.api.test_support import SLOW, assert_envelope, collect, create_eval, file_input, raw, sdk, sdk_page
from tests.conftest import Api


def check_counts(run: dict[str, Any]) -> None:
    parsed = sdk(WorkflowEvalRun, run)
    lc, oc = run["counts"]["lifecycle_counts"], run["counts"]["outcome"]
    assert sum(lc.values()) == parsed.total_evals
    assert sum(oc.values()) == lc["completed"]


async def two_blocks_three_evals(api: Api, config: dict[str, Any] | None = None) -> dict[str, Any]:
    wf, b1 = await api.workflow_with_extract(config)
    b2 = (
        await api.post(
            "/v1/workflows/blocks",
            {"workflow_id": wf, "type": "extract", "config": {"model": "simulated", **(config or {})}},
            expect=201,
        )
    )["id"]
    inputs = await file_input(api)
    e1 = await create_eval(api, wf, b1, inputs)
    e2 = await create_eval(
        api,
        wf,
        b1,
        inputs,
        assertion={
            "target": {"output_handle_id": "output-json-0", "path": "total"},
            "condition": {"kind": "equals", "expected": 1},
        },
    )
    e3 = await create_eval(api, wf, b2, inputs)
    return {"wf": wf, "b1": b1, "b2": b2, "e1": e1["id"], "e2": e2["id"], "e3": e3["id"]}


@pytest.mark.parametrize(
    ("scope", "total", "target", "single"),
    [
        ({"type": "single", "eval_id": "E1"}, 1, "B1", True),
        ({"type": "block", "block_id": "B1"}, 2, "B1", False),
        ({"type": "workflow"}, 3, None, False),
        (None, 3, None, False),
    ],
)
async def test_eval_run_scopes(
    api: Api, scope: dict[str, Any] | None, total: int, target: str | None, single: bool
) -> None:
    ids = await two_blocks_three_evals(api)
    sub = {"E1": ids["e1"], "B1": ids["b1"]}
    body: dict[str, Any] = {"workflow_id": ids["wf"]}
    if scope is not None:
        body["scope"] = {k: sub.get(v, v) for k, v in scope.items()}
    run = await api.post("/v1/workflows/evals/runs", body, expect=201)
    check_counts(run)
    assert run["id"].startswith("wfevalrun_") and run["lifecycle"]["status"] == "pending"
    assert run["total_evals"] == total and run["counts"]["lifecycle_counts"]["pending"] == total
    assert run["trigger"] == {"type": "api"} and run["workflow_version_id"].startswith("draft_")
    assert run["eval_id"] == (ids["e1"] if single else None)
    assert run["target"] == ({"type": "block", "block_id": ids["b1"]} if target else None)
    assert run["timing"]["created_at"] and run["timing"]["started_at"] is None

    done = await api.wait_run(run["id"], check=check_counts)
    assert done["lifecycle"]["status"] == "completed"
    assert done["timing"]["completed_at"] and done["timing"]["duration_ms"] is not None
    outcome = done["counts"]["outcome"]
    assert outcome["passed"] + outcome["failed"] == total
    results = await api.get("/v1/workflows/evals/results", params={"run_id": run["id"], "limit": 100}, expect=200)
    sdk_page(WorkflowEvalResult, results)
    assert len(results["data"]) == total
    for r in results["data"]:
        res = sdk(WorkflowEvalResult, r)
        assert res.workflow_eval_run_id == run["id"] and res.workflow_id == ids["wf"]
        assert res.lifecycle.status == "completed" and res.verdict is not None
        assert res.assertion_result is not None and res.verdict_summary is not None
        one = sdk(WorkflowEvalResult, await api.get(f"/v1/workflows/evals/results/{r['id']}", expect=200))
        assert one.id == r["id"] and one.verdict == res.verdict
    verdicts = {r["eval_id"]: r["verdict"] for r in results["data"]}
    if ids["e2"] in verdicts:
        assert verdicts[ids["e2"]] == "failed"
    if ids["e1"] in verdicts:
        assert verdicts[ids["e1"]] == "passed"


async def test_eval_run_with_nothing_in_scope_completes(api: Api) -> None:
    wf, block = await api.workflow_with_extract()
    run = await api.post(
        "/v1/workflows/evals/runs", {"workflow_id": wf, "scope": {"type": "block", "block_id": block}}, expect=201
    )
    assert run["total_evals"] == 0
    done = await api.wait_run(run["id"], within_s=10)
    assert done["lifecycle"]["status"] == "completed"
    check_counts(done)


async def test_eval_run_create_errors(api: Api) -> None:
    ids = await two_blocks_three_evals(api)
    other_wf, other_block = await api.workflow_with_extract()
    other_eval = await create_eval(api, other_wf, other_block, {})
    wf = ids["wf"]
    cases: list[tuple[dict[str, Any], int]] = [
        ({"workflow_id": "wf_nope"}, 404),
        ({"workflow_id": wf, "scope": {"type": "single", "eval_id": "wfnodeeval_nope"}}, 404),
        ({"workflow_id": wf, "scope": {"type": "single", "eval_id": other_eval["id"]}}, 404),
        ({"workflow_id": wf, "scope": {"type": "block", "block_id": "blk_nope"}}, 404),
        ({"workflow_id": wf, "scope": {"type": "block", "block_id": other_block}}, 404),
        ({"workflow_id": wf, "scope": {"type": "single"}}, 422),
        ({"workflow_id": wf, "scope": {"type": "everything"}}, 422),
        ({"workflow_id": wf, "scope": {"eval_id": ids["e1"]}}, 422),
        ({"workflow_id": wf, "scope": "workflow"}, 422),
        ({"scope": {"type": "workflow"}}, 422),
        ({"workflow_id": wf, "n_consensus": 4}, 422),
    ]
    for body, status in cases:
        d = assert_envelope(await raw(api, "POST", "/v1/workflows/evals/runs", json=body), status)
        if status == 422:
            assert d["details"]["errors"], body
    bad_query = await raw(
        api, "POST", "/v1/workflows/evals/runs", json={"workflow_id": wf}, params={"n_consensus": "4"}
    )
    assert_envelope(bad_query, 422)


async def test_eval_run_n_consensus_query_extra(api: Api) -> None:
    """`evals.runs.create(workflow_id=…, n_consensus=5)` sends n_consensus as a query extra (spec §1.4)."""
    ids = await two_blocks_three_evals(api)
    run = await api.post("/v1/workflows/evals/runs", {"workflow_id": ids["wf"]}, params={"n_consensus": 5}, expect=201)
    assert run["n_consensus"] == 5
    await api.wait_run(run["id"])
    results = await api.get("/v1/workflows/evals/results", params={"run_id": run["id"]}, expect=200)
    assert {r["n_passes"] for r in results["data"]} == {5}


async def test_get_and_results_errors(api: Api) -> None:
    assert_envelope(await raw(api, "GET", "/v1/workflows/evals/runs/wfevalrun_nope"), 404, "not_found")
    assert_envelope(await raw(api, "POST", "/v1/workflows/evals/runs/wfevalrun_nope/cancel"), 404)
    assert_envelope(await raw(api, "GET", "/v1/workflows/evals/results"), 422)
    assert_envelope(await raw(api, "GET", "/v1/workflows/evals/results", params={"run_id": "wfevalrun_x"}), 404)
    assert_envelope(await raw(api, "GET", "/v1/workflows/evals/results/wfresult_nope"), 404)
    # an experiment run is not an eval run
    wf, block = await api.workflow_with_extract()
    exp = await api.post("/v1/workflows/experiments", {"workflow_id": wf, "block_id": block}, expect=201)
    xr = await api.post("/v1/workflows/experiments/runs", {"experiment_id": exp["id"]}, expect=201)
    assert_envelope(await raw(api, "GET", f"/v1/workflows/evals/runs/{xr['id']}"), 404)
    assert_envelope(await raw(api, "GET", "/v1/workflows/evals/results", params={"run_id": xr["id"]}), 404)


async def test_cancel_eval_run(api: Api) -> None:
    ids = await two_blocks_three_evals(api, SLOW)
    run = await api.post("/v1/workflows/evals/runs", {"workflow_id": ids["wf"]}, expect=201)
    cancelled = await api.post(f"/v1/workflows/evals/runs/{run['id']}/cancel", expect=200)
    parsed = sdk(WorkflowEvalRun, cancelled)
    assert parsed.lifecycle.status == "cancelled" and parsed.lifecycle.reason
    assert cancelled["counts"]["lifecycle_counts"]["cancelled"] == 3
    assert cancelled["timing"]["completed_at"] is not None
    check_counts(cancelled)
    assert_envelope(await raw(api, "POST", f"/v1/workflows/evals/runs/{run['id']}/cancel"), 404, "not_cancellable")
    results = await api.get("/v1/workflows/evals/results", params={"run_id": run["id"]}, expect=200)
    for r in results["data"]:
        res = sdk(WorkflowEvalResult, r)
        assert res.lifecycle.status == "cancelled" and res.verdict is None
    # terminal runs never change again
    assert (await api.get(f"/v1/workflows/evals/runs/{run['id']}", expect=200))["lifecycle"]["status"] == "cancelled"


async def test_cancel_completed_eval_run_is_404(api: Api) -> None:
    ids = await two_blocks_three_evals(api)
    run = await api.post("/v1/workflows/evals/runs", {"workflow_id": ids["wf"]}, expect=201)
    await api.wait_run(run["id"])
    assert_envelope(await raw(api, "POST", f"/v1/workflows/evals/runs/{run['id']}/cancel"), 404)


async def test_eval_run_list_filters(api: Api) -> None:
    ids = await two_blocks_three_evals(api)
    wf = ids["wf"]
    r_single = await api.post(
        "/v1/workflows/evals/runs", {"workflow_id": wf, "scope": {"type": "single", "eval_id": ids["e1"]}}, expect=201
    )
    r_block = await api.post(
        "/v1/workflows/evals/runs", {"workflow_id": wf, "scope": {"type": "block", "block_id": ids["b2"]}}, expect=201
    )
    await api.wait_run(r_single["id"])
    await api.wait_run(r_block["id"])
    slow_wf, slow_block = await api.workflow_with_extract(SLOW)
    await create_eval(api, slow_wf, slow_block, await file_input(api))
    r_slow = await api.post("/v1/workflows/evals/runs", {"workflow_id": slow_wf}, expect=201)
    r_cancel = await api.post("/v1/workflows/evals/runs", {"workflow_id": slow_wf}, expect=201)
    await api.post(f"/v1/workflows/evals/runs/{r_cancel['id']}/cancel", expect=200)
    everything = {r_single["id"], r_block["id"], r_slow["id"], r_cancel["id"]}

    now = datetime.now(UTC)
    past, future = now - timedelta(days=1), now + timedelta(days=1)
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({}, everything),
        ({"workflow_id": wf}, {r_single["id"], r_block["id"]}),
        ({"eval_id": ids["e1"]}, {r_single["id"]}),
        ({"target_block_id": ids["b2"]}, {r_block["id"]}),
        ({"status": "completed"}, {r_single["id"], r_block["id"]}),
        ({"status": "RunStatus.CANCELLED"}, {r_cancel["id"]}),
        ({"exclude_status": "completed"}, {r_slow["id"], r_cancel["id"]}),
        ({"status": ["completed", "cancelled"]}, {r_single["id"], r_block["id"], r_cancel["id"]}),
        ({"statuses": "completed,cancelled"}, {r_single["id"], r_block["id"], r_cancel["id"]}),
        ({"trigger_type": "api"}, everything),
        ({"trigger_type": "manual"}, set()),
        ({"from_date": str(past)}, everything),  # str(datetime): a space, e.g. 2026-05-18 10:00:00+00:00
        ({"from_date": past.isoformat()}, everything),
        ({"from_date": future.strftime("%Y-%m-%dT%H:%M:%SZ")}, set()),
        ({"to_date": str(past)}, set()),
        ({"to_date": str(future)}, everything),
        ({"from_date": now.date().isoformat()}, everything),
        ({"to_date": now.date().isoformat()}, everything),  # a bare date includes the whole day
        ({"to_date": past.date().isoformat()}, set()),
    ]
    for params, want in cases:
        page = await api.get("/v1/workflows/evals/runs", params={**params, "limit": 100}, expect=200)
        sdk_page(WorkflowEvalRun, page)
        assert {r["id"] for r in page["data"]} == want, params
    for params in ({"status": "failed"}, {"exclude_status": "nope"}, {"from_date": "yesterday"}, {"limit": "x"}):
        assert_envelope(await raw(api, "GET", "/v1/workflows/evals/runs", params=params), 422)
    await api.post(f"/v1/workflows/evals/runs/{r_slow['id']}/cancel", expect=200)


async def test_eval_run_list_paginates(api: Api) -> None:
    wf, block = await api.workflow_with_extract()
    await create_eval(api, wf, block, {})
    made = [(await api.post("/v1/workflows/evals/runs", {"workflow_id": wf}, expect=201))["id"] for _ in range(5)]
    for order in ("asc", "desc"):
        ids = await collect(api, "/v1/workflows/evals/runs", {"workflow_id": wf, "limit": 2, "order": order})
        assert ids == (made if order == "asc" else made[::-1])
    first = await api.get("/v1/workflows/evals/runs", params={"workflow_id": wf, "limit": 5}, expect=200)
    assert first["list_metadata"] == {"before": None, "after": None}
    for rid in made:
        await api.wait_run(rid)


async def test_eval_result_pages(api: Api) -> None:
    wf, block = await api.workflow_with_extract()
    for _ in range(5):
        await create_eval(api, wf, block, {})
    run = await api.post("/v1/workflows/evals/runs", {"workflow_id": wf}, expect=201)
    await api.wait_run(run["id"])
    ids = await collect(api, "/v1/workflows/evals/results", {"run_id": run["id"], "limit": 2})
    assert len(ids) == 5 and len(set(ids)) == 5
    asc = await collect(api, "/v1/workflows/evals/results", {"run_id": run["id"], "limit": 2, "order": "asc"})
    assert asc == ids[::-1]


async def test_block_without_model_uses_the_default_model(api: Api) -> None:
    wf = (await api.post("/v1/workflows", {"project_id": "p"}, expect=201))["id"]
    block = await api.post(
        "/v1/workflows/blocks",
        {"workflow_id": wf, "type": "extract", "config": {"json_schema": {"type": "object"}}},
        expect=201,
    )
    inputs = {"input-json-0": {"type": "json", "data": {"total": 3}}}
    await create_eval(
        api,
        wf,
        block["id"],
        inputs,
        assertion={"target": {"output_handle_id": "output-json-0"}, "condition": {"kind": "exists"}},
    )
    run = await api.post("/v1/workflows/evals/runs", {"workflow_id": wf}, expect=201)
    done = await api.wait_run(run["id"])
    assert done["counts"]["lifecycle_counts"]["error"] == 0, done["counts"]


async def test_failure_shapes_validate_with_the_sdk(api: Api) -> None:
    """A config error is a child `error`; a failing block execution is `completed` + `blocked`."""
    inputs = await file_input(api)
    cases: list[tuple[dict[str, Any], str, str | None]] = [
        ({"model": "no-such-model"}, "error", None),
        ({"simulation": {"error_rate": 1.0}}, "completed", "blocked"),
    ]
    for config, status, verdict in cases:
        wf, block = await api.workflow_with_extract(config)
        await create_eval(api, wf, block, inputs)
        run = await api.post("/v1/workflows/evals/runs", {"workflow_id": wf}, expect=201)
        done = await api.wait_run(run["id"], check=check_counts)
        assert done["lifecycle"]["status"] == "completed"
        assert done["counts"]["lifecycle_counts"][status] == 1
        res = sdk(
            WorkflowEvalResult,
            (await api.get("/v1/workflows/evals/results", params={"run_id": run["id"]}, expect=200))["data"][0],
        )
        assert res.lifecycle.status == status and res.verdict == verdict
        if status == "error":
            assert res.lifecycle.message and res.lifecycle.message != "(no message)"
        else:
            assert res.assertion_result.failure.code == "block_execution_failed"


@pytest.mark.parametrize("scope", [None, "block", "single"])
async def test_eval_run_freshness_follows_the_current_config_and_inputs(api: Api, scope: str | None) -> None:
    """The run's compatibility copy of freshness (spec §3.6): what it recorded against what its scope
    would plan now; the same verdict in the run, the run list and the all-runs list."""
    wf, block = await api.workflow_with_extract()
    ev = await create_eval(api, wf, block, await file_input(api))
    body: dict[str, Any] = {"workflow_id": wf}
    if scope == "block":
        body["scope"] = {"type": "block", "block_id": block}
    elif scope == "single":
        body["scope"] = {"type": "single", "eval_id": ev["id"]}
    created = await api.post("/v1/workflows/evals/runs", body, expect=201)
    run = await api.wait_run(created["id"])

    def verdicts(run: dict[str, Any], listed: dict[str, Any], everything: dict[str, Any]) -> list[Any]:
        mine = [r for r in listed["data"] + everything["data"] if r["id"] == created["id"]]
        return [(f["status"], f["reasons"]) for f in [run["freshness"], *(r["freshness"] for r in mine)]]

    async def read() -> list[Any]:
        got = await api.get(f"/v1/workflows/evals/runs/{created['id']}", expect=200)
        listed = await api.get("/v1/workflows/evals/runs", params={"workflow_id": wf}, expect=200)
        everything = await api.get("/v1/runs", params={"workflow_id": wf}, expect=200)
        assert sdk(WorkflowEvalRun, got).freshness is not None
        return verdicts(got, listed, everything)

    # Pending, it had no verdict and no earlier run to be fresh against (it said "fresh" here before);
    # its fingerprints are those of its plan. Finished, it is its own baseline.
    assert (created["freshness"]["status"], created["freshness"]["reasons"]) == ("unknown", ["no_baseline"])
    assert created["freshness"]["baseline_run_id"] is None
    assert created["freshness"]["validity_fingerprint"] == run["freshness"]["validity_fingerprint"]
    assert run["freshness"]["status"] == "fresh"
    assert run["freshness"]["baseline_run_id"] == created["id"] and run["freshness"]["validity_fingerprint"]
    assert await read() == [("fresh", [])] * 3
    await api.patch(f"/v1/workflows/blocks/{block}", {"config": {"temperature": 0.5}}, expect=200)
    assert await read() == [("stale", ["validity_changed"])] * 3
    await api.patch(f"/v1/workflows/blocks/{block}", {"config": {"temperature": None}}, expect=200)
    assert await read() == [("fresh", [])] * 3
    other = await file_input(api, number="INV-2")
    await api.patch(
        f"/v1/workflows/evals/{ev['id']}", {"source": {"type": "manual", "handle_inputs": other}}, expect=200
    )
    assert await read() == [("stale", ["inputs_changed"])] * 3


async def test_open_runs_and_edits_per_spec_3_6(api: Api) -> None:
    """Pending runs are computed from their plan against the latest completed run of their scope; a block,
    assertion or input edit makes a finished run stale (with its baseline); a single-eval run carries the
    eval's own fingerprints."""
    wf, block = await api.workflow_with_extract({"simulation": {"latency_ms": 600_000}})
    ev = await create_eval(api, wf, block, await file_input(api))
    single = {"workflow_id": wf, "scope": {"type": "single", "eval_id": ev["id"]}}
    await api.patch(f"/v1/workflows/blocks/{block}", {"config": {"simulation": None}}, expect=200)
    first = await api.wait_run((await api.post("/v1/workflows/evals/runs", single, expect=201))["id"])
    assert first["freshness"]["status"] == "fresh" and first["freshness"]["baseline_run_id"] == first["id"]

    the_eval = await api.get(f"/v1/workflows/evals/{ev['id']}", expect=200)
    for key in ("validity_fingerprint", "input_fingerprint"):
        assert first["freshness"][key] == the_eval["freshness"][key], key
    summary = the_eval["latest_run_summary"]
    assert first["freshness"]["validity_fingerprint"] == summary["validity_fingerprint"]
    assert first["freshness"]["input_fingerprint"] == summary["handle_inputs_fingerprint"]

    # A block edit: the finished run is stale (its own baseline); a new pending run says what it will re-check.
    await api.patch(f"/v1/workflows/blocks/{block}", {"config": {"simulation": {"latency_ms": 600_000}}}, expect=200)
    got = await api.get(f"/v1/workflows/evals/runs/{first['id']}", expect=200)
    assert (got["freshness"]["status"], got["freshness"]["reasons"]) == ("stale", ["validity_changed"])
    assert got["freshness"]["baseline_run_id"] == first["id"]
    pending = await api.post("/v1/workflows/evals/runs", single, expect=201)
    assert pending["lifecycle"]["status"] in ("pending", "queued", "running")
    f = pending["freshness"]
    assert (f["status"], f["reasons"], f["baseline_run_id"]) == ("stale", ["validity_changed"], first["id"])
    assert f["validity_fingerprint"] != first["freshness"]["validity_fingerprint"]  # the plan's, not the old
    again = await api.get(f"/v1/workflows/evals/runs/{pending['id']}", expect=200)
    assert again["freshness"] == f
    await api.post(f"/v1/workflows/evals/runs/{pending['id']}/cancel", expect=200)

    # Back to the first config: fresh again; a pending run of it now confirms the baseline.
    await api.patch(f"/v1/workflows/blocks/{block}", {"config": {"simulation": None}}, expect=200)
    got = await api.get(f"/v1/workflows/evals/runs/{first['id']}", expect=200)
    assert got["freshness"]["status"] == "fresh"

    # An assertion edit: stale, validity_changed.
    moved = {**ev["assertion"], "condition": {"kind": "exists"}}
    await api.patch(f"/v1/workflows/evals/{ev['id']}", {"assertion": moved}, expect=200)
    got = await api.get(f"/v1/workflows/evals/runs/{first['id']}", expect=200)
    assert (got["freshness"]["status"], got["freshness"]["reasons"]) == ("stale", ["validity_changed"])

    # An input edit: stale, inputs_changed.
    await api.patch(f"/v1/workflows/evals/{ev['id']}", {"assertion": ev["assertion"]}, expect=200)
    other = await file_input(api, number="INV-2")
    await api.patch(
        f"/v1/workflows/evals/{ev['id']}", {"source": {"type": "manual", "handle_inputs": other}}, expect=200
    )
    got = await api.get(f"/v1/workflows/evals/runs/{first['id']}", expect=200)
    assert (got["freshness"]["status"], got["freshness"]["reasons"]) == ("stale", ["inputs_changed"])
    assert sdk(WorkflowEvalRun, got).freshness is not None
