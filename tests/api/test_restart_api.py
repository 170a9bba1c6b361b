"""Every resource survives a server restart: two apps in sequence on the same SQLite file."""

from __future__ import annotations

from typing import Any

from tests.api.test_support import SLOW, create_eval, file_input, raw
from tests.conftest import Api, AppFactory, invoice_text


async def snapshot(api: Api, ids: dict[str, Any]) -> dict[str, Any]:
    """Every GET whose body must be identical before and after the restart."""
    paths = [
        f"/v1/workflows/{ids['wf']}",
        f"/v1/workflows/blocks/{ids['block']}",
        f"/v1/workflows/edges/{ids['edge']}",
        f"/v1/files/{ids['file']}",
        f"/v1/workflows/evals/{ids['eval']}",
        f"/v1/workflows/tests/{ids['test']}",
        f"/v1/workflows/{ids['wf']}/tests/{ids['test']}",
        f"/v1/workflows/evals/runs/{ids['eval_run']}",
        f"/v1/workflows/tests/runs/{ids['test_run']}",
        f"/v1/workflows/evals/runs/{ids['cancelled_run']}",
        f"/v1/workflows/experiments/{ids['exp']}",
        f"/v1/workflows/experiments/{ids['exp']}/documents",
        f"/v1/workflows/experiments/runs/{ids['exp_run']}",
        f"/v1/workflows/artifacts/{ids['artifact']}",
    ]
    out: dict[str, Any] = {p: await api.get(p, expect=200) for p in paths}
    lists: list[tuple[str, dict[str, Any]]] = [
        ("/v1/workflows", {}),
        ("/v1/workflows/blocks", {"workflow_id": ids["wf"]}),
        ("/v1/workflows/edges", {"workflow_id": ids["wf"]}),
        ("/v1/files", {}),
        ("/v1/workflows/evals", {"workflow_id": ids["wf"]}),
        ("/v1/workflows/evals/runs", {"workflow_id": ids["wf"]}),
        ("/v1/workflows/evals/results", {"run_id": ids["eval_run"]}),
        ("/v1/workflows/tests/results", {"run_id": ids["test_run"]}),
        ("/v1/workflows/experiments", {"workflow_id": ids["wf"]}),
        ("/v1/workflows/experiments/runs", {"experiment_id": ids["exp"]}),
        ("/v1/workflows/experiments/results", {"run_id": ids["exp_run"]}),
        ("/v1/workflows/artifacts", {"run_id": ids["exp_run"]}),
    ]
    for path, params in lists:
        out[f"{path}?{sorted(params.items())}"] = await api.get(path, params=params, expect=200)
    for view, extra in (
        ("summary", {}),
        ("by_target", {"target_path": "total"}),
        ("by_document", {"document_id": ids["document"]}),
        ("votes", {"document_id": ids["document"], "target_path": "total"}),
    ):
        out[f"metrics {view}"] = await api.get(
            "/v1/workflows/experiments/metrics", params={"run_id": ids["exp_run"], "view": view, **extra}, expect=200
        )
    resp = await api.client.get(f"/v1/files/{ids['file']}/download", headers={"Api-Key": "test-key"})
    out["download"] = await resp.read()
    return out


async def test_everything_survives_a_restart(make_api: AppFactory) -> None:
    api = await make_api()
    wf, block = await api.workflow_with_extract()
    start = next(
        b["id"]
        for b in (await api.get("/v1/workflows/blocks", params={"workflow_id": wf}, expect=200))["data"]
        if b["type"] == "start_document"
    )
    edge = await api.post(
        "/v1/workflows/edges", {"workflow_id": wf, "source_block": start, "target_block": block}, expect=201
    )
    inputs = await file_input(api)
    ev = await create_eval(api, wf, block, inputs)
    test = await create_eval(api, wf, block, inputs, dialect="tests")
    run = await api.post("/v1/workflows/evals/runs", {"workflow_id": wf}, expect=201)
    await api.wait_run(run["id"])
    test_run = await api.post(f"/v1/workflows/{wf}/tests/runs", {"test_id": test["id"]}, expect=201)
    await api.wait_run(test_run["id"])
    exp = await api.post(
        "/v1/workflows/experiments",
        {"workflow_id": wf, "block_id": block, "n_consensus": 5, "documents": [{"handle_inputs": inputs}]},
        expect=201,
    )
    xr = await api.post("/v1/workflows/experiments/runs", {"experiment_id": exp["id"]}, expect=201)
    await api.wait_run(xr["id"])
    xres = (await api.get("/v1/workflows/experiments/results", params={"run_id": xr["id"]}, expect=200))["data"][0]
    slow_wf, slow_block = await api.workflow_with_extract(SLOW)
    await create_eval(api, slow_wf, slow_block, await file_input(api))
    cancelled = await api.post("/v1/workflows/evals/runs", {"workflow_id": slow_wf}, expect=201)
    await api.post(f"/v1/workflows/evals/runs/{cancelled['id']}/cancel", expect=200)
    in_flight = await api.post("/v1/workflows/evals/runs", {"workflow_id": slow_wf}, expect=201)
    pending_upload = await api.post(
        "/v1/files/upload", {"filename": "late.txt", "size_bytes": len(invoice_text())}, expect=200
    )
    ids = {
        "wf": wf,
        "block": block,
        "edge": edge["id"],
        "file": inputs["input-file-document"]["document"]["id"],
        "eval": ev["id"],
        "test": test["id"],
        "eval_run": run["id"],
        "test_run": test_run["id"],
        "cancelled_run": cancelled["id"],
        "exp": exp["id"],
        "exp_run": xr["id"],
        "artifact": xres["artifact"]["id"],
        "document": xres["document_id"],
    }
    before = await snapshot(api, ids)
    await api.client.close()

    again = await make_api()
    after = await snapshot(again, ids)
    for key, value in before.items():
        assert after[key] == value, key
    # a run that was in flight is still there and still open (recovery resumes it); it can be cancelled
    resumed = await again.get(f"/v1/workflows/evals/runs/{in_flight['id']}", expect=200)
    assert resumed["lifecycle"]["status"] in ("pending", "queued", "running")
    done = await again.post(f"/v1/workflows/evals/runs/{in_flight['id']}/cancel", expect=200)
    assert done["lifecycle"]["status"] == "cancelled"
    # an upload session opened before the restart can still be finished with its URL
    path = "/" + pending_upload["upload_url"].split("://", 1)[1].split("/", 1)[1]
    put = await raw(again, "PUT", path, data=invoice_text(), auth=False)
    assert put.status == 200, put.body
    await again.post(f"/v1/files/upload/{pending_upload['file_id']}/complete", expect=200)
    # and the restarted server keeps working on the old resources
    rerun = await again.post(
        "/v1/workflows/evals/runs", {"workflow_id": wf, "scope": {"type": "single", "eval_id": ev["id"]}}, expect=201
    )
    assert (await again.wait_run(rerun["id"]))["counts"]["outcome"]["passed"] == 1
    xr2 = await again.post("/v1/workflows/experiments/runs", {"experiment_id": exp["id"]}, expect=201)
    await again.wait_run(xr2["id"])
    summary = await again.get("/v1/workflows/experiments/metrics", params={"run_id": xr2["id"]}, expect=200)
    assert summary["prior_run_id"] == xr["id"]
