"""retab==0.0.160 against the real server process: the spec §5 walkthrough and its acceptance checks."""

from __future__ import annotations

import warnings
from typing import Any

import httpx
import pytest
from pydantic import ValidationError as PydanticValidationError
from retab import Retab
from retab.exceptions import APIError, AuthenticationError, ConflictError, NotFoundError
from retab.exceptions import ValidationError as RetabValidationError

from tests.e2e.conftest import LiveServer
from tests.e2e.walkthrough import INVOICE, run_walkthrough, wait

pytestmark = pytest.mark.e2e
SCHEMA = {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]}


def client(server: LiveServer) -> Any:
    return Retab(api_key=server.api_key, base_url=server.base_url, max_retries=0)


def workflow(c: Any, config: dict[str, Any] | None = None) -> tuple[str, str]:
    wf = c.workflows.create(project_id="proj_e2e", name="e2e")
    block = c.workflows.blocks.create(
        workflow_id=wf.id, type="extract", config={"model": "retab-small", "json_schema": SCHEMA, **(config or {})}
    )
    return wf.id, block.id


def file_input(c: Any) -> dict[str, Any]:
    up = c.files.create_upload(filename="invoice.txt", size_bytes=len(INVOICE), content_type="text/plain")
    httpx.request(up.upload_method or "PUT", up.upload_url, content=INVOICE, headers=up.upload_headers or {})
    c.files.complete_upload(up.file_id)
    return {
        "input-file-document": {
            "type": "file",
            "document": {"id": up.file_id, "filename": "invoice.txt", "mime_type": "text/plain"},
        }
    }


def test_walkthrough(live_server: LiveServer) -> None:
    out = run_walkthrough(live_server.base_url, live_server.api_key)
    assert out["artifact_operation"] == "extraction" and out["score"] is not None


def test_base_url_with_v1_suffix_and_bad_key(live_server: LiveServer) -> None:
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        c = Retab(api_key=live_server.api_key, base_url=live_server.base_url + "/v1", max_retries=0)
    wf = c.workflows.create(project_id="p", name="v1 suffix")
    assert c.workflows.get(wf.id).name == "v1 suffix"
    bad = Retab(api_key="not-the-key", base_url=live_server.base_url, max_retries=0)
    with pytest.raises(AuthenticationError) as err:
        bad.workflows.get(wf.id)
    assert err.value.status_code == 401 and err.value.request_id
    c.workflows.delete(wf.id)


def test_evals_crud_and_pagination(live_server: LiveServer) -> None:
    c = client(live_server)
    wf, block = workflow(c)
    assertion = {
        "target": {"output_handle_id": "output-json-0", "path": "total"},
        "condition": {"kind": "number_compare", "op": "gt", "expected": 0},
    }
    made = [
        c.workflows.evals.create(
            workflow_id=wf,
            target={"type": "block", "block_id": block},
            source={"type": "manual", "handle_inputs": {}},
            assertion=assertion,
            name=f"e{i}",
        ).id
        for i in range(7)
    ]
    seen = [e.id for e in c.workflows.evals.list(workflow_id=wf, limit=2)]  # auto-pagination
    assert sorted(seen) == sorted(made) and len(seen) == len(set(seen)) == 7
    page = c.workflows.evals.list(workflow_id=wf, limit=3)
    pages = [page]
    while page.has_more:
        page = c.workflows.evals.list(workflow_id=wf, limit=3, after=page.list_metadata.after)
        pages.append(page)
    assert [len(p.data) for p in pages] == [3, 3, 1] and pages[-1].list_metadata.after is None
    assert [e.id for p in pages for e in p.data] == made[::-1]
    with pytest.raises(APIError) as err:
        c.workflows.evals.list(workflow_id=wf, before=made[0], after=made[1])
    assert err.value.status_code == 400

    one = c.workflows.evals.get(made[0])
    assert c.workflows.evals.update(made[0]) == one  # no fields: 200 and nothing changed
    renamed = c.workflows.evals.update(made[0], name="renamed")
    assert renamed.name == "renamed" and renamed.assertion == one.assertion
    with pytest.raises(PydanticValidationError):
        c.workflows.evals.create(
            workflow_id=wf,
            target={"type": "block", "block_id": block},
            source={"type": "manual"},
            assertion={"target": {"output_handle_id": "o"}, "condition": {"kind": "no_such_kind"}},
        )
    unknown_file = {"d": {"type": "file", "document": {"id": "file_nope", "filename": "x", "mime_type": "text/plain"}}}
    with pytest.raises(RetabValidationError) as bad:  # server-side 422: the file does not exist
        c.workflows.evals.create(
            workflow_id=wf,
            target={"type": "block", "block_id": block},
            source={"type": "manual", "handle_inputs": unknown_file},
            assertion=assertion,
        )
    assert bad.value.status_code == 422 and bad.value.code == "file_not_found"
    c.workflows.evals.delete(made[0])
    with pytest.raises(NotFoundError) as nf:
        c.workflows.evals.get(made[0])
    assert nf.value.request_id and nf.value.code == "not_found"
    c.workflows.delete(wf)


