"""Experiment runs, results, artifacts and metrics (spec §2.12–2.15), against the SDK160 models."""

from __future__ import annotations

from typing import Any

import pytest
from retab.types.workflows.artifacts import ExtractionWorkflowArtifact, WorkflowArtifact
from retab.types.workflows.experiments import WorkflowExperiment
from retab.types.workflows.experiments.metrics import ExperimentMetricsMissingError, ExperimentMetricsStaleError
from retab.types.workflows.experiments.results import ExperimentResult
from retab.types.workflows.experiments.runs import ExperimentRun

from tests.api.test_experiments_api import ARTIFACT, experiment, metrics
from tests.api.test_support import SLOW, assert_envelope, collect, file_input, raw, sdk, sdk_page
from tests.conftest import Api


async def test_experiment_run_lifecycle_results_artifacts_metrics(api: Api) -> None:
    wf, block, exp = await experiment(api)
    for body in ({"experiment_id": exp["id"], "workflow_id": "wf_other"}, {"experiment_id": "exp_nope"}):
        assert_envelope(await raw(api, "POST", "/v1/workflows/experiments/runs", json=body), 404)
    assert_envelope(await raw(api, "POST", "/v1/workflows/experiments/runs", json={}), 422)
    bad_plan = {"experiment_id": exp["id"], "plan_token": "stale"}
    assert_envelope(await raw(api, "POST", "/v1/workflows/experiments/runs", json=bad_plan), 409)

    xr = await api.post(
        "/v1/workflows/experiments/runs",
        {"experiment_id": exp["id"], "workflow_id": wf, "plan_token": exp["plan_token"]},
        expect=201,
    )
    r = sdk(ExperimentRun, xr)
    assert xr["id"].startswith("exprun_") and r.n_consensus == 3 and r.block_type == "extract"
    assert r.block_execution_fingerprint and r.documents_fingerprint and r.total_document_count == 2
    assert r.lifecycle.status in ("pending", "queued", "running")

    def invariant(run: dict[str, Any]) -> None:
        x = sdk(ExperimentRun, run)
        assert x.completed_document_count + x.error_count <= x.total_document_count

    done = await api.wait_run(xr["id"], check=invariant)
    d = sdk(ExperimentRun, done)
    assert d.lifecycle.status == "completed" and d.completed_document_count == 2 and d.score is not None
    assert done["timing"]["duration_ms"] is not None
    e = sdk(WorkflowExperiment, await api.get(f"/v1/workflows/experiments/{exp['id']}", expect=200))
    assert e.status == "completed" and e.last_run_id == xr["id"] and e.score == d.score
    assert e.freshness_state == "fresh" and e.run_plan_mode == "noop" and not e.is_stale

    results = await api.get("/v1/workflows/experiments/results", params={"run_id": xr["id"]}, expect=200)
    sdk_page(ExperimentResult, results)
    assert len(results["data"]) == 2
    res = sdk(
        ExperimentResult, await api.get(f"/v1/workflows/experiments/results/{results['data'][0]['id']}", expect=200)
    )
    assert res.experiment_run_id == xr["id"] and res.experiment_id == exp["id"] and res.lifecycle.status == "completed"
    assert res.artifact is not None and res.artifact.operation == "extraction"
    assert "output-json-0" in (res.handle_outputs or {})
    assert await collect(api, "/v1/workflows/experiments/results", {"run_id": xr["id"], "limit": 1}) == [
        x["id"] for x in results["data"]
    ]

    art = await api.get(f"/v1/workflows/artifacts/{res.artifact.id}", expect=200)
    a = sdk(ARTIFACT, art)
    assert isinstance(a, ExtractionWorkflowArtifact) and a.operation == "extraction" and a.n_consensus == 3
    assert a.consensus is not None and len(a.consensus.choices or []) == 3
    arts = await api.get("/v1/workflows/artifacts", params={"run_id": xr["id"]}, expect=200)
    sdk_page(WorkflowArtifact, arts)
    assert {x["id"] for x in arts["data"]} == {x["artifact"]["id"] for x in results["data"]}
    assert (await api.get("/v1/workflows/artifacts", params={"operation": "split"}, expect=200))["data"] == []
    by_enum = await api.get(
        "/v1/workflows/artifacts", params={"operation": "StepArtifactRefOperation.EXTRACTION"}, expect=200
    )
    assert len(by_enum["data"]) == 2
    assert_envelope(await raw(api, "GET", "/v1/workflows/artifacts/extr_nope"), 404)

    doc = res.document_id
    summary = await metrics(api, xr["id"])
    assert summary["kind"] == "summary" and summary["view"] == "summary"
    assert summary["scored_document_count"] == 2 and summary["total_document_count"] == 2
    assert summary["prior_score"] is None and len(summary["documents"]) == 2
    assert "total" in summary["aggregate"]["likelihoods"]
    by_doc = await metrics(api, xr["id"], view="by_document", document_id=doc)
    assert by_doc["kind"] == "by_document" and by_doc["document"]["id"] == doc
    by_target = await metrics(api, xr["id"], view="ExperimentRunMetricsView.BY_TARGET", target_path="total")
    assert by_target["kind"] == "by_target" and by_target["target"] == "total" and len(by_target["documents"]) == 2
    votes = await metrics(api, xr["id"], view="votes", document_id=doc, target_path="total", include_prior="false")
    assert votes["kind"] == "votes" and len(votes["rows"]) == 1 and len(votes["rows"][0]["votes"]) == 3

    for params in (
        {"view": "by_document"},
        {"view": "votes", "document_id": doc},
        {"view": "votes", "target_path": "total"},
        {"view": "by_target"},
        {"view": "nope"},
    ):
        d422 = assert_envelope(
            await raw(api, "GET", "/v1/workflows/experiments/metrics", params={"run_id": xr["id"], **params}), 422
        )
        assert d422["details"]["errors"]
    assert_envelope(await raw(api, "GET", "/v1/workflows/experiments/metrics"), 422)
    assert_envelope(await raw(api, "GET", "/v1/workflows/experiments/metrics", params={"run_id": "exprun_x"}), 404)
    _, _, other = await experiment(api, docs=1)
    other_doc = (await api.get(f"/v1/workflows/experiments/{other['id']}/documents", expect=200))["data"][0]["id"]
    for document_id in ("expdoc_nope", other_doc):
        r404 = await raw(
            api,
            "GET",
            "/v1/workflows/experiments/metrics",
            params={"run_id": xr["id"], "view": "by_document", "document_id": document_id},
        )
        assert_envelope(r404, 404)

    # a second run: prior scores from the first
    xr2 = await api.post("/v1/workflows/experiments/runs", {"experiment_id": exp["id"]}, expect=201)
    await api.wait_run(xr2["id"])
    summary2 = await metrics(api, xr2["id"])
    assert summary2["prior_run_id"] == xr["id"] and summary2["prior_score"] is not None
    no_prior = await metrics(api, xr2["id"], include_prior="false")
    assert no_prior["prior_score"] is None
    explicit = await metrics(api, xr2["id"], prior_run_id=xr["id"], view="by_target", target_path="total")
    assert explicit["prior_score"] is not None
    assert_envelope(
        await raw(
            api, "GET", "/v1/workflows/experiments/metrics", params={"run_id": xr2["id"], "prior_run_id": "exprun_x"}
        ),
        404,
    )

    # cancelling a completed run is 404; the run lists filter
    assert_envelope(await raw(api, "POST", f"/v1/workflows/experiments/runs/{xr['id']}/cancel"), 404)
    for params, want in (
        ({"experiment_id": exp["id"]}, [xr2["id"], xr["id"]]),
        ({"workflow_id": wf, "order": "asc"}, [xr["id"], xr2["id"]]),
        ({"block_id": block, "status": "completed"}, [xr2["id"], xr["id"]]),
        ({"experiment_id": exp["id"], "exclude_status": "completed"}, []),
        ({"experiment_id": exp["id"], "statuses": ["running", "completed"]}, [xr2["id"], xr["id"]]),
        ({"experiment_id": exp["id"], "from_date": "2000-01-01"}, [xr2["id"], xr["id"]]),
        ({"experiment_id": exp["id"], "to_date": "2000-01-01"}, []),
    ):
        page = await api.get("/v1/workflows/experiments/runs", params=params, expect=200)
        sdk_page(ExperimentRun, page)
        assert [x["id"] for x in page["data"]] == want, params


