"""Saved evals (SDK160) and saved tests (flat SDK155 and nested seed-era routes) over one table."""

from __future__ import annotations

from typing import Any

import pytest
from retab.types.workflows.evals import WorkflowEval

from tests.api.test_conditions_wire import VALID_CONDITIONS
from tests.api.test_support import TOTAL_EQUALS, assert_envelope, create_eval, file_input, raw, sdk, sdk_page
from tests.conftest import Api, invoice_text


def assertion(condition: dict[str, Any], path: str = "total") -> dict[str, Any]:
    return {"target": {"output_handle_id": "output-json-0", "path": path}, "condition": condition}


async def test_eval_crud(api: Api) -> None:
    wf, block = await api.workflow_with_extract()
    inputs = await file_input(api)
    ev = await create_eval(api, wf, block, inputs, name="invoice total")
    parsed = sdk(WorkflowEval, ev)
    assert ev["id"].startswith("wfnodeeval_") and parsed.name == "invoice total"
    assert parsed.assertion.id.startswith("assert_") and parsed.target.block_id == block
    assert parsed.freshness.status == "unknown" and parsed.latest_run_summary is None
    assert ev["source"]["handle_inputs"] == inputs  # the SDK routes read a payload back as written

    got = await api.get(f"/v1/workflows/evals/{ev['id']}", expect=200)
    assert got == ev
    listed = await api.get("/v1/workflows/evals", params={"workflow_id": wf}, expect=200)
    sdk_page(WorkflowEval, listed)
    assert [e["id"] for e in listed["data"]] == [ev["id"]]

    # `{}` is a valid update that changes nothing (spec §5 acceptance check)
    same = await api.patch(f"/v1/workflows/evals/{ev['id']}", {}, expect=200)
    assert same == ev
    renamed = await api.patch(f"/v1/workflows/evals/{ev['id']}", {"name": "renamed"}, expect=200)
    assert renamed["name"] == "renamed" and renamed["assertion"] == ev["assertion"]
    new_assert = assertion({"kind": "number_compare", "op": "gt", "expected": 5})
    updated = await api.patch(f"/v1/workflows/evals/{ev['id']}", {"assertion": new_assert}, expect=200)
    sdk(WorkflowEval, updated)
    assert updated["assertion"]["condition"] == {"kind": "number_compare", "op": "gt", "expected": 5}
    json_src = {"type": "manual", "handle_inputs": {"input-json-0": {"type": "json", "data": {"a": 1}}}}
    resourced = await api.patch(f"/v1/workflows/evals/{ev['id']}", {"source": json_src}, expect=200)
    assert resourced["source"] == json_src and resourced["name"] == "renamed"

    assert await api.delete(f"/v1/workflows/evals/{ev['id']}", expect=204) is None
    for method in ("GET", "DELETE"):
        assert_envelope(await raw(api, method, f"/v1/workflows/evals/{ev['id']}"), 404)
    assert_envelope(await raw(api, "PATCH", f"/v1/workflows/evals/{ev['id']}", json={}), 404)


async def test_eval_list_filters_and_errors(api: Api) -> None:
    wf, b1 = await api.workflow_with_extract()
    b2 = (await api.post("/v1/workflows/blocks", {"workflow_id": wf, "type": "extract"}, expect=201))["id"]
    inputs = await file_input(api)
    e1 = await create_eval(api, wf, b1, inputs)
    e2 = await create_eval(api, wf, b2, inputs, name=None)
    assert e2["name"] is None
    only = await api.get("/v1/workflows/evals", params={"workflow_id": wf, "target_block_id": b2}, expect=200)
    assert [e["id"] for e in only["data"]] == [e2["id"]]
    asc = await api.get("/v1/workflows/evals", params={"workflow_id": wf, "order": "asc"}, expect=200)
    assert [e["id"] for e in asc["data"]] == [e1["id"], e2["id"]]
    desc = await api.get("/v1/workflows/evals", params={"workflow_id": wf}, expect=200)
    assert [e["id"] for e in desc["data"]] == [e2["id"], e1["id"]]
    assert_envelope(await raw(api, "GET", "/v1/workflows/evals"), 422)
    assert_envelope(await raw(api, "GET", "/v1/workflows/evals", params={"workflow_id": "wf_nope"}), 404)


