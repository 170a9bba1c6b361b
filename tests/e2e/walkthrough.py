"""The spec §5 SDK walkthrough, runnable as a script or imported by the e2e tests.

Usage: python tests/e2e/walkthrough.py BASE_URL API_KEY
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
from retab import Retab
from retab.exceptions import APIError, ConflictError, NotFoundError

TERMINAL = {"completed", "error", "cancelled"}
INVOICE = b"Invoice Number: INV-001\nVendor: ACME Inc\nTotal: $1,234.56\n"


def wait(get: Callable[[str], Any], run_id: str, timeout: float = 120, every: float = 0.2) -> Any:
    run, t0 = get(run_id), time.time()
    while run.lifecycle.status not in TERMINAL:
        assert time.time() - t0 < timeout, "run did not finish"
        time.sleep(every)
        run = get(run_id)
    return run


def run_walkthrough(base_url: str, api_key: str) -> dict[str, Any]:
    client: Any = Retab(api_key=api_key, base_url=base_url)
    wf = client.workflows.create(project_id="proj_local", name="Invoice workflow")
    start = next(b for b in client.workflows.blocks.list(workflow_id=wf.id) if b.type == "start_document")
    schema = {
        "type": "object",
        "properties": {"invoice_number": {"type": "string"}, "total": {"type": "number"}},
        "required": ["invoice_number", "total"],
    }
    extract = client.workflows.blocks.create(
        workflow_id=wf.id,
        type="extract",
        label="Extract invoice",
        config={"model": "retab-small", "json_schema": schema, "n_consensus": 1},
    )
    client.workflows.edges.create(
        workflow_id=wf.id,
        source_block=start.id,
        target_block=extract.id,
        source_handle="output-file-0",
        target_handle="input-file-document",
    )
    up = client.files.create_upload(filename="invoice.txt", size_bytes=len(INVOICE), content_type="text/plain")
    httpx.request(up.upload_method or "PUT", up.upload_url, content=INVOICE, headers=up.upload_headers or {})
    client.files.complete_upload(up.file_id)
    doc = {"id": up.file_id, "filename": "invoice.txt", "mime_type": "text/plain"}
    file_input = {"input-file-document": {"type": "file", "document": doc}}
    ev = client.workflows.evals.create(
        workflow_id=wf.id,
        target={"type": "block", "block_id": extract.id},
        source={"type": "manual", "handle_inputs": file_input},
        assertion={
            "target": {"output_handle_id": "output-json-0", "path": "total"},
            "condition": {"kind": "equals", "expected": 1234.56},
        },
        name="invoice total",
    )
    assert client.workflows.evals.get(ev.id).id == ev.id
    assert any(e.id == ev.id for e in client.workflows.evals.list(workflow_id=wf.id))

    run = client.workflows.evals.runs.create(workflow_id=wf.id, scope={"type": "single", "eval_id": ev.id})
    assert run.lifecycle.status in {"pending", "queued", "running"} and run.total_evals == 1
    run = wait(client.workflows.evals.runs.get, run.id)
    lc, oc = run.counts.lifecycle_counts, run.counts.outcome
    assert sum([lc.pending, lc.queued, lc.running, lc.completed, lc.error, lc.cancelled]) == run.total_evals
    assert oc.passed + oc.failed + oc.blocked == lc.completed
    results = client.workflows.evals.results.list(run_id=run.id)
    res = client.workflows.evals.results.get(results.data[0].id)
    assert res.verdict == "passed", res
    assert res.assertion_result is not None and res.assertion_result.outcome == "passed"
    assert any(r.id == run.id for r in client.workflows.evals.runs.list(workflow_id=wf.id, eval_id=ev.id))

    exp = client.workflows.experiments.create(
        workflow_id=wf.id,
        block_id=extract.id,
        name="Q1 invoices",
        n_consensus=3,
        documents=[{"handle_inputs": file_input}],
    )
    xr = client.workflows.experiments.runs.create(experiment_id=exp.id, workflow_id=wf.id)
    xr = wait(client.workflows.experiments.runs.get, xr.id)
    assert xr.n_consensus == 3 and xr.completed_document_count + xr.error_count <= xr.total_document_count
    assert xr.lifecycle.status == "completed", xr.lifecycle
    xres = client.workflows.experiments.results.list(run_id=xr.id)
    votes_artifact = client.workflows.artifacts.get(xres.data[0].artifact.id)
    summary = client.workflows.experiments.metrics.get(xr.id, view="summary")
    by_doc = client.workflows.experiments.metrics.get(xr.id, view="by_document", document_id=xres.data[0].document_id)
    by_tgt = client.workflows.experiments.metrics.get(xr.id, view="by_target", target_path="total")
    doc_id = xres.data[0].document_id
    votes = client.workflows.experiments.metrics.get(xr.id, view="votes", document_id=doc_id, target_path="total")
    assert summary.kind == "summary" and by_doc.kind == "by_document" and by_tgt.kind == "by_target"
    assert votes.kind == "votes" and len(votes.rows) == 1 and len(votes.rows[0].votes) == 3

    r2 = client.workflows.evals.runs.create(workflow_id=wf.id)
    try:
        r2 = client.workflows.evals.runs.cancel(r2.id)
        assert r2.lifecycle.status == "cancelled"
    except NotFoundError:
        pass
    x2 = client.workflows.experiments.runs.create(experiment_id=exp.id)
    try:
        client.workflows.experiments.delete(exp.id)
    except ConflictError:
        pass  # in flight: expected unless it already finished
    try:
        c2 = client.workflows.experiments.runs.cancel(x2.id)
        assert c2.lifecycle.status == "cancelled"
        client.workflows.experiments.runs.cancel(x2.id)
    except NotFoundError:
        pass  # it already completed
    try:
        client.workflows.evals.runs.cancel(run.id)
        raise AssertionError("cancelling a completed run must 404")
    except NotFoundError:
        pass
    try:
        client.workflows.evals.runs.get("wfevalrun_missing")
        raise AssertionError("unknown run must 404")
    except NotFoundError as e:
        assert e.status_code == 404 and e.request_id
    try:
        client.workflows.experiments.runs.create(experiment_id=exp.id, workflow_id="wf_other")
        raise AssertionError("mismatched workflow must 404")
    except NotFoundError:
        pass
    try:
        client.workflows.evals.list(workflow_id=wf.id, before="a", after="b")
        raise AssertionError("before+after must 400")
    except APIError as e:
        assert e.status_code == 400
    out = {
        "workflow_id": wf.id,
        "eval_id": ev.id,
        "run_id": run.id,
        "experiment_id": exp.id,
        "experiment_run_id": xr.id,
        "artifact_operation": votes_artifact.operation,
        "score": summary.score,
    }
    client.workflows.evals.delete(ev.id)
    client.workflows.experiments.delete(exp.id)
    client.workflows.delete(wf.id)
    return out


if __name__ == "__main__":
    print(run_walkthrough(sys.argv[1], sys.argv[2]))
