"""Experiments, experiment runs, results, artifacts and metrics (spec §2.11–2.15)."""

from __future__ import annotations

from typing import Any

import pytest
from retab.types.workflows.artifacts import (
    ClassificationWorkflowArtifact,
    ExtractionWorkflowArtifact,
    SplitWorkflowArtifact,
)
from retab.types.workflows.experiments import WorkflowExperiment
from retab.types.workflows.experiments.metrics import (
    ExperimentByDocumentMetricsResponse,
    ExperimentByTargetMetricsResponse,
    ExperimentMetricsMissingError,
    ExperimentMetricsStaleError,
    ExperimentSummaryMetricsResponse,
    ExperimentVotesMetricsResponse,
)
from retab.types.workflows.experiments.runs import CancelWorkflowExperimentRunResponse, ExperimentRun

from tests.api.test_support import SLOW, assert_envelope, file_input, raw, sdk, sdk_page
from tests.conftest import Api

METRICS = (
    ExperimentSummaryMetricsResponse
    | ExperimentByDocumentMetricsResponse
    | ExperimentByTargetMetricsResponse
    | ExperimentVotesMetricsResponse
    | ExperimentMetricsStaleError
    | ExperimentMetricsMissingError
)
ARTIFACT = ExtractionWorkflowArtifact | SplitWorkflowArtifact | ClassificationWorkflowArtifact


async def experiment(
    api: Api, docs: int = 2, config: dict[str, Any] | None = None, **body: Any
) -> tuple[str, str, dict[str, Any]]:
    wf, block = await api.workflow_with_extract(config)
    documents = [{"handle_inputs": await file_input(api, number=f"INV-{i}")} for i in range(docs)]
    exp = await api.post(
        "/v1/workflows/experiments",
        {"workflow_id": wf, "block_id": block, "name": "Q1", "n_consensus": 3, "documents": documents, **body},
        expect=201,
    )
    return wf, block, exp