@pytest.mark.parametrize("condition", VALID_CONDITIONS, ids=lambda c: str(c["kind"]))
async def test_every_condition_kind_is_accepted(api: Api, condition: dict[str, Any]) -> None:
    wf, block = await api.workflow_with_extract()
    ev = await create_eval(api, wf, block, {}, assertion=assertion(condition))
    parsed = sdk(WorkflowEval, ev)
    assert parsed.assertion.condition.kind == condition["kind"]


@pytest.mark.parametrize(
    "condition",
    [
        {"kind": "nope"},
        {},
        {"kind": "number_compare", "expected": 3},
        {"kind": "number_compare", "op": "bigger", "expected": 3},
        {"kind": "number_compare", "op": "gt", "expected": "3"},
        {"kind": "matches_regex"},
        {"kind": "between", "lower": 1},
        {"kind": "similarity_gte", "reference": "x"},
        {"kind": "all_items_match"},
        {"kind": "all_items_match", "condition": {"kind": "nope"}},
        {"kind": "split_iou_gte", "expected": {"splits": "x"}},
        "equals",
        None,
    ],
)
async def test_bad_conditions_are_422(api: Api, condition: Any) -> None:
    wf, block = await api.workflow_with_extract()
    body = {
        "workflow_id": wf,
        "target": {"type": "block", "block_id": block},
        "source": {"type": "manual", "handle_inputs": {}},
        "assertion": assertion(condition),
    }
    d = assert_envelope(await raw(api, "POST", "/v1/workflows/evals", json=body), 422, "validation_error")
    assert d["details"]["errors"] and d["details"]["errors"][0]["loc"][0] == "assertion"
    ev = await create_eval(api, wf, block, {})
    r = await raw(api, "PATCH", f"/v1/workflows/evals/{ev['id']}", json={"assertion": assertion(condition)})
    assert_envelope(r, 422)
    assert (await api.get(f"/v1/workflows/evals/{ev['id']}", expect=200))["assertion"] == ev["assertion"]


async def test_create_eval_reference_errors(api: Api) -> None:
    wf, block = await api.workflow_with_extract()
    other_wf, other_block = await api.workflow_with_extract()

    def body(**over: Any) -> dict[str, Any]:
        b: dict[str, Any] = {
            "workflow_id": wf,
            "target": {"type": "block", "block_id": block},
            "source": {"type": "manual", "handle_inputs": {}},
            "assertion": TOTAL_EQUALS,
        }
        b.update(over)
        return b

    cases: list[tuple[dict[str, Any], int]] = [
        (body(workflow_id="wf_nope"), 404),
        (body(target={"type": "block", "block_id": "blk_nope"}), 404),
        (body(target={"type": "block", "block_id": other_block}), 404),
        (body(source={"type": "manual", "handle_inputs": {"d": {"type": "file", "document": {"id": "file_x"}}}}), 422),
        (body(source={"type": "run_step", "run_id": "wfrun_1"}), 422),
        (body(source={"type": "carrier_pigeon"}), 422),
        (body(source={"handle_inputs": {}}), 422),
        (body(target={"type": "workflow"}), 422),
        ({k: v for k, v in body().items() if k != "assertion"}, 422),
    ]
    for payload, status in cases:
        assert_envelope(await raw(api, "POST", "/v1/workflows/evals", json=payload), status)
    assert other_wf


