from __future__ import annotations

from tests.conftest import Api, invoice_text


async def test_eval_run_end_to_end_in_process(api: Api) -> None:
    wf, block = await api.workflow_with_extract()
    doc = await api.upload(invoice_text())
    inputs = {"input-file-document": {"type": "file", "document": doc}}
    ev = await api.post(
        "/v1/workflows/evals",
        {
            "workflow_id": wf,
            "target": {"type": "block", "block_id": block},
            "source": {"type": "manual", "handle_inputs": inputs},
            "assertion": {
                "target": {"output_handle_id": "output-json-0", "path": "total"},
                "condition": {"kind": "equals", "expected": 1234.56},
            },
        },
        expect=201,
    )
    run = await api.post(
        "/v1/workflows/evals/runs", {"workflow_id": wf, "scope": {"type": "single", "eval_id": ev["id"]}}, expect=201
    )
    assert run["counts"]["lifecycle_counts"]["pending"] == 1 and run["total_evals"] == 1
    done = await api.wait_run(run["id"])
    assert done["lifecycle"]["status"] == "completed"
    assert done["counts"]["outcome"] == {"passed": 1, "failed": 0, "blocked": 0}
    results = await api.get("/v1/workflows/evals/results", params={"run_id": run["id"]}, expect=200)
    assert results["data"][0]["verdict"] == "passed"
    assert results["data"][0]["engine"] == "simulated"