async def test_stale_and_missing_metrics(api: Api) -> None:
    _wf, block, exp = await experiment(api, docs=1)
    xr = await api.post("/v1/workflows/experiments/runs", {"experiment_id": exp["id"]}, expect=201)
    await api.wait_run(xr["id"])
    await api.patch(f"/v1/workflows/blocks/{block}", {"config": {"instructions": "be careful"}}, expect=200)
    for view, extra in (("summary", {}), ("by_target", {"target_path": "total"})):
        stale = await metrics(api, xr["id"], view=view, **extra)
        s = sdk(ExperimentMetricsStaleError, stale)
        assert s.kind == "stale_metrics" and "config_changed" in s.stale_reasons and s.last_run.run_id == xr["id"]
        assert s.current_block_execution_fingerprint != s.last_run.block_execution_fingerprint
    e = sdk(WorkflowExperiment, await api.get(f"/v1/workflows/experiments/{exp['id']}", expect=200))
    assert e.is_stale and e.freshness_state == "stale" and "validity_changed" in e.freshness_reasons
    assert e.run_plan_mode == "run"
    # a document-set change is stale too
    await api.patch(f"/v1/workflows/blocks/{block}", {"config": {"instructions": None}}, expect=200)
    assert (await metrics(api, xr["id"]))["kind"] == "summary"
    await api.patch(
        f"/v1/workflows/experiments/{exp['id']}",
        {"documents": [{"handle_inputs": await file_input(api)}] * 2},
        expect=200,
    )
    assert (await metrics(api, xr["id"]))["kind"] == "stale_metrics"

    # a run with nothing completed: no_metrics (HTTP 200)
    _, _, slow = await experiment(api, docs=1, config=SLOW)
    sr = await api.post("/v1/workflows/experiments/runs", {"experiment_id": slow["id"]}, expect=201)
    missing = await metrics(api, sr["id"])
    assert sdk(ExperimentMetricsMissingError, missing).kind == "no_metrics" and missing["experiment_id"] == slow["id"]
    await api.post(f"/v1/workflows/experiments/runs/{sr['id']}/cancel", expect=200)


