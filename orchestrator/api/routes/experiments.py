"""Experiments, experiment runs, results, metrics (spec §2.11–2.14) and artifacts (§2.15)."""

from __future__ import annotations

from typing import Any

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
    q_int,
    q_required,
    run_filters,
)
from orchestrator.api.keys import services as svc
from orchestrator.api.routes.runs import use_cache
from orchestrator.api.streamed import parse_with_documents
from orchestrator.errors import Unprocessable
from orchestrator.service.experiments import ExperimentView
from orchestrator.service.metrics import MetricsQuery, View
from orchestrator.wire import render
from orchestrator.wire import render_experiments as rx
from orchestrator.wire import requests as rq

VIEWS: tuple[View, ...] = ("summary", "by_document", "by_target", "votes")


def _experiment(v: ExperimentView) -> dict[str, Any]:
    return rx.experiment(v.experiment, v.block_type, v.last_run, v.status, v.freshness, v.plan)


# -- runs, results, metrics and artifacts (static segments before /experiments/{experiment_id})
async def list_runs(request: web.Request) -> web.Response:
    p = await svc(request).experiments.list_runs(page_request(request, 20), run_filters(request, "_"))
    return json_response(page_json(p, [render.experiment_run(r) for r in p.rows]))


async def create_run(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.CreateExperimentRun)
    body.cache = use_cache(request, body.cache)
    return json_response(render.experiment_run(await svc(request).experiments.create_run(body)), 201)


async def get_run(request: web.Request) -> web.Response:
    return json_response(render.experiment_run(await svc(request).experiments.get_run(request.match_info["run_id"])))


async def cancel_run(request: web.Request) -> web.Response:
    done = await svc(request).experiments.cancel_run(request.match_info["run_id"])
    return json_response(rx.cancelled_run(done.run_id, done.status, done.reason))


async def list_results(request: web.Request) -> web.Response:
    req = page_request(request, 100)
    p = await svc(request).experiments.results(q_required(request, "run_id"), req)
    return json_response(page_json(p, [render.experiment_result(c) for c in p.rows]))


async def get_result(request: web.Request) -> web.Response:
    child = await svc(request).experiments.result(request.match_info["result_id"])
    return json_response(render.experiment_result(child))


def _metrics_query(request: web.Request) -> MetricsQuery:
    view = q_enum(request, "view", "summary")
    if view not in VIEWS:
        raise Unprocessable(
            "`view` must be summary, by_document, by_target or votes",
            details={"errors": [{"loc": ["query", "view"], "msg": "unknown view", "type": "enum"}]},
        )
    document_id = q_required(request, "document_id") if view in ("by_document", "votes") else None
    target = q_required(request, "target_path") if view in ("by_target", "votes") else None
    order_by = q_enum(request, "order_by", "position")
    if order_by not in ("position", "score"):
        raise Unprocessable(
            "`order_by` must be position or score",
            details={"errors": [{"loc": ["query", "order_by"], "msg": "must be position or score", "type": "enum"}]},
        )
    return MetricsQuery(
        run_id=q_required(request, "run_id"),
        view=view,
        document_id=document_id,
        target_path=target,
        include_prior=q_bool(request, "include_prior", True),
        prior_run_id=q(request, "prior_run_id"),
        limit=q_int(request, "limit", 100, 1, 1000),
        after=q(request, "after"),
        order_by=order_by,  # type: ignore[arg-type]
    )


async def get_metrics(request: web.Request) -> web.Response:
    answer = await svc(request).metrics.get(_metrics_query(request))
    if answer.stale_reasons:
        return json_response(
            rx.stale_metrics(
                answer.view, answer.experiment_id, answer.run, answer.stale_reasons, answer.current_block_fingerprint
            )
        )
    if answer.body is None:
        return json_response(rx.no_metrics(answer.view, answer.experiment_id, answer.run))
    return json_response(answer.body)


async def get_artifact(request: web.Request) -> web.Response:
    row = await svc(request).experiments.artifact(request.match_info["artifact_id"])
    return json_response(row["body"])


async def list_artifacts(request: web.Request) -> web.Response:
    p = await svc(request).experiments.artifacts(
        page_request(request, 100), run_id=q(request, "run_id"), operation=q_enum(request, "operation")
    )
    return json_response(page_json(p, [r["body"] for r in p.rows]))


# -- definitions
async def list_experiments(request: web.Request) -> web.Response:
    wid = q_required(request, "workflow_id")
    p, views = await svc(request).experiments.list_page(wid, page_request(request, 50), block_id=q(request, "block_id"))
    return json_response(page_json(p, [_experiment(v) for v in views]))


async def create_experiment(request: web.Request) -> web.Response:
    s = svc(request)
    body, documents = await parse_with_documents(request, rq.CreateExperiment, s.settings.max_body_bytes)
    return json_response(_experiment(await s.experiments.create(body, documents)), 201)


async def get_experiment(request: web.Request) -> web.Response:
    return json_response(_experiment(await svc(request).experiments.get(request.match_info["experiment_id"])))


async def update_experiment(request: web.Request) -> web.Response:
    s = svc(request)
    body, documents = await parse_with_documents(request, rq.UpdateExperiment, s.settings.max_body_bytes)
    view = await s.experiments.update(request.match_info["experiment_id"], body, documents)
    return json_response(_experiment(view))


async def delete_experiment(request: web.Request) -> web.Response:
    await svc(request).experiments.delete(request.match_info["experiment_id"])
    return no_content()


async def list_documents(request: web.Request) -> web.Response:
    return json_response(rx.documents(await svc(request).experiments.documents(request.match_info["experiment_id"])))


routes = [
    web.get("/v1/workflows/experiments/runs", list_runs),
    web.post("/v1/workflows/experiments/runs", create_run),
    web.get("/v1/workflows/experiments/runs/{run_id}", get_run),
    web.post("/v1/workflows/experiments/runs/{run_id}/cancel", cancel_run),
    web.get("/v1/workflows/experiments/results", list_results),
    web.get("/v1/workflows/experiments/results/{result_id}", get_result),
    web.get("/v1/workflows/experiments/metrics", get_metrics),
    web.get("/v1/workflows/artifacts/{artifact_id}", get_artifact),
    web.get("/v1/workflows/artifacts", list_artifacts),
    web.get("/v1/workflows/experiments", list_experiments),
    web.post("/v1/workflows/experiments", create_experiment),
    web.get("/v1/workflows/experiments/{experiment_id}", get_experiment),
    web.patch("/v1/workflows/experiments/{experiment_id}", update_experiment),
    web.delete("/v1/workflows/experiments/{experiment_id}", delete_experiment),
    web.get("/v1/workflows/experiments/{experiment_id}/documents", list_documents),
]
