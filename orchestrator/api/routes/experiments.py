"""Experiments, experiment runs, results, metrics (spec §2.11–2.14) and artifacts (§2.15)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from aiohttp import web

from orchestrator.api.http import (
    json_response,
    no_content,
    page_json,
    page_request,
    parse_body,
    q,
    q_bool,
    q_enum,
    q_required,
)
from orchestrator.api.routes.runs import run_filters
from orchestrator.api.routes.workflows import svc
from orchestrator.api.services import Services
from orchestrator.core import metrics
from orchestrator.core.planning import metrics_validity_fingerprint
from orchestrator.errors import NotFound, Unprocessable
from orchestrator.store.sqlite.db import Row
from orchestrator.wire import render
from orchestrator.wire import requests as rq

T = TypeVar("T")
routes = web.RouteTableDef()
PUBLIC_STATUS = {
    "pending": "processing",
    "queued": "processing",
    "running": "processing",
    "completed": "completed",
    "error": "failed",
    "cancelled": "cancelled",
}


async def experiment_json(s: Services, exp: Row) -> dict[str, Any]:
    block, bfp, dfp = await s.current_fingerprints(exp)
    last = None
    if exp["last_run_id"]:
        try:
            last = await s.store.runs.get(exp["last_run_id"])
        except NotFound:
            last = None
    reasons: list[str] = []
    state = "unknown"
    if last is not None:
        fps = last.get("fingerprints") or {}
        if fps.get("block_execution_fingerprint") != bfp:
            reasons.append("validity_changed")
        if fps.get("documents_fingerprint") != dfp:
            reasons.append("inputs_changed")
        state = "stale" if reasons else "fresh"
    else:
        reasons = ["no_baseline"]
    in_flight = last is not None and last["status"] in ("pending", "queued", "running")
    plan = (
        "conflict" if in_flight else ("noop" if state == "fresh" and last and last["status"] == "completed" else "run")
    )
    return {
        "id": exp["id"],
        "object": "experiment",
        "workflow_id": exp["workflow_id"],
        "block_id": exp["block_id"],
        "block_type": (block or {}).get("type", "extract"),
        "name": exp["name"],
        "n_consensus": exp["n_consensus"],
        "document_count": exp["document_count"],
        "last_run_id": exp["last_run_id"],
        "created_at": exp["created_at"],
        "updated_at": exp["updated_at"],
        "status": PUBLIC_STATUS.get(last["status"], "draft") if last else "draft",
        "score": last.get("score") if last else None,
        "is_stale": state == "stale",
        "freshness": {
            "status": state,
            "reasons": reasons,
            "validity_fingerprint": bfp,
            "input_fingerprint": dfp,
            "baseline_run_id": last["id"] if last else None,
        },
        "freshness_state": state,
        "freshness_reasons": reasons,
        "run_plan_mode": plan,
        "rerunnable_document_count": 0 if plan in ("noop", "conflict") else exp["document_count"],
        "plan_token": metrics_validity_fingerprint(bfp, dfp) if bfp else None,
        "schema_drift": "unknown",
        "drift": {"status": "unknown", "affected_targets": []},
    }


@routes.get("/v1/workflows/experiments/runs")
async def list_runs(request: web.Request) -> web.Response:
    p = await svc(request).store.runs.list_page(("experiment",), page_request(request, 20), run_filters(request, "_"))
    return json_response(page_json(p, [render.experiment_run(r) for r in p.rows]))


@routes.post("/v1/workflows/experiments/runs")
async def create_run(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.CreateExperimentRun)
    return json_response(render.experiment_run(await svc(request).create_experiment_run(body)), 201)


@routes.get("/v1/workflows/experiments/runs/{run_id}")
async def get_run(request: web.Request) -> web.Response:
    return json_response(
        render.experiment_run(await svc(request).store.runs.get(request.match_info["run_id"], "experiment"))
    )


@routes.post("/v1/workflows/experiments/runs/{run_id}/cancel")
async def cancel_run(request: web.Request) -> web.Response:
    row = await svc(request).cancel_experiment_run(request.match_info["run_id"])
    return json_response(
        {"id": row["id"], "lifecycle": render.lifecycle(row["status"], row.get("error"), row.get("cancel_reason"))}
    )


@routes.get("/v1/workflows/experiments/results")
async def list_results(request: web.Request) -> web.Response:
    s = svc(request)
    req = page_request(request, 100)
    run = await s.store.runs.get(q_required(request, "run_id"), "experiment")
    p = await s.store.children.list_page(run["id"], req)
    for c in p.rows:
        c["experiment_id"] = run["experiment_id"]
    return json_response(page_json(p, [render.experiment_result(c) for c in p.rows]))


@routes.get("/v1/workflows/experiments/results/{result_id}")
async def get_result(request: web.Request) -> web.Response:
    child = await svc(request).store.children.get(request.match_info["result_id"], ("experiment",))
    return json_response(render.experiment_result(child))


METRICS_PAGE = 1000


async def _doc_pages(s: Services, run: Row, prior: Row | None) -> AsyncGenerator[list[metrics.DocRecord], None]:
    """(document, record, prior record) in pages of METRICS_PAGE, straight from SQLite."""
    after = -1
    while True:
        rows = await s.store.children.consensus_page(run["id"], after, METRICS_PAGE)
        prior_records: dict[str, Any] = {}
        if prior is not None and rows:
            prior_records = await s.store.children.records_for_documents(prior["id"], [r["document_id"] for r in rows])
        yield [
            metrics.DocRecord(
                document_id=r["document_id"],
                filename=r["filename"],
                record=r["consensus"],
                prior=prior_records.get(r["document_id"]),
            )
            for r in rows
        ]
        if len(rows) < METRICS_PAGE:
            return
        after = rows[-1]["position"]


async def _streamed(s: Services, run: Row, prior: Row | None, view: Callable[[Iterable[metrics.DocRecord]], T]) -> T:
    """Run a one-pass metrics view over every document without holding them all: the view runs in
    a worker thread and pulls one page at a time from the event loop. Memory stays at one page plus
    what the view itself returns, and the loop keeps serving while a 50,000-document view computes."""
    pages = _doc_pages(s, run, prior)

    async def next_page() -> list[metrics.DocRecord] | None:
        try:
            return await pages.__anext__()
        except StopAsyncIteration:
            return None

    def records() -> Iterator[metrics.DocRecord]:
        while (page := anyio.from_thread.run(next_page)) is not None:
            yield from page

    try:
        return await anyio.to_thread.run_sync(lambda: view(records()))
    finally:
        await pages.aclose()


async def _prior(s: Services, run: Row, include: bool, prior_id: str | None) -> Row | None:
    if not include:
        return None
    if prior_id:
        return await s.store.runs.get(prior_id, "experiment")
    return await s.store.runs.previous_completed(run["experiment_id"], run["n"])


@routes.get("/v1/workflows/experiments/metrics")
async def get_metrics(request: web.Request) -> web.Response:
    s = svc(request)
    view = q_enum(request, "view", "summary")
    if view not in ("summary", "by_document", "by_target", "votes"):
        raise Unprocessable(
            "`view` must be summary, by_document, by_target or votes",
            details={"errors": [{"loc": ["query", "view"], "msg": "unknown view", "type": "enum"}]},
        )
    document_id = q_required(request, "document_id") if view in ("by_document", "votes") else None
    target = q_required(request, "target_path") if view in ("by_target", "votes") else None
    run = await s.store.runs.get(q_required(request, "run_id"), "experiment")
    exp = await s.store.experiments.get(run["experiment_id"])
    _, bfp, dfp = await s.current_fingerprints(exp)
    fps = run.get("fingerprints") or {}
    reasons = ([] if fps.get("block_execution_fingerprint") == bfp else ["config_changed"]) + (
        [] if fps.get("documents_fingerprint") == dfp else ["documents_changed"]
    )
    if reasons:
        return json_response(
            {
                "kind": "stale_metrics",
                "view": view,
                "error": "stale_metrics",
                "experiment_id": exp["id"],
                "stale_reasons": reasons,
                "current_block_execution_fingerprint": bfp,
                "current_config_fingerprint": bfp,
                "last_run": {
                    "run_id": run["id"],
                    "block_execution_fingerprint": fps.get("block_execution_fingerprint"),
                    "definition_fingerprint": fps.get("block_execution_fingerprint"),
                    "score": run.get("score"),
                    "created_at": run["created_at"],
                },
                "message": "The block config or the document set changed since this run; run the experiment again.",
            }
        )
    if run["c_completed"] == 0:
        return json_response(
            {
                "kind": "no_metrics",
                "view": view,
                "error": "no_metrics",
                "experiment_id": exp["id"],
                "message": f"Run {run['id']} has no completed results to score yet.",
            }
        )
    include = q_bool(request, "include_prior", True)
    prior = await _prior(s, run, include, q(request, "prior_run_id"))
    if view == "summary":
        body = await _streamed(
            s,
            run,
            prior,
            lambda docs: metrics.summary_view(
                experiment_id=exp["id"],
                run_id=run["id"],
                block_type=run["block_type"],
                block_execution_fingerprint=fps.get("block_execution_fingerprint"),
                docs=docs,
                total_document_count=run["total"],
                prior_run_id=prior["id"] if prior else None,
                include_prior=include,
            ),
        )
        body["definition_fingerprint"] = fps.get("block_execution_fingerprint")
        return json_response(body)
    if view == "by_target":
        return json_response(
            await _streamed(
                s,
                run,
                prior,
                lambda docs: metrics.by_target_view(
                    run_id=run["id"], target=str(target), docs=docs, include_prior=include
                ),
            )
        )
    doc = await _one_doc(s, run, prior, str(document_id))
    if view == "by_document":
        return json_response(metrics.by_document_view(run_id=run["id"], doc=doc, include_prior=include))
    return json_response(metrics.votes_view(run_id=run["id"], doc=doc, target=str(target), include_prior=include))


async def _one_doc(s: Services, run: Row, prior: Row | None, document_id: str) -> metrics.DocRecord:
    document = await s.store.experiments.document(document_id)
    if document["experiment_id"] != run["experiment_id"]:
        raise NotFound(f"Document {document_id} is not part of run {run['id']}")
    record = await s.store.children.records_for_documents(run["id"], [document_id])
    prior_record = await s.store.children.records_for_documents(prior["id"], [document_id]) if prior else {}
    return metrics.DocRecord(
        document_id=document_id,
        filename=document["filename"],
        record=record.get(document_id),
        prior=prior_record.get(document_id),
    )


@routes.get("/v1/workflows/artifacts/{artifact_id}")
async def get_artifact(request: web.Request) -> web.Response:
    row = await svc(request).store.children.artifact(request.match_info["artifact_id"])
    return json_response(row["body"])


@routes.get("/v1/workflows/artifacts")
async def list_artifacts(request: web.Request) -> web.Response:
    s = svc(request)
    p = await s.store.children.list_artifacts(
        page_request(request, 100), run_id=q(request, "run_id"), operation=q_enum(request, "operation")
    )
    return json_response(page_json(p, [r["body"] for r in p.rows]))


# -- definitions (after the static runs/results/metrics segments)
@routes.get("/v1/workflows/experiments")
async def list_experiments(request: web.Request) -> web.Response:
    s = svc(request)
    wid = q_required(request, "workflow_id")
    req = page_request(request, 50)
    await s.store.workflows.get_workflow(wid)
    p = await s.store.experiments.list_page(wid, req, block_id=q(request, "block_id"))
    return json_response(page_json(p, [await experiment_json(s, r) for r in p.rows]))


@routes.post("/v1/workflows/experiments")
async def create_experiment(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.CreateExperiment)
    s = svc(request)
    return json_response(await experiment_json(s, await s.create_experiment(body)), 201)


@routes.get("/v1/workflows/experiments/{experiment_id}")
async def get_experiment(request: web.Request) -> web.Response:
    s = svc(request)
    return json_response(await experiment_json(s, await s.store.experiments.get(request.match_info["experiment_id"])))


@routes.patch("/v1/workflows/experiments/{experiment_id}")
async def update_experiment(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.UpdateExperiment)
    s = svc(request)
    return json_response(await experiment_json(s, await s.update_experiment(request.match_info["experiment_id"], body)))


@routes.delete("/v1/workflows/experiments/{experiment_id}")
async def delete_experiment(request: web.Request) -> web.Response:
    await svc(request).delete_experiment(request.match_info["experiment_id"])
    return no_content()


@routes.get("/v1/workflows/experiments/{experiment_id}/documents")
async def list_documents(request: web.Request) -> web.Response:
    s = svc(request)
    await s.store.experiments.get(request.match_info["experiment_id"])
    docs = await s.store.experiments.documents(request.match_info["experiment_id"])
    return json_response(
        {
            "data": [
                {"id": d["id"], "filename": d["filename"], "handle_inputs": render.handle_inputs(d["handle_inputs"])}
                for d in docs
            ],
            "list_metadata": {"before": None, "after": None},
        }
    )
