"""Workflows, blocks and edges (spec §2.1–2.3), every body checked against the SDK160 models."""

from __future__ import annotations

from typing import Any

import pytest
from retab.types.workflows import Workflow
from retab.types.workflows.blocks import ValidateWorkflowBlockConfigResponse, WorkflowBlock
from retab.types.workflows.edges import WorkflowEdgeDoc

from tests.api.test_support import assert_envelope, create_eval, file_input, raw, sdk, sdk_page
from tests.conftest import INVOICE_SCHEMA, Api


async def new_workflow(api: Api, name: str = "wf") -> dict[str, Any]:
    body: dict[str, Any] = await api.post("/v1/workflows", {"name": name, "project_id": "proj"}, expect=201)
    return body


async def test_workflow_crud_and_start_block(api: Api) -> None:
    wf = await new_workflow(api, "Invoice workflow")
    parsed = sdk(Workflow, wf)
    assert parsed.name == "Invoice workflow" and parsed.project_id == "proj" and parsed.published is None
    blocks = await api.get("/v1/workflows/blocks", params={"workflow_id": wf["id"]}, expect=200)
    sdk_page(WorkflowBlock, blocks)
    assert [(b["type"], b["label"]) for b in blocks["data"]] == [("start_document", "Document")]

    got = await api.get(f"/v1/workflows/{wf['id']}", expect=200)
    assert got["id"] == wf["id"]
    patched = await api.patch(f"/v1/workflows/{wf['id']}", {"description": "d"}, expect=200)
    sdk(Workflow, patched)
    assert patched["name"] == "Invoice workflow" and patched["description"] == "d"
    unchanged = await api.patch(f"/v1/workflows/{wf['id']}", {}, expect=200)
    assert unchanged["description"] == "d"

    listed = await api.get("/v1/workflows", params={"project_id": "proj"}, expect=200)
    sdk_page(Workflow, listed)
    assert [w["id"] for w in listed["data"]] == [wf["id"]]
    assert (await api.get("/v1/workflows", params={"project_id": "other"}, expect=200))["data"] == []

    published = await api.post(f"/v1/workflows/{wf['id']}/publish", {"description": "v1"}, expect=200)
    assert sdk(Workflow, published).published.version_id.startswith("ver_")

    assert await api.delete(f"/v1/workflows/{wf['id']}", expect=204) is None
    assert_envelope(await raw(api, "GET", f"/v1/workflows/{wf['id']}"), 404, "not_found")
    assert_envelope(await raw(api, "DELETE", f"/v1/workflows/{wf['id']}"), 404)
    assert_envelope(await raw(api, "PATCH", f"/v1/workflows/{wf['id']}", json={"name": "x"}), 404)


async def test_workflow_list_paginates(api: Api) -> None:
    ids = [(await new_workflow(api, f"w{i}"))["id"] for i in range(5)]
    first = await api.get("/v1/workflows", params={"limit": 2, "order": "asc", "sort_by": "created_at"}, expect=200)
    assert [w["id"] for w in first["data"]] == ids[:2] and first["list_metadata"]["after"] == ids[1]
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = await api.get("/v1/workflows", params=params, expect=200)
        seen += [w["id"] for w in page["data"]]
        if page["list_metadata"]["after"] is None:
            break
        params = {"limit": 2, "after": page["list_metadata"]["after"]}
    assert sorted(seen) == sorted(ids) and len(seen) == 5


async def test_delete_workflow_cascades(api: Api) -> None:
    wf, block = await api.workflow_with_extract()
    blocks = await api.get("/v1/workflows/blocks", params={"workflow_id": wf}, expect=200)
    start = next(b["id"] for b in blocks["data"] if b["type"] == "start_document")
    edge = await api.post(
        "/v1/workflows/edges", {"workflow_id": wf, "source_block": start, "target_block": block}, expect=201
    )
    inputs = await file_input(api)
    ev = await create_eval(api, wf, block, inputs)
    exp = await api.post(
        "/v1/workflows/experiments",
        {"workflow_id": wf, "block_id": block, "n_consensus": 3, "documents": [{"handle_inputs": inputs}]},
        expect=201,
    )
    run = await api.post("/v1/workflows/evals/runs", {"workflow_id": wf}, expect=201)
    await api.wait_run(run["id"])
    await api.delete(f"/v1/workflows/{wf}", expect=204)
    for path in (
        f"/v1/workflows/blocks/{block}",
        f"/v1/workflows/blocks/{start}",
        f"/v1/workflows/edges/{edge['id']}",
        f"/v1/workflows/evals/{ev['id']}",
        f"/v1/workflows/experiments/{exp['id']}",
        f"/v1/workflows/evals/runs/{run['id']}",
    ):
        assert_envelope(await raw(api, "GET", path), 404)
    assert_envelope(await raw(api, "GET", "/v1/workflows/blocks", params={"workflow_id": wf}), 404)


