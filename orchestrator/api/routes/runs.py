"""Eval runs (SDK160), test runs (SDK143–155 flat and seed-era nested) and their results."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from orchestrator.api.http import (
    json_response,
    page_json,
    page_request,
    parse_body,
    q,
    q_date,
    q_list,
    q_required,
)
from orchestrator.api.routes.workflows import svc
from orchestrator.errors import NotFound, Unprocessable
from orchestrator.wire import render
from orchestrator.wire import requests as rq

routes = web.RouteTableDef()
STATUSES = {"pending", "queued", "running", "completed", "error", "cancelled"}


def run_filters(request: web.Request, check_key: str) -> dict[str, Any]:
    statuses = q_list(request, "statuses") + q_list(request, "status")
    excluded = q_list(request, "exclude_status") + q_list(request, "exclude_statuses")
    bad = [s for s in statuses + excluded if s not in STATUSES]
    if bad:
        raise Unprocessable(
            f"Unknown status {bad[0]!r}",
            details={
                "errors": [{"loc": ["query", "status"], "msg": f"must be one of {sorted(STATUSES)}", "type": "enum"}]
            },
        )
    return {
        "workflow_id": q(request, "workflow_id"),
        "check_id": q(request, check_key),
        "experiment_id": q(request, "experiment_id"),
        "block_id": q(request, "block_id"),
        "target_block_id": q(request, "target_block_id"),
        "statuses": statuses,
        "exclude_statuses": excluded,
        "trigger_types": q_list(request, "trigger_type") + q_list(request, "trigger_types"),
        "from_date": q_date(request, "from_date"),
        "to_date": q_date(request, "to_date", end_of_day=True),
    }


async def _results(request: web.Request, run_id: str, kinds: tuple[str, ...], seed: bool = False) -> web.Response:
    s = svc(request)
    req = page_request(request, 20)  # a bad query is a 400/422 whether or not the run exists
    run = await s.store.runs.get(run_id, kinds)
    p = await s.store.children.list_page(run["id"], req)
    checks = {c["id"]: c for c in await s.store.checks.for_scope(run["workflow_id"], check_id=None, block_id=None)}
    items = []
    for child in p.rows:
        child["workflow_id"] = run["workflow_id"]
        child["run_kind"] = run["kind"]
        items.append(render.eval_result(child, checks.get(child["check_id"]), seed=seed))
    return json_response(page_json(p, items))


async def _one_result(request: web.Request, result_id: str, kinds: tuple[str, ...], seed: bool = False) -> web.Response:
    s = svc(request)
    child = await s.store.children.get(result_id, kinds)
    check = None
    if child.get("check_id"):
        try:
            check = await s.store.checks.get(child["check_id"])
        except NotFound:
            check = None
    return json_response(render.eval_result(child, check, seed=seed))


for kind, check_key in (("eval", "eval_id"), ("test", "test_id")):
    base = f"/v1/workflows/{kind}s"
    kinds: tuple[str, ...] = (kind,) if kind == "eval" else ("test", "eval")

    def _make(kind: str = kind, check_key: str = check_key, base: str = base, kinds: tuple[str, ...] = kinds) -> None:
        @routes.post(base + "/runs")
        async def create_run(request: web.Request) -> web.Response:
            body = await parse_body(request, rq.CreateEvalRun)
            scope = body.scope.model_dump(exclude_none=True) if body.scope else None
            if scope is None and body.test_id:
                scope = {"type": "single", "test_id": body.test_id}
            elif scope is None and body.target:
                scope = {"type": "block", "block_id": body.target.block_id}
            n = body.n_consensus or _query_n(request)
            row = await svc(request).create_check_run(kind, body.workflow_id, scope, n)
            return json_response(render.eval_run(row), 201)

        @routes.get(base + "/runs")
        async def list_runs(request: web.Request) -> web.Response:
            p = await svc(request).store.runs.list_page(
                kinds, page_request(request, 50), run_filters(request, check_key)
            )
            return json_response(page_json(p, [render.eval_run(r) for r in p.rows]))

        @routes.get(base + "/runs/{run_id}")
        async def get_run(request: web.Request) -> web.Response:
            return json_response(
                render.eval_run(await svc(request).store.runs.get(request.match_info["run_id"], kinds))
            )

        @routes.post(base + "/runs/{run_id}/cancel")
        async def cancel_run(request: web.Request) -> web.Response:
            row = await svc(request).cancel_check_run(kinds, request.match_info["run_id"])
            return json_response(render.eval_run(row))

        @routes.get(base + "/results")
        async def list_results(request: web.Request) -> web.Response:
            return await _results(request, q_required(request, "run_id"), kinds)

        @routes.get(base + "/results/{result_id}")
        async def get_result(request: web.Request) -> web.Response:
            return await _one_result(request, request.match_info["result_id"], kinds)

    _make()


def _query_n(request: web.Request) -> int | None:
    """`n_consensus` sent as a query extra (SDK **extra_params): the per-run override of the seeds."""
    raw = request.query.get("n_consensus")
    if raw is None:
        return None
    if raw not in ("3", "5", "7"):
        raise Unprocessable(
            "n_consensus must be 3, 5 or 7",
            details={
                "errors": [{"loc": ["query", "n_consensus"], "msg": "must be 3, 5 or 7", "type": "literal_error"}]
            },
        )
    return int(raw)


# Seed era (REPO141): run creation nested under the workflow, results nested under the run.
@routes.post("/v1/workflows/{workflow_id}/tests/runs")
async def create_nested_run(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.CreateTestRunNested)
    scope: dict[str, Any] | None = None
    if body.test_id:
        scope = {"type": "single", "test_id": body.test_id}
    elif body.target:
        scope = {"type": "block", "block_id": body.target.block_id}
    row = await svc(request).create_check_run(
        "test", request.match_info["workflow_id"], scope, body.n_consensus or _query_n(request)
    )
    return json_response(render.eval_run(row), 201)


@routes.get("/v1/workflows/tests/runs/{run_id}/results")
async def nested_results(request: web.Request) -> web.Response:
    return await _results(request, request.match_info["run_id"], ("test", "eval"), seed=True)


@routes.get("/v1/workflows/tests/runs/{run_id}/results/{test_id}")
async def nested_result(request: web.Request) -> web.Response:
    s = svc(request)
    child = await s.store.children.by_check(request.match_info["run_id"], request.match_info["test_id"])
    return await _one_result(request, child["id"], ("test", "eval"), seed=True)
