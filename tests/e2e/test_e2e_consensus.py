"""retab==0.0.160's `client.consensus.create` against the real server: a parsed ReconciliationResult for
objects with nested lists, equal to the consensus the run engine reached on the very same passes; and an
SDK route the server does not serve, seen through the SDK."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from retab import Retab
from retab.exceptions import InternalServerError
from retab.exceptions import ValidationError as RetabValidationError
from retab.types.consensus import ReconciliationResult

from orchestrator.demo import INVOICE_SCHEMA, invoice_files
from tests.e2e.conftest import LiveServer
from tests.e2e.walkthrough import wait

pytestmark = pytest.mark.e2e


def client(server: LiveServer) -> Any:
    return Retab(api_key=server.api_key, base_url=server.base_url, max_retries=0)


def flatten(tree: Any, path: str = "") -> dict[str, float]:
    """The artifact's likelihood tree as the flat map of POST /v1/consensus (leaf path → likelihood)."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in flatten(sub, f"{path}.{key}" if path else key).items()}
    if isinstance(tree, list):
        return {k: v for i, sub in enumerate(tree) for k, v in flatten(sub, f"{path}.{i}" if path else str(i)).items()}
    return {path: float(tree)}


def upload(c: Any, name: str, data: bytes) -> dict[str, Any]:
    up = c.files.create_upload(filename=name, size_bytes=len(data), content_type="text/plain")
    httpx.request(up.upload_method or "PUT", up.upload_url, content=data, headers=up.upload_headers or {})
    c.files.complete_upload(up.file_id)
    return {
        "input-file-document": {
            "type": "file",
            "document": {"id": up.file_id, "filename": name, "mime_type": "text/plain"},
        }
    }


def test_consensus_create_equals_the_run_engines_consensus(live_server: LiveServer) -> None:
    c = client(live_server)
    wf = c.workflows.create(project_id="proj_e2e", name="consensus e2e")
    config = {"model": "simulated", "json_schema": INVOICE_SCHEMA, "simulation": {"disagreement": 0.3}}
    block = c.workflows.blocks.create(workflow_id=wf.id, type="extract", config=config)
    docs = [{"handle_inputs": upload(c, name, data)} for name, data in invoice_files()[:4]]
    exp = c.workflows.experiments.create(workflow_id=wf.id, block_id=block.id, name="c", n_consensus=5, documents=docs)
    run = wait(c.workflows.experiments.runs.get, c.workflows.experiments.runs.create(experiment_id=exp.id).id)
    assert run.lifecycle.status == "completed"

    disagreed = 0
    for result in c.workflows.experiments.results.list(run_id=run.id).data:
        artifact = c.workflows.artifacts.get(result.artifact.id)
        passes = artifact.consensus.choices
        assert len(passes) == 5 and all(isinstance(p, dict) for p in passes)
        assert any(p.get("line_items") for p in passes), "nested lists of objects"
        disagreed += len({str(p) for p in passes}) > 1

        got = c.consensus.create(inputs=passes, json_schema=INVOICE_SCHEMA, include_alignment=True)
        assert isinstance(got, ReconciliationResult)
        assert got.consensus == artifact.output, "the run engine's consensus for the same passes"
        assert got.likelihoods == pytest.approx(flatten(artifact.consensus.likelihoods))
        for field in got.fields_ or []:
            assert field.total_input_count == 5
            assert field.likelihood == pytest.approx(field.supporting_input_count / 5)
        assert got.alignment.aligned_inputs is not None and len(got.alignment.aligned_inputs) == 5
        assert got.alignment.path_alignments and 0 <= got.alignment.reference_index < 5
        plain = c.consensus.create(inputs=passes, json_schema=INVOICE_SCHEMA)
        assert plain.consensus == artifact.output and plain.alignment.path_alignments is None
    assert disagreed, "the passes disagreed somewhere, so the comparison means something"

    with pytest.raises(RetabValidationError) as err:
        c.consensus.create(inputs=[{"total": 1}])
    assert err.value.status_code == 422 and err.value.code == "invalid_consensus_inputs"
    # (Non-object inputs never leave the SDK: its request model refuses them; the server's 422 for other
    # clients is in tests/api/test_consensus_api.py.)
    c.workflows.delete(wf.id)


def test_an_unserved_route_through_the_sdk(live_server: LiveServer) -> None:
    """A 501 (the SDK would retry a 5xx: max_retries=0 here) naming the resource, never 'Workflow runs
    not found'."""
    with pytest.raises(InternalServerError) as err:
        client(live_server).workflows.runs.get("wfrun_1")
    assert err.value.status_code == 501 and err.value.code == "not_implemented"
    details = err.value.details or {}
    assert "workflow runs" in str(err.value) and str(details["see"]).startswith("README.md")