async def test_create_workflow_validation(api: Api) -> None:
    d = assert_envelope(await raw(api, "POST", "/v1/workflows", json={"name": 3}), 422, "validation_error")
    assert d["details"]["errors"][0]["loc"] == ["body", "name"]
    defaulted = await api.post("/v1/workflows", {"project_id": "p"}, expect=201)
    assert defaulted["name"] == "Untitled Workflow" and defaulted["description"] == ""


# -- blocks
async def test_block_create_get_list_and_reused_id(api: Api) -> None:
    wf = (await new_workflow(api))["id"]
    other = (await new_workflow(api))["id"]
    made = await api.post(
        "/v1/workflows/blocks",
        {"workflow_id": wf, "type": "extract", "id": "blk_custom", "label": "E", "position_x": 10, "config": {}},
        expect=201,
    )
    b = sdk(WorkflowBlock, made)
    assert b.id == "blk_custom" and b.position_x == 10 and b.config == {}
    generated = await api.post("/v1/workflows/blocks", {"workflow_id": wf, "type": "note"}, expect=201)
    assert generated["id"].startswith("blk_") and generated["label"] == ""
    # Block ids are unique per organisation: the same id in another workflow conflicts too.
    for target in (wf, other):
        r = await raw(
            api, "POST", "/v1/workflows/blocks", json={"workflow_id": target, "type": "note", "id": "blk_custom"}
        )
        assert_envelope(r, 409)
    assert sdk(WorkflowBlock, await api.get("/v1/workflows/blocks/blk_custom", expect=200)).label == "E"
    await api.get("/v1/workflows/blocks/blk_custom", params={"workflow_id": wf}, expect=200)
    assert_envelope(await raw(api, "GET", "/v1/workflows/blocks/blk_custom", params={"workflow_id": other}), 404)
    assert_envelope(await raw(api, "GET", "/v1/workflows/blocks/blk_nope"), 404)

    listed = await api.get("/v1/workflows/blocks", params={"workflow_id": wf}, expect=200)
    sdk_page(WorkflowBlock, listed)
    stamps = [(x["updated_at"], x["id"]) for x in listed["data"]]
    assert len(stamps) == 3 and [s[0] for s in stamps] == sorted((s[0] for s in stamps), reverse=True)
    assert_envelope(await raw(api, "GET", "/v1/workflows/blocks"), 422)
    assert_envelope(await raw(api, "GET", "/v1/workflows/blocks", params={"workflow_id": "wf_nope"}), 404)


@pytest.mark.parametrize(
    "body",
    [
        {"type": "extract"},
        {"workflow_id": "WF", "type": "while_loop_sentinel_start"},
        {"workflow_id": "WF", "type": "not_a_type"},
        {"workflow_id": "WF", "type": "extract", "config": {"json_schema": {"type": 12}}},
        {"workflow_id": "WF", "type": "extract", "config": {"n_consensus": 0}},
        {"workflow_id": "WF", "type": "classifier", "config": {"categories": []}},
        {"workflow_id": "WF", "type": "split", "config": {"subdocuments": [{"description": "no name"}]}},
        {"workflow_id": "WF", "type": "extract", "config": []},
        {"workflow_id": "WF", "type": "extract", "position_x": "left"},
    ],
)
async def test_block_create_validation(api: Api, body: dict[str, Any]) -> None:
    wf = (await new_workflow(api))["id"]
    payload = {k: (wf if v == "WF" else v) for k, v in body.items()}
    d = assert_envelope(await raw(api, "POST", "/v1/workflows/blocks", json=payload), 422, "validation_error")
    assert d["details"]["errors"], d


async def test_block_create_accepts_enum_member_type(api: Api) -> None:
    wf = (await new_workflow(api))["id"]
    made = await api.post(
        "/v1/workflows/blocks", {"workflow_id": wf, "type": "WorkflowBlockCreateRequestType.EXTRACT"}, expect=201
    )
    assert made["type"] == "extract"