async def test_seed_file_payload_with_original_id_is_accepted(api: Api) -> None:
    wf, block = await api.workflow_with_extract()
    doc = await api.upload(invoice_text())
    legacy = {
        "type": "file",
        "document": {"original_id": doc["id"], "filename": "a.txt", "mime_type": "text/plain", "gcs_uri": "gs://x"},
    }
    ev = await create_eval(api, wf, block, {"input-file-document": legacy}, dialect="tests")
    rendered = ev["source"]["handle_inputs"]["input-file-document"]["document"]
    assert rendered["original_id"] == rendered["id"] == doc["id"] and rendered["gcs_uri"] == "gs://x"
    # an SDK160 client reading it needs FileRef.id
    parsed = sdk(WorkflowEval, await api.get(f"/v1/workflows/evals/{ev['id']}", expect=200))
    assert parsed.source.handle_inputs["input-file-document"].document.id == doc["id"]
    run = await api.post(f"/v1/workflows/{wf}/tests/runs", {"test_id": ev["id"]}, expect=201)
    await api.wait_run(run["id"])
    res = await api.get("/v1/workflows/evals/results", params={"run_id": run["id"]}, expect=404)
    assert res["detail"]["code"] == "not_found"  # a test run is not an eval run
    rows = await api.get("/v1/workflows/tests/results", params={"run_id": run["id"]}, expect=200)
    assert rows["data"][0]["verdict"] == "passed"
    assert rows["data"][0]["handle_inputs"]["input-file-document"]["document"]["id"] == doc["id"]


async def test_seed_routes_add_the_materialized_document_keys(api: Api) -> None:
    """REPO141's MaterializedDocument needs `original_id` and `gcs_uri` (Appendix A): the seed-era
    routes add them to payloads written by newer clients; the SDK routes return what was written."""
    wf, block = await api.workflow_with_extract()
    inputs = await file_input(api)
    fid = inputs["input-file-document"]["document"]["id"]
    t = await create_eval(api, wf, block, inputs, dialect="tests")
    assert t["source"]["handle_inputs"] == inputs
    nested = await api.get(f"/v1/workflows/{wf}/tests/{t['id']}", expect=200)
    doc = nested["source"]["handle_inputs"]["input-file-document"]["document"]
    assert doc["original_id"] == doc["id"] == fid and doc["gcs_uri"].endswith(fid)
    listed = await api.get(f"/v1/workflows/{wf}/tests", expect=200)
    assert listed["data"][0]["source"] == nested["source"]
    run = await api.post(f"/v1/workflows/{wf}/tests/runs", {"test_id": t["id"]}, expect=201)
    await api.wait_run(run["id"])
    row = await api.get(f"/v1/workflows/tests/runs/{run['id']}/results/{t['id']}", expect=200)
    assert row["handle_inputs"]["input-file-document"]["document"]["original_id"] == fid
    assert row["source"]["handle_inputs"]["input-file-document"]["document"]["gcs_uri"]
    flat = await api.get("/v1/workflows/tests/results", params={"run_id": run["id"]}, expect=200)
    assert flat["data"][0]["handle_inputs"] == inputs


