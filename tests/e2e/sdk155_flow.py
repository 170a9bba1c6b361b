"""Run INSIDE the separate retab==0.0.155 venv (not importable from the main venv's tests on purpose).

Usage: python sdk155_flow.py BASE_URL API_KEY  → prints one JSON line with what it checked.
The flat generation-C test surface: tests.create/get/list/update, tests.runs.create/get/list/cancel,
tests.results.list/get. Every request must carry `Api-Key` (never `Authorization`).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
from retab import Retab
from retab.exceptions import NotFoundError

INVOICE = b"Invoice Number: INV-155\nVendor: ACME Inc\nTotal: $1,234.56\n"
TERMINAL = {"completed", "error", "cancelled"}


def wait(get: Callable[[str], Any], run_id: str, timeout: float = 120.0) -> Any:
    run, t0 = get(run_id), time.time()
    while run.lifecycle.status not in TERMINAL:
        assert time.time() - t0 < timeout, "run did not finish"
        time.sleep(0.1)
        run = get(run_id)
    return run


def main(base_url: str, key: str) -> dict[str, Any]:
    c: Any = Retab(api_key=key, base_url=base_url, max_retries=0)  # typed as 0.0.160 in the main venv
    sent: list[dict[str, str]] = []
    c.client.event_hooks["request"] = [lambda req: sent.append(dict(req.headers))]
    wf = c.workflows.create(project_id="p155", name="sdk155")
    schema = {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]}
    block = c.workflows.blocks.create(
        workflow_id=wf.id, type="extract", config={"model": "retab-small", "json_schema": schema}
    )
    up = c.files.create_upload(filename="invoice.txt", size_bytes=len(INVOICE), content_type="text/plain")
    httpx.request(up.upload_method or "PUT", up.upload_url, content=INVOICE, headers=up.upload_headers or {})
    c.files.complete_upload(up.file_id)
    doc = {"id": up.file_id, "filename": "invoice.txt", "mime_type": "text/plain"}
    inputs = {"input-file-document": {"type": "file", "document": doc}}
    assertion = {
        "target": {"output_handle_id": "output-json-0", "path": "total"},
        "condition": {"kind": "equals", "expected": 1234.56},
    }

    t = c.workflows.tests.create(
        workflow_id=wf.id,
        target={"type": "block", "block_id": block.id},
        source={"type": "manual", "handle_inputs": inputs},
        assertion=assertion,
        name="total",
    )
    assert t.id.startswith("wfnodetest_"), t.id
    assert c.workflows.tests.get(t.id).name == "total"
    assert [x.id for x in c.workflows.tests.list(workflow_id=wf.id)] == [t.id]
    assert c.workflows.tests.update(t.id, name="renamed").name == "renamed"

    tr = c.workflows.tests.runs.create(workflow_id=wf.id, scope={"type": "single", "test_id": t.id})
    assert tr.id.startswith("wftestrun_") and tr.total_tests == 1 and tr.test_id == t.id
    tr = wait(c.workflows.tests.runs.get, tr.id)
    assert tr.lifecycle.status == "completed", tr.lifecycle
    assert tr.counts.lifecycle_counts.completed == 1 and tr.counts.outcome.passed == 1
    assert tr.workflow_id == wf.id and tr.workflow_version_id
    rows = c.workflows.tests.results.list(run_id=tr.id)
    assert len(rows.data) == 1 and rows.list_metadata.after is None
    one = c.workflows.tests.results.get(rows.data[0].id)
    assert one.verdict == "passed" and one.test_id == t.id and one.workflow_test_run_id == tr.id
    assert one.assertion_result.outcome == "passed" and one.verdict_summary.passed is True
    assert tr.id in [r.id for r in c.workflows.tests.runs.list(workflow_id=wf.id, test_id=t.id)]
    after = c.workflows.tests.get(t.id)
    assert after.latest_run_summary is not None and after.latest_run_summary.run_record_id == tr.id
    assert after.freshness is not None and after.freshness.status == "fresh"

    block_run = c.workflows.tests.runs.create(workflow_id=wf.id, scope={"type": "block", "block_id": block.id})
    wf_run = c.workflows.tests.runs.create(workflow_id=wf.id)
    for r in (block_run, wf_run):
        assert wait(c.workflows.tests.runs.get, r.id).counts.outcome.passed == 1
    try:
        c.workflows.tests.runs.cancel(tr.id)
        raise AssertionError("cancelling a completed test run must 404")
    except NotFoundError as exc:
        assert exc.request_id
    c.workflows.tests.delete(t.id)
    try:
        c.workflows.tests.get(t.id)
        raise AssertionError("a deleted test must 404")
    except NotFoundError:
        pass
    c.workflows.delete(wf.id)
    api_sdk = [h for h in sent if "api.retab" not in h.get("host", "")]
    assert api_sdk and all(h.get("api-key") == key and "authorization" not in h for h in api_sdk), sent[:2]
    return {"test_id": t.id, "run_id": tr.id, "requests": len(sent)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