async def test_block_update_merge_patch_and_replace(api: Api) -> None:
    wf = (await new_workflow(api))["id"]
    cfg = {
        "model": "simulated",
        "json_schema": INVOICE_SCHEMA,
        "simulation": {"latency_ms": 5, "jitter_ms": 1},
        "tags": ["a", "b"],
        "nested": {"keep": 1, "drop": 2, "deep": {"x": 1, "y": 2}},
    }
    block = await api.post("/v1/workflows/blocks", {"workflow_id": wf, "type": "extract", "config": cfg}, expect=201)
    url = f"/v1/workflows/blocks/{block['id']}"
    merged = await api.patch(
        url,
        {
            "label": "Renamed",
            "config": {
                "simulation": {"jitter_ms": None},
                "tags": ["c"],
                "nested": {"drop": None, "deep": {"y": 3, "z": {"new": True}}},
                "model": "retab-small",
            },
        },
        expect=200,
    )
    sdk(WorkflowBlock, merged)
    assert merged["label"] == "Renamed"
    assert merged["config"] == {
        "model": "retab-small",
        "json_schema": INVOICE_SCHEMA,
        "simulation": {"latency_ms": 5},
        "tags": ["c"],
        "nested": {"keep": 1, "deep": {"x": 1, "y": 3, "z": {"new": True}}},
    }
    explicit = await api.patch(url, {"config": {"tags": None}, "config_mode": "merge"}, expect=200)
    assert "tags" not in explicit["config"] and explicit["config"]["model"] == "retab-small"
    replaced = await api.patch(url, {"config": {"model": "simulated"}, "config_mode": "replace"}, expect=200)
    assert replaced["config"] == {"model": "simulated"} and replaced["label"] == "Renamed"
    moved = await api.patch(url, {"position_x": 5.5, "width": 100, "parent_id": None}, expect=200)
    assert moved["position_x"] == 5.5 and moved["width"] == 100 and moved["config"] == {"model": "simulated"}
    assert (await api.get(url, expect=200))["config"] == {"model": "simulated"}
    # merging an invalid value is refused and leaves the stored config alone
    bad = await raw(api, "PATCH", url, json={"config": {"json_schema": {"type": "nonsense"}}})
    assert_envelope(bad, 422)
    assert (await api.get(url, expect=200))["config"] == {"model": "simulated"}


async def test_block_type_is_immutable(api: Api) -> None:
    _wf, block = await api.workflow_with_extract()
    url = f"/v1/workflows/blocks/{block}"
    d = assert_envelope(await raw(api, "PATCH", url, json={"type": "split"}), 422, "block_type_immutable")
    assert d["details"]["type"] == "extract"
    assert (await api.patch(url, {"type": "extract", "label": "same"}, expect=200))["type"] == "extract"
    as_member = {"type": "WorkflowBlockType.EXTRACT", "config_mode": "UpdateWorkflowBlockRequestConfigMode.MERGE"}
    assert (await api.patch(url, as_member, expect=200))["type"] == "extract"
    assert_envelope(await raw(api, "PATCH", "/v1/workflows/blocks/blk_nope", json={"label": "x"}), 404)
    assert_envelope(await raw(api, "PATCH", url, json={"label": "x"}, params={"workflow_id": "wf_other"}), 404)
    assert_envelope(await raw(api, "PATCH", url, json={"config_mode": "overwrite", "config": {}}), 422)


@pytest.mark.parametrize("field", ["label", "position_x", "position_y"])
async def test_block_update_null_for_a_required_column_is_not_500(api: Api, field: str) -> None:
    """The SDK never sends null, but a raw client may: it must not reach a NOT NULL column."""
    _, block = await api.workflow_with_extract()
    r = await raw(api, "PATCH", f"/v1/workflows/blocks/{block}", json={field: None})
    assert r.status in (200, 422), r.body
    after = await api.get(f"/v1/workflows/blocks/{block}", expect=200)
    sdk(WorkflowBlock, after)


async def test_block_delete_also_deletes_edges(api: Api) -> None:
    wf, block = await api.workflow_with_extract()
    start = next(
        b["id"]
        for b in (await api.get("/v1/workflows/blocks", params={"workflow_id": wf}, expect=200))["data"]
        if b["type"] == "start_document"
    )
    note = await api.post("/v1/workflows/blocks", {"workflow_id": wf, "type": "note"}, expect=201)
    e1 = await api.post(
        "/v1/workflows/edges", {"workflow_id": wf, "source_block": start, "target_block": block}, expect=201
    )
    e2 = await api.post(
        "/v1/workflows/edges", {"workflow_id": wf, "source_block": block, "target_block": note["id"]}, expect=201
    )
    e3 = await api.post(
        "/v1/workflows/edges", {"workflow_id": wf, "source_block": start, "target_block": note["id"]}, expect=201
    )
    assert_envelope(await raw(api, "DELETE", f"/v1/workflows/blocks/{block}", params={"workflow_id": "wf_x"}), 404)
    await api.delete(f"/v1/workflows/blocks/{block}", expect=204)
    assert_envelope(await raw(api, "GET", f"/v1/workflows/blocks/{block}"), 404)
    for e in (e1, e2):
        assert_envelope(await raw(api, "GET", f"/v1/workflows/edges/{e['id']}"), 404)
    left = await api.get("/v1/workflows/edges", params={"workflow_id": wf}, expect=200)
    assert [e["id"] for e in left["data"]] == [e3["id"]]
    assert_envelope(await raw(api, "DELETE", f"/v1/workflows/blocks/{block}"), 404)