async def test_saved_tests_share_the_table_across_dialects(api: Api) -> None:
    wf, block = await api.workflow_with_extract()
    other_wf, _ = await api.workflow_with_extract()
    inputs = await file_input(api)
    flat = await create_eval(api, wf, block, inputs, dialect="tests")
    assert flat["id"].startswith("wfnodetest_") and flat["object"] == "workflow_test"
    sdk(WorkflowEval, flat)
    nested_body = {
        "target": {"type": "block", "block_id": block},
        "source": {"type": "manual", "handle_inputs": inputs},
        "assertion": {
            "target": {"output_handle_id": "output-json-0", "path": "total"},
            "condition": {"kind": "exists"},
        },
        "name": "nested",
    }
    nested = await api.post(f"/v1/workflows/{wf}/tests", nested_body, expect=201)
    assert nested["id"].startswith("wfnodetest_") and nested["workflow_id"] == wf
    ev = await create_eval(api, wf, block, inputs)

    want = {flat["id"], nested["id"], ev["id"]}
    for path, params in (
        ("/v1/workflows/tests", {"workflow_id": wf}),
        (f"/v1/workflows/{wf}/tests", {}),
        ("/v1/workflows/evals", {"workflow_id": wf}),
    ):
        page = await api.get(path, params=params, expect=200)
        assert {t["id"] for t in page["data"]} == want, path
    assert (await api.get(f"/v1/workflows/{wf}/tests", params={"target_block_id": "blk_x"}, expect=200))["data"] == []

    for path in (f"/v1/workflows/tests/{nested['id']}", f"/v1/workflows/{wf}/tests/{flat['id']}"):
        got = await api.get(path, expect=200)
        assert got["object"] == "workflow_test"
    assert (await api.get(f"/v1/workflows/evals/{nested['id']}", expect=200))["object"] == "workflow_eval"
    # nested routes check the workflow in the path
    for method, js in (("GET", None), ("PATCH", {"name": "x"}), ("DELETE", None)):
        assert_envelope(await raw(api, method, f"/v1/workflows/{other_wf}/tests/{flat['id']}", json=js), 404)
    assert_envelope(await raw(api, "GET", "/v1/workflows/wf_nope/tests"), 404)
    r = await raw(api, "POST", "/v1/workflows/wf_nope/tests", json=nested_body)
    assert_envelope(r, 404)

    renamed = await api.patch(f"/v1/workflows/{wf}/tests/{flat['id']}", {"name": "seed"}, expect=200)
    assert renamed["name"] == "seed"
    assert (await api.patch(f"/v1/workflows/tests/{flat['id']}", {}, expect=200))["name"] == "seed"
    await api.delete(f"/v1/workflows/{wf}/tests/{flat['id']}", expect=204)
    await api.delete(f"/v1/workflows/tests/{nested['id']}", expect=204)
    assert_envelope(await raw(api, "GET", f"/v1/workflows/evals/{flat['id']}"), 404, "not_found")
    assert_envelope(await raw(api, "GET", f"/v1/workflows/tests/{nested['id']}"), 404)
    left = await api.get("/v1/workflows/tests", params={"workflow_id": wf}, expect=200)
    assert [t["id"] for t in left["data"]] == [ev["id"]]


async def test_latest_run_summary_and_freshness(api: Api) -> None:
    wf, block = await api.workflow_with_extract()
    inputs = await file_input(api)
    ev = await create_eval(api, wf, block, inputs)
    run = await api.post("/v1/workflows/evals/runs", {"workflow_id": wf}, expect=201)
    await api.wait_run(run["id"])
    got = await api.get(f"/v1/workflows/evals/{ev['id']}", expect=200)
    parsed = sdk(WorkflowEval, got)
    s = parsed.latest_run_summary
    assert s is not None and s.run_record_id == run["id"] and s.status == "completed" and s.outcome == "passed"
    assert parsed.latest_passing_run_summary is not None and parsed.latest_failing_run_summary is None
    assert parsed.freshness.status == "fresh" and parsed.freshness.baseline_run_id == run["id"]

    # The eval's freshness is the authoritative read-time verdict: a config change makes it stale...
    await api.patch(f"/v1/workflows/blocks/{block}", {"config": {"temperature": 0.5}}, expect=200)
    stale = sdk(WorkflowEval, await api.get(f"/v1/workflows/evals/{ev['id']}", expect=200))
    assert stale.freshness.status == "stale" and [r.value for r in stale.freshness.reasons] == ["validity_changed"]
    listed = await api.get("/v1/workflows/evals", params={"workflow_id": wf}, expect=200)
    assert listed["data"][0]["freshness"]["status"] == "stale"
    # ...and changing it back makes it fresh again
    await api.patch(f"/v1/workflows/blocks/{block}", {"config": {"temperature": None}}, expect=200)
    again = await api.get(f"/v1/workflows/evals/{ev['id']}", expect=200)
    assert again["freshness"]["status"] == "fresh"
    # new inputs: inputs_changed
    other = await file_input(api, number="INV-2")
    await api.patch(
        f"/v1/workflows/evals/{ev['id']}", {"source": {"type": "manual", "handle_inputs": other}}, expect=200
    )
    moved = await api.get(f"/v1/workflows/evals/{ev['id']}", expect=200)
    assert moved["freshness"]["status"] == "stale" and moved["freshness"]["reasons"] == ["inputs_changed"]