async def test_experiment_run_with_no_documents_completes(api: Api) -> None:
    _, _, exp = await experiment(api, docs=0)
    xr = await api.post("/v1/workflows/experiments/runs", {"experiment_id": exp["id"]}, expect=201)
    done = await api.wait_run(xr["id"], within_s=10)
    sdk(ExperimentRun, done)
    assert done["lifecycle"]["status"] in ("completed", "error")
    assert (await metrics(api, xr["id"]))["kind"] == "no_metrics"


@pytest.mark.parametrize(
    ("block_type", "config", "operation", "target"),
    [
        (
            "classifier",
            {"categories": [{"name": "invoice"}, {"name": "receipt"}]},
            "classification",
            "invoice",
        ),
        (
            "split",
            {"subdocuments": [{"name": "invoice"}, {"name": "other"}]},
            "split",
            "invoice",
        ),
    ],
)
async def test_classifier_and_split_experiments(
    api: Api, block_type: str, config: dict[str, Any], operation: str, target: str
) -> None:
    wf, _ = await api.workflow_with_extract()
    block = await api.post(
        "/v1/workflows/blocks",
        {"workflow_id": wf, "type": block_type, "config": {"model": "simulated", **config}},
        expect=201,
    )
    handle = "input-file-0" if block_type == "split" else "input-file-document"
    doc = await api.upload(b"Invoice Number: A\nTotal: $1\n")
    exp = await api.post(
        "/v1/workflows/experiments",
        {
            "workflow_id": wf,
            "block_id": block["id"],
            "n_consensus": 5,
            "documents": [{"handle_inputs": {handle: {"type": "file", "document": doc}}}],
        },
        expect=201,
    )
    assert sdk(WorkflowExperiment, exp).block_type == block_type
    xr = await api.post("/v1/workflows/experiments/runs", {"experiment_id": exp["id"]}, expect=201)
    done = await api.wait_run(xr["id"])
    assert sdk(ExperimentRun, done).lifecycle.status == "completed", done["lifecycle"]
    results = await api.get("/v1/workflows/experiments/results", params={"run_id": xr["id"]}, expect=200)
    res = sdk(ExperimentResult, results["data"][0])
    assert res.artifact.operation == operation
    art = sdk(ARTIFACT, await api.get(f"/v1/workflows/artifacts/{res.artifact.id}", expect=200))
    assert art.operation == operation
    summary = await metrics(api, xr["id"])
    assert summary["kind"] == "summary" and summary["block_type"] == block_type
    await metrics(api, xr["id"], view="by_document", document_id=res.document_id)
    await metrics(api, xr["id"], view="by_target", target_path=target)
    await metrics(api, xr["id"], view="votes", document_id=res.document_id, target_path=target)