async def test_validate_config_is_a_dry_run(api: Api) -> None:
    wf, block = await api.workflow_with_extract()
    url = f"/v1/workflows/blocks/{block}/validate-config"
    before = await api.get(f"/v1/workflows/blocks/{block}", expect=200)
    out = await api.post(url, {"config": {"model": "other"}, "config_mode": "replace"}, expect=200)
    v = sdk(ValidateWorkflowBlockConfigResponse, out)
    assert v.ok is True and v.block_id == block and v.workflow_id == wf and v.block_type == "extract"
    merged = await api.post(url, {"config": {"model": "other"}, "config_mode": "merge"}, expect=200)
    assert merged["config_hash"] != out["config_hash"]  # merge keeps json_schema, replace drops it
    same = await api.post(url, {"config": {"model": "other"}}, expect=200)  # default mode = replace
    assert same["config_hash"] == out["config_hash"]
    assert (await api.get(f"/v1/workflows/blocks/{block}", expect=200)) == before
    assert_envelope(await raw(api, "POST", url, json={"config": {"json_schema": {"type": 1}}}), 422)
    assert_envelope(await raw(api, "POST", url, json={}), 422)
    assert_envelope(await raw(api, "POST", "/v1/workflows/blocks/blk_nope/validate-config", json={"config": {}}), 404)


# -- edges
async def test_edges_crud(api: Api) -> None:
    wf, block = await api.workflow_with_extract()
    blocks = await api.get("/v1/workflows/blocks", params={"workflow_id": wf}, expect=200)
    start = next(b["id"] for b in blocks["data"] if b["type"] == "start_document")
    made = await api.post(
        "/v1/workflows/edges",
        {
            "workflow_id": wf,
            "source_block": start,
            "target_block": block,
            "source_handle": "output-file-0",
            "target_handle": "input-file-document",
            "id": "edge_custom",
        },
        expect=201,
    )
    e = sdk(WorkflowEdgeDoc, made)
    assert e.id == "edge_custom" and e.source_handle == "output-file-0"
    reused = await raw(
        api,
        "POST",
        "/v1/workflows/edges",
        json={"workflow_id": wf, "source_block": start, "target_block": block, "id": "edge_custom"},
    )
    assert_envelope(reused, 409)
    assert sdk(WorkflowEdgeDoc, await api.get("/v1/workflows/edges/edge_custom", expect=200)).target_block == block
    await api.get("/v1/workflows/edges/edge_custom", params={"workflow_id": wf}, expect=200)
    assert_envelope(await raw(api, "GET", "/v1/workflows/edges/edge_custom", params={"workflow_id": "wf_x"}), 404)
    for params, n in (
        ({"workflow_id": wf}, 1),
        ({"workflow_id": wf, "source_block": start}, 1),
        ({"workflow_id": wf, "target_block": start}, 0),
        ({"workflow_id": wf, "target_block": block}, 1),
    ):
        page = await api.get("/v1/workflows/edges", params=params, expect=200)
        sdk_page(WorkflowEdgeDoc, page)
        assert len(page["data"]) == n, params
    assert_envelope(await raw(api, "GET", "/v1/workflows/edges"), 422)
    for body in (
        {"workflow_id": wf, "source_block": "blk_nope", "target_block": block},
        {"workflow_id": "wf_nope", "source_block": start, "target_block": block},
    ):
        assert_envelope(await raw(api, "POST", "/v1/workflows/edges", json=body), 404)
    assert_envelope(await raw(api, "POST", "/v1/workflows/edges", json={"workflow_id": wf}), 422)
    await api.delete("/v1/workflows/edges/edge_custom", expect=204)
    assert_envelope(await raw(api, "GET", "/v1/workflows/edges/edge_custom"), 404)
    assert_envelope(await raw(api, "DELETE", "/v1/workflows/edges/edge_custom"), 404)


async def test_edge_between_blocks_of_another_workflow_is_404(api: Api) -> None:
    wf1, b1 = await api.workflow_with_extract()
    _wf2, b2 = await api.workflow_with_extract()
    r = await raw(api, "POST", "/v1/workflows/edges", json={"workflow_id": wf1, "source_block": b1, "target_block": b2})
    assert_envelope(r, 404)