async def metrics(api: Api, run_id: str, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = await api.get(
        "/v1/workflows/experiments/metrics", params={"run_id": run_id, **params}, expect=200
    )
    parsed = sdk(METRICS, body)
    assert parsed.kind == body["kind"] and "view" in body
    return body


async def test_experiment_crud(api: Api) -> None:
    wf, block, exp = await experiment(api)
    e = sdk(WorkflowExperiment, exp)
    assert exp["id"].startswith("exp_") and e.n_consensus == 3 and e.document_count == 2
    assert e.status == "draft" and e.block_type == "extract" and e.last_run_id is None
    assert e.freshness_state == "unknown" and e.run_plan_mode == "run" and e.rerunnable_document_count == 2

    assert await api.get(f"/v1/workflows/experiments/{exp['id']}", expect=200) == exp
    docs = await api.get(f"/v1/workflows/experiments/{exp['id']}/documents", expect=200)
    assert [d["filename"] for d in docs["data"]] == ["invoice.txt", "invoice.txt"]
    assert all(d["id"].startswith("expdoc_") for d in docs["data"])

    same = await api.patch(f"/v1/workflows/experiments/{exp['id']}", {}, expect=200)
    assert same == exp
    renamed = await api.patch(f"/v1/workflows/experiments/{exp['id']}", {"name": "Q2", "n_consensus": 5}, expect=200)
    assert sdk(WorkflowExperiment, renamed).n_consensus == 5 and renamed["name"] == "Q2"
    assert renamed["document_count"] == 2
    new_docs = [{"handle_inputs": await file_input(api, number="N")} for _ in range(3)]
    replaced = await api.patch(f"/v1/workflows/experiments/{exp['id']}", {"documents": new_docs}, expect=200)
    assert replaced["document_count"] == 3 and replaced["name"] == "Q2"
    docs2 = await api.get(f"/v1/workflows/experiments/{exp['id']}/documents", expect=200)
    assert len(docs2["data"]) == 3 and not {d["id"] for d in docs2["data"]} & {d["id"] for d in docs["data"]}
    emptied = await api.patch(f"/v1/workflows/experiments/{exp['id']}", {"documents": []}, expect=200)
    assert emptied["document_count"] == 0
    bad: list[dict[str, Any]] = [{"n_consensus": 4}, {"documents": [{}]}, {"document_captures": [{"run_id": "x"}]}]
    for body in bad:
        assert_envelope(await raw(api, "PATCH", f"/v1/workflows/experiments/{exp['id']}", json=body), 422)

    listed = await api.get("/v1/workflows/experiments", params={"workflow_id": wf}, expect=200)
    sdk_page(WorkflowExperiment, listed)
    assert [x["id"] for x in listed["data"]] == [exp["id"]]
    assert (await api.get("/v1/workflows/experiments", params={"workflow_id": wf, "block_id": "blk_x"}, expect=200))[
        "data"
    ] == []
    assert (await api.get("/v1/workflows/experiments", params={"workflow_id": wf, "block_id": block}, expect=200))[
        "data"
    ]
    assert_envelope(await raw(api, "GET", "/v1/workflows/experiments"), 422)
    assert_envelope(await raw(api, "GET", "/v1/workflows/experiments", params={"workflow_id": "wf_x"}), 404)

    await api.delete(f"/v1/workflows/experiments/{exp['id']}", expect=204)
    for method in ("GET", "DELETE"):
        assert_envelope(await raw(api, method, f"/v1/workflows/experiments/{exp['id']}"), 404)
    assert_envelope(await raw(api, "PATCH", f"/v1/workflows/experiments/{exp['id']}", json={}), 404)
    assert_envelope(await raw(api, "GET", f"/v1/workflows/experiments/{exp['id']}/documents"), 404)


@pytest.mark.parametrize("n", [3, 5, 7])
async def test_n_consensus_values(api: Api, n: int) -> None:
    _, _, exp = await experiment(api, docs=0, n_consensus=n)
    assert exp["n_consensus"] == n


async def test_create_experiment_errors(api: Api) -> None:
    wf, block = await api.workflow_with_extract()
    _, other_block = await api.workflow_with_extract()
    start = next(
        b["id"]
        for b in (await api.get("/v1/workflows/blocks", params={"workflow_id": wf}, expect=200))["data"]
        if b["type"] == "start_document"
    )
    default = await api.post("/v1/workflows/experiments", {"workflow_id": wf, "block_id": block}, expect=201)
    assert default["n_consensus"] == 3 and default["document_count"] == 0 and default["name"]
    cases: list[tuple[dict[str, Any], int]] = [
        ({"workflow_id": wf, "block_id": block, "n_consensus": 4}, 422),
        ({"workflow_id": wf, "block_id": block, "n_consensus": 1}, 422),
        ({"workflow_id": wf, "block_id": block, "n_consensus": "3"}, 422),
        ({"workflow_id": wf}, 422),
        ({"block_id": block}, 422),
        ({"workflow_id": wf, "block_id": start}, 422),
        ({"workflow_id": wf, "block_id": block, "document_captures": [{"run_id": "wfrun_1"}]}, 422),
        (
            {
                "workflow_id": wf,
                "block_id": block,
                "documents": [{"handle_inputs": {"d": {"document": {"id": "file_x"}}}}],
            },
            422,
        ),
        ({"workflow_id": wf, "block_id": block, "documents": "all"}, 422),
        ({"workflow_id": "wf_nope", "block_id": block}, 404),
        ({"workflow_id": wf, "block_id": "blk_nope"}, 404),
        ({"workflow_id": wf, "block_id": other_block}, 404),
    ]
    for body, status in cases:
        d = assert_envelope(await raw(api, "POST", "/v1/workflows/experiments", json=body), status)
        assert d["message"], body


async def test_duplicate_with_source_experiment_id(api: Api) -> None:
    wf, block, exp = await experiment(api, n_consensus=5)
    dup = await api.post(
        "/v1/workflows/experiments", {"workflow_id": wf, "source_experiment_id": exp["id"]}, expect=201
    )
    d = sdk(WorkflowExperiment, dup)
    assert dup["id"] != exp["id"] and d.name == "Q1 (Copy)" and d.n_consensus == 5 and d.block_id == block
    assert d.document_count == 2 and dup["freshness"]["input_fingerprint"] == exp["freshness"]["input_fingerprint"]
    other_wf, _ = await api.workflow_with_extract()
    for body, status in (
        ({"workflow_id": wf, "source_experiment_id": exp["id"], "name": "x"}, 422),
        ({"workflow_id": wf, "source_experiment_id": exp["id"], "n_consensus": 3}, 422),
        ({"workflow_id": wf, "source_experiment_id": "exp_nope"}, 404),
        ({"workflow_id": other_wf, "source_experiment_id": exp["id"]}, 404),
    ):
        assert_envelope(await raw(api, "POST", "/v1/workflows/experiments", json=body), status)


async def test_cancel_and_delete_while_in_flight(api: Api) -> None:
    wf, _, exp = await experiment(api, docs=2, config=SLOW)
    xr = await api.post("/v1/workflows/experiments/runs", {"experiment_id": exp["id"]}, expect=201)
    d = assert_envelope(await raw(api, "DELETE", f"/v1/workflows/experiments/{exp['id']}"), 409, "run_in_flight")
    assert d["details"]["run_id"] == xr["id"]
    assert sdk(WorkflowExperiment, await api.get(f"/v1/workflows/experiments/{exp['id']}", expect=200)).status == (
        "processing"
    )
    c = await api.post(f"/v1/workflows/experiments/runs/{xr['id']}/cancel", expect=200)
    assert set(c) == {"id", "lifecycle"} and c["id"] == xr["id"]
    assert sdk(CancelWorkflowExperimentRunResponse, c).lifecycle.status == "cancelled"
    again = await api.post(f"/v1/workflows/experiments/runs/{xr['id']}/cancel", expect=200)
    assert again["lifecycle"]["status"] == "cancelled"
    run = sdk(ExperimentRun, await api.get(f"/v1/workflows/experiments/runs/{xr['id']}", expect=200))
    assert run.lifecycle.status == "cancelled" and run.timing.completed_at is not None
    results = await api.get("/v1/workflows/experiments/results", params={"run_id": xr["id"]}, expect=200)
    assert {x["lifecycle"]["status"] for x in results["data"]} == {"cancelled"}
    assert sdk(WorkflowExperiment, await api.get(f"/v1/workflows/experiments/{exp['id']}", expect=200)).status == (
        "cancelled"
    )
    await api.delete(f"/v1/workflows/experiments/{exp['id']}", expect=204)
    assert_envelope(await raw(api, "GET", f"/v1/workflows/experiments/runs/{xr['id']}"), 404)
    assert_envelope(await raw(api, "GET", f"/v1/workflows/experiments/results/{results['data'][0]['id']}"), 404)
    assert_envelope(await raw(api, "POST", "/v1/workflows/experiments/runs/exprun_nope/cancel"), 404)
    assert wf


async def test_delete_is_409_while_any_run_is_in_flight(api: Api) -> None:
    _, _, exp = await experiment(api, docs=1, config=SLOW)
    first = await api.post("/v1/workflows/experiments/runs", {"experiment_id": exp["id"]}, expect=201)
    latest = await api.post("/v1/workflows/experiments/runs", {"experiment_id": exp["id"]}, expect=201)
    await api.post(f"/v1/workflows/experiments/runs/{latest['id']}/cancel", expect=200)
    d = assert_envelope(await raw(api, "DELETE", f"/v1/workflows/experiments/{exp['id']}"), 409, "run_in_flight")
    assert d["details"]["run_id"] == first["id"]
    await api.post(f"/v1/workflows/experiments/runs/{first['id']}/cancel", expect=200)
    await api.delete(f"/v1/workflows/experiments/{exp['id']}", expect=204)