def test_eval_run_scopes_and_list_filters(live_server: LiveServer) -> None:
    c = client(live_server)
    wf, block = workflow(c)
    ev = c.workflows.evals.create(
        workflow_id=wf,
        target={"type": "block", "block_id": block},
        source={"type": "manual", "handle_inputs": file_input(c)},
        assertion={"target": {"output_handle_id": "output-json-0", "path": "total"}, "condition": {"kind": "exists"}},
    )
    runs = [
        c.workflows.evals.runs.create(workflow_id=wf, scope={"type": "block", "block_id": block}),
        c.workflows.evals.runs.create(workflow_id=wf, scope={"type": "workflow"}),
        c.workflows.evals.runs.create(workflow_id=wf, n_consensus=3),  # a query extra
    ]
    for r in runs:
        done = wait(c.workflows.evals.runs.get, r.id)
        assert done.lifecycle.status == "completed" and done.total_evals == 1
        assert done.counts.outcome.passed == 1
    from datetime import UTC, datetime, timedelta

    since = datetime.now(UTC) - timedelta(hours=1)
    listed = c.workflows.evals.runs.list(workflow_id=wf, from_date=since, status="completed")
    assert {r.id for r in listed} == {r.id for r in runs}
    assert not list(c.workflows.evals.runs.list(workflow_id=wf, to_date=since))
    assert {r.id for r in c.workflows.evals.runs.list(workflow_id=wf, target_block_id=block)} == {runs[0].id}
    assert ev.id
    c.workflows.delete(wf)


def test_experiments_crud(live_server: LiveServer) -> None:
    c = client(live_server)
    wf, block = workflow(c)
    doc = file_input(c)
    exp = c.workflows.experiments.create(
        workflow_id=wf, block_id=block, name="Q1", n_consensus=5, documents=[{"handle_inputs": doc}]
    )
    assert exp.n_consensus == 5 and exp.document_count == 1 and exp.status == "draft"
    assert c.workflows.experiments.get(exp.id).id == exp.id
    assert [e.id for e in c.workflows.experiments.list(workflow_id=wf)] == [exp.id]
    assert [e.id for e in c.workflows.experiments.list(workflow_id=wf, block_id=block)] == [exp.id]
    upd = c.workflows.experiments.update(exp.id, name="Q2", n_consensus=7, documents=[{"handle_inputs": doc}] * 3)
    assert upd.name == "Q2" and upd.n_consensus == 7 and upd.document_count == 3
    dup = c.workflows.experiments.create(workflow_id=wf, source_experiment_id=exp.id)
    assert dup.name == "Q2 (Copy)" and dup.document_count == 3 and dup.n_consensus == 7
    with pytest.raises(PydanticValidationError):
        c.workflows.experiments.create(workflow_id=wf, block_id=block, n_consensus=4)
    with pytest.raises(NotFoundError):
        c.workflows.experiments.runs.create(experiment_id=exp.id, workflow_id="wf_other")
    c.workflows.experiments.delete(dup.id)
    with pytest.raises(NotFoundError):
        c.workflows.experiments.get(dup.id)

    # delete while a run is in flight → 409; cancel is idempotent; then delete works
    c.workflows.blocks.update(block, config={"simulation": {"latency_ms": 600000}})
    xr = c.workflows.experiments.runs.create(experiment_id=exp.id)
    with pytest.raises(ConflictError):
        c.workflows.experiments.delete(exp.id)
    cancelled = c.workflows.experiments.runs.cancel(xr.id)
    assert cancelled.id == xr.id and cancelled.lifecycle.status == "cancelled"
    assert c.workflows.experiments.runs.cancel(xr.id).lifecycle.status == "cancelled"
    assert c.workflows.experiments.runs.get(xr.id).lifecycle.status == "cancelled"
    missing = c.workflows.experiments.metrics.get(xr.id)
    assert missing.kind == "no_metrics"
    c.workflows.experiments.delete(exp.id)
    with pytest.raises(NotFoundError):
        c.workflows.experiments.runs.get(xr.id)
    c.workflows.delete(wf)


def test_stale_metrics_through_the_sdk(live_server: LiveServer) -> None:
    c = client(live_server)
    wf, block = workflow(c)
    exp = c.workflows.experiments.create(
        workflow_id=wf, block_id=block, n_consensus=3, documents=[{"handle_inputs": file_input(c)}]
    )
    xr = wait(c.workflows.experiments.runs.get, c.workflows.experiments.runs.create(experiment_id=exp.id).id)
    assert xr.lifecycle.status == "completed"
    assert c.workflows.experiments.metrics.get(xr.id, view="summary").kind == "summary"
    c.workflows.blocks.update(block, config={"instructions": "changed"})
    stale = c.workflows.experiments.metrics.get(xr.id, view="summary")
    assert stale.kind == "stale_metrics" and "config_changed" in (stale.stale_reasons or [])
    assert c.workflows.experiments.get(exp.id).is_stale
    c.workflows.delete(wf)


def test_leave_work_in_flight_for_shutdown(live_server: LiveServer) -> None:
    """Left running on purpose: the session teardown SIGTERMs the server mid-run and asserts exit 0."""
    c = client(live_server)
    wf, block = workflow(c, {"simulation": {"latency_ms": 600000}})
    c.workflows.evals.create(
        workflow_id=wf,
        target={"type": "block", "block_id": block},
        source={"type": "manual", "handle_inputs": file_input(c)},
        assertion={"target": {"output_handle_id": "output-json-0"}, "condition": {"kind": "exists"}},
    )
    run = c.workflows.evals.runs.create(workflow_id=wf)
    exp = c.workflows.experiments.create(
        workflow_id=wf, block_id=block, n_consensus=3, documents=[{"handle_inputs": file_input(c)}] * 3
    )
    c.workflows.experiments.runs.create(experiment_id=exp.id)
    assert c.workflows.evals.runs.get(run.id).lifecycle.status in ("pending", "queued", "running")