async def test_all_documents_failing_is_a_run_error(api: Api) -> None:
    _, _, exp = await experiment(api, docs=2, config={"simulation": {"error_rate": 1.0}})
    xr = await api.post("/v1/workflows/experiments/runs", {"experiment_id": exp["id"]}, expect=201)
    done = sdk(ExperimentRun, await api.wait_run(xr["id"]))
    assert done.lifecycle.status == "error" and done.lifecycle.message and done.error_count == 2
    results = await api.get("/v1/workflows/experiments/results", params={"run_id": xr["id"]}, expect=200)
    for r in results["data"]:
        res = sdk(ExperimentResult, r)
        assert res.lifecycle.status == "error" and res.lifecycle.message
    assert (await metrics(api, xr["id"]))["kind"] == "no_metrics"
    e = sdk(WorkflowExperiment, await api.get(f"/v1/workflows/experiments/{exp['id']}", expect=200))
    assert e.status == "failed"


async def test_changing_n_consensus_makes_the_metrics_stale(api: Api) -> None:
    """5 → 7 passes: the n = 5 run no longer describes the experiment (it said fresh, `noop`, and served the
    n = 5 metrics as current); back to 5, it does again. A previewed plan pins n too."""
    _wf, _block, exp = await experiment(api, docs=1)
    await api.patch(f"/v1/workflows/experiments/{exp['id']}", {"n_consensus": 5}, expect=200)
    xr = await api.post("/v1/workflows/experiments/runs", {"experiment_id": exp["id"]}, expect=201)
    assert (await api.wait_run(xr["id"]))["n_consensus"] == 5
    e = sdk(WorkflowExperiment, await api.get(f"/v1/workflows/experiments/{exp['id']}", expect=200))
    assert e.freshness_state == "fresh" and e.run_plan_mode == "noop"
    token = (await api.get(f"/v1/workflows/experiments/{exp['id']}", expect=200))["plan_token"]

    await api.patch(f"/v1/workflows/experiments/{exp['id']}", {"n_consensus": 7}, expect=200)
    e = sdk(WorkflowExperiment, await api.get(f"/v1/workflows/experiments/{exp['id']}", expect=200))
    assert e.is_stale and e.freshness_state == "stale" and e.freshness_reasons == ["validity_changed"]
    assert e.run_plan_mode == "run" and e.rerunnable_document_count == 1
    stale = sdk(ExperimentMetricsStaleError, await metrics(api, xr["id"]))
    assert stale.stale_reasons == ["n_consensus_changed"] and "n_consensus" in stale.message
    old_plan = {"experiment_id": exp["id"], "plan_token": token}
    assert_envelope(await raw(api, "POST", "/v1/workflows/experiments/runs", json=old_plan), 409, "plan_changed")

    await api.patch(f"/v1/workflows/experiments/{exp['id']}", {"n_consensus": 5}, expect=200)
    assert (await metrics(api, xr["id"]))["kind"] == "summary"
    e = sdk(WorkflowExperiment, await api.get(f"/v1/workflows/experiments/{exp['id']}", expect=200))
    assert e.freshness_state == "fresh" and e.run_plan_mode == "noop"
