"""Test runs in both dialects: flat SDK143–155 (`/v1/workflows/tests/runs`, scope or test_id/target) and
the seed era (`POST /v1/workflows/{workflow_id}/tests/runs`, nested results), with seed 002/004 shapes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.test_support import SLOW, assert_envelope, create_eval, file_input, raw
from tests.conftest import Api

# The response examples of reference pages 002 (create) and 004 (get), verbatim.
SEED_002: dict[str, Any] = {
    "id": "wftestrun_q1z2",
    "workflow": {
        "workflow_id": "wf_abc123xyz",
        "version_id": "draft_2026_05_18",
        "name_at_run_time": "Invoice workflow",
        "requested_version": "draft",
    },
    "trigger": {"type": "api"},
    "lifecycle": {"status": "pending"},
    "timing": {"created_at": "2026-05-18T10:00:00Z", "started_at": None, "completed_at": None},
    "test_id": "wfnodetest_hsLEQiM61ez9Piv147MWk",
    "target": {"type": "block", "block_id": "block_extract_invoice"},
    "total_tests": 1,
    "counts": {"queued": 1, "running": 0, "passed": 0, "failed": 0, "blocked": 0, "error": 0, "cancelled": 0},
}
SEED_004: dict[str, Any] = {
    "id": "wftestrun_q1z2",
    "workflow": {"workflow_id": "wf_abc123xyz", "version_id": "draft_2026_05_18"},
    "trigger": {"type": "api"},
    "lifecycle": {"status": "completed"},
    "timing": {
        "created_at": "2026-05-18T10:00:00Z",
        "started_at": "2026-05-18T10:00:01Z",
        "completed_at": "2026-05-18T10:00:29Z",
        "duration_ms": 28000,
    },
    "test_id": "wfnodetest_hsLEQiM61ez9Piv147MWk",
    "target": {"type": "block", "block_id": "block_extract_invoice"},
    "total_tests": 1,
    "counts": {"queued": 0, "running": 0, "passed": 1, "failed": 0, "blocked": 0, "error": 0, "cancelled": 0},
}
SEED_LIFECYCLES = {"pending", "running", "awaiting_review", "completed", "error", "cancelled"}  # no `queued`


# Typed `… | null` (or optional) on the pages: present, but null is a legal value.
NULLABLE = {"$.test_id", "$.target", "$.timing.started_at", "$.timing.completed_at", "$.timing.duration_ms"}


def same_shape(example: Any, actual: Any, where: str = "$") -> None:
    """Every key of the example exists with the same JSON type (a null in the example means any value)."""
    if example is None or (actual is None and where in NULLABLE):
        return
    if isinstance(example, dict):
        assert isinstance(actual, dict), (where, actual)
        for k, v in example.items():
            assert k in actual, f"{where}.{k} missing"
            same_shape(v, actual[k], f"{where}.{k}")
        return
    if isinstance(example, bool) or isinstance(example, int):
        assert type(actual) is type(example), (where, actual)
        return
    assert isinstance(actual, type(example)), (where, actual)


def check_seed_run(body: dict[str, Any], example: dict[str, Any]) -> None:
    same_shape(example, body)
    assert body["lifecycle"]["status"] in SEED_LIFECYCLES, body["lifecycle"]
    if body["lifecycle"]["status"] == "error":
        assert isinstance(body["lifecycle"]["message"], str)
    flat = {k: body["counts"][k] for k in example["counts"]}
    assert sum(flat.values()) == body["total_tests"]


async def setup(api: Api, config: dict[str, Any] | None = None) -> dict[str, Any]:
    wf, block = await api.workflow_with_extract(config)
    inputs = await file_input(api)
    t1 = await create_eval(api, wf, block, inputs, dialect="tests")
    t2 = await create_eval(api, wf, block, inputs, dialect="tests")
    return {"wf": wf, "block": block, "t1": t1["id"], "t2": t2["id"]}


@pytest.mark.parametrize(
    ("body", "total", "single"),
    [
        ({"scope": {"type": "single", "test_id": "T1"}}, 1, True),
        ({"scope": {"type": "block", "block_id": "B"}}, 2, False),
        ({"scope": {"type": "workflow"}}, 2, False),
        ({}, 2, False),
        ({"test_id": "T1"}, 1, True),  # 0.0.142 snapshot bodies
        ({"target": {"type": "block", "block_id": "B"}}, 2, False),
        ({"test_id": "T1", "n_consensus": 3}, 1, True),
    ],
)
async def test_flat_test_runs(api: Api, body: dict[str, Any], total: int, single: bool) -> None:
    ids = await setup(api)
    sub = {"T1": ids["t1"], "B": ids["block"]}

    def fill(v: Any) -> Any:
        return {k: fill(x) for k, x in v.items()} if isinstance(v, dict) else sub.get(v, v)

    run = await api.post("/v1/workflows/tests/runs", {"workflow_id": ids["wf"], **fill(body)}, expect=201)
    assert run["id"].startswith("wftestrun_") and run["total_tests"] == total
    assert run["test_id"] == (ids["t1"] if single else None)
    check_seed_run(run, SEED_002)
    done = await api.wait_run(run["id"])
    assert done["lifecycle"]["status"] == "completed"
    check_seed_run(done, SEED_004)
    assert done["counts"]["passed"] == total
    if "n_consensus" in body:
        assert done["n_consensus"] == 3
    results = await api.get("/v1/workflows/tests/results", params={"run_id": run["id"]}, expect=200)
    assert len(results["data"]) == total
    for r in results["data"]:
        assert r["workflow_test_run_id"] == run["id"] and r["run_id"] == run["id"]
        one = await api.get(f"/v1/workflows/tests/results/{r['id']}", expect=200)
        assert one["test_id"] == r["test_id"] and one["verdict"] == "passed"
    listed = await api.get("/v1/workflows/tests/runs", params={"workflow_id": ids["wf"]}, expect=200)
    assert [r["id"] for r in listed["data"]] == [run["id"]]
    by_test = await api.get("/v1/workflows/tests/runs", params={"test_id": ids["t1"]}, expect=200)
    assert [r["id"] for r in by_test["data"]] == ([run["id"]] if single else [])


async def test_flat_test_run_errors(api: Api) -> None:
    ids = await setup(api)
    wf = ids["wf"]
    for body, status in (
        ({"workflow_id": wf, "n_consensus": 4}, 422),
        ({"workflow_id": wf, "test_id": "wfnodetest_nope"}, 404),
        ({"workflow_id": wf, "scope": {"type": "single", "test_id": "wfnodetest_nope"}}, 404),
        ({"workflow_id": wf, "target": {"type": "block", "block_id": "blk_nope"}}, 404),
        ({"workflow_id": "wf_nope"}, 404),
        ({}, 422),
    ):
        assert_envelope(await raw(api, "POST", "/v1/workflows/tests/runs", json=body), status)
    assert_envelope(await raw(api, "GET", "/v1/workflows/tests/runs/wftestrun_nope"), 404)
    assert_envelope(await raw(api, "GET", "/v1/workflows/tests/results", params={"run_id": "wftestrun_x"}), 404)
    assert_envelope(await raw(api, "GET", "/v1/workflows/tests/results/wftestresult_x"), 404)


@pytest.mark.parametrize(
    ("body", "total", "single"),
    [
        ({"test_id": "T1"}, 1, True),
        ({"target": {"type": "block", "block_id": "B"}}, 2, False),
        ({}, 2, False),
        (None, 2, False),
        ({"test_id": "T1", "n_consensus": 5}, 1, True),
        ({"n_consensus": 7}, 2, False),
    ],
)
async def test_nested_seed_test_runs(api: Api, body: dict[str, Any] | None, total: int, single: bool) -> None:
    ids = await setup(api)
    sub = {"T1": ids["t1"], "B": ids["block"]}
    payload = None
    if body is not None:
        payload = {
            k: ({**v, "block_id": ids["block"]} if isinstance(v, dict) else sub.get(v, v)) for k, v in body.items()
        }
    created = await raw(
        api, "POST", f"/v1/workflows/{ids['wf']}/tests/runs", json=payload, headers={"Api-Key": "test-key"}
    )
    assert created.status == 201, created.body
    run = created.body
    check_seed_run(run, SEED_002)
    assert run["total_tests"] == total and run["test_id"] == (ids["t1"] if single else None)
    assert run["workflow"]["workflow_id"] == ids["wf"] and run["trigger"] == {"type": "api"}
    if single or "target" in (body or {}):
        assert run["target"] == {"type": "block", "block_id": ids["block"]}
    seen: list[str] = []

    def observe(r: dict[str, Any]) -> None:
        seen.append(r["lifecycle"]["status"])
        check_seed_run(r, SEED_004)

    done = await api.wait_run(run["id"], check=observe)
    assert done["lifecycle"]["status"] == "completed" and "queued" not in seen
    if body and "n_consensus" in body:
        assert done["n_consensus"] == body["n_consensus"]
    # nested results: list by run, get by test id
    rows = await raw(api, "GET", f"/v1/workflows/tests/runs/{run['id']}/results", headers={"Api-Key": "test-key"})
    assert rows.status == 200 and len(rows.body["data"]) == total
    assert rows.body["list_metadata"] == {"before": None, "after": None}
    one = await api.get(f"/v1/workflows/tests/runs/{run['id']}/results/{ids['t1']}", expect=200)
    assert one["test_id"] == ids["t1"] and one["run_id"] == run["id"] and one["target"]["block_id"] == ids["block"]
    assert one["source"]["type"] == "manual" and one["lifecycle"]["status"] == "completed"


async def test_nested_test_run_errors(api: Api) -> None:
    ids = await setup(api)
    url = f"/v1/workflows/{ids['wf']}/tests/runs"
    for body, status in (
        ({"n_consensus": 4}, 422),
        ({"n_consensus": 1}, 422),
        ({"n_consensus": "three"}, 422),
        ({"test_id": ids["t1"], "target": {"type": "block", "block_id": ids["block"]}}, 422),
        ({"test_id": "wfnodetest_nope"}, 404),
        ({"target": {"type": "block", "block_id": "blk_nope"}}, 404),
        ({"target": {"block_id": ids["block"], "type": "workflow"}}, 422),
    ):
        assert_envelope(await raw(api, "POST", url, json=body), status)
    assert_envelope(await raw(api, "POST", "/v1/workflows/wf_nope/tests/runs", json={}), 404)
    run = await api.post(url, {"test_id": ids["t1"]}, expect=201)
    await api.wait_run(run["id"])
    assert_envelope(await raw(api, "GET", f"/v1/workflows/tests/runs/{run['id']}/results/{ids['t2']}"), 404)
    assert_envelope(await raw(api, "GET", "/v1/workflows/tests/runs/wftestrun_nope/results"), 404)
    assert_envelope(await raw(api, "GET", f"/v1/workflows/tests/runs/wftestrun_nope/results/{ids['t1']}"), 404)


async def test_cancel_test_run_both_bodies(api: Api) -> None:
    ids = await setup(api, SLOW)
    run = await api.post(f"/v1/workflows/{ids['wf']}/tests/runs", {}, expect=201)
    # seed-era clients send `{}`, generated SDKs send no body at all
    cancelled = await api.post(f"/v1/workflows/tests/runs/{run['id']}/cancel", {}, expect=200)
    check_seed_run(cancelled, SEED_004)
    assert cancelled["lifecycle"]["status"] == "cancelled" and cancelled["counts"]["cancelled"] == 2
    assert_envelope(await raw(api, "POST", f"/v1/workflows/tests/runs/{run['id']}/cancel"), 404)
    run2 = await api.post("/v1/workflows/tests/runs", {"workflow_id": ids["wf"]}, expect=201)
    r = await raw(
        api, "POST", f"/v1/workflows/tests/runs/{run2['id']}/cancel", headers={"Content-Type": "application/json"}
    )
    assert r.status == 200 and r.body["lifecycle"]["status"] == "cancelled"


async def test_test_run_list_comma_joined_filters(api: Api) -> None:
    """REPO141 sends `statuses` and `trigger_types` comma-joined."""
    ids = await setup(api)
    run = await api.post(f"/v1/workflows/{ids['wf']}/tests/runs", {}, expect=201)
    await api.wait_run(run["id"])
    for params, want in (
        ({"statuses": "completed,cancelled"}, [run["id"]]),
        ({"statuses": "running,error"}, []),
        ({"trigger_types": "manual,api"}, [run["id"]]),
        ({"target_block_id": ids["block"]}, []),  # a workflow-wide run has no target block
    ):
        page = await api.get("/v1/workflows/tests/runs", params={**params, "workflow_id": ids["wf"]}, expect=200)
        assert [r["id"] for r in page["data"]] == want, params
