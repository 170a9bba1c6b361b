"""Eval runs (SDK160), test runs (SDK143–155 flat and seed-era nested) and their results; every run."""

from __future__ import annotations

from functools import partial
from typing import Any

from aiohttp import web

from orchestrator.api.http import (
    json_response,
    page_json,
    page_request,
    parse_body,
    q_list,
    q_required,
    run_filters,
)
from orchestrator.api.keys import services as svc
from orchestrator.errors import Unprocessable
from orchestrator.ids import RUN_KINDS, RunKind
from orchestrator.service.runs import ResultView, RunView
from orchestrator.wire import render
from orchestrator.wire import requests as rq
from orchestrator.wire.dialects import EVAL, TEST, Dialect


def _run(view: RunView) -> dict[str, Any]:
    return render.run(view.row, view.freshness)


def _result(view: ResultView, seed: bool = False) -> dict[str, Any]:
    return render.eval_result(view.child, view.check, seed=seed)


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


def use_cache(request: web.Request, sent: bool | None) -> bool:
    """`cache` from the body, else as a query extra (the SDK sends `**extra_params` there: `cache=False`
    arrives as `?cache=false`), else on. A value that is not a boolean is a 422, never read as false."""
    if sent is not None:
        return sent
    raw = request.query.get("cache")
    if raw is None or raw == "":
        return True
    flag = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}
    value = flag.get(raw.strip().lower())
    if value is None:
        raise Unprocessable(
            "cache must be true or false",
            details={"errors": [{"loc": ["query", "cache"], "msg": "must be true or false", "type": "bool_parsing"}]},
        )
    return value


def _kinds(request: web.Request) -> tuple[RunKind, ...]:
    wanted = q_list(request, "kind")
    bad = [k for k in wanted if k not in RUN_KINDS]
    if bad:
        raise Unprocessable(
            f"Unknown run kind {bad[0]!r}",
            details={
                "errors": [{"loc": ["query", "kind"], "msg": f"must be one of {list(RUN_KINDS)}", "type": "enum"}]
            },
        )
    return tuple(k for k in RUN_KINDS if k in wanted) if wanted else RUN_KINDS


async def create_run(request: web.Request, *, dialect: Dialect) -> web.Response:
    """Run the saved evals (or tests) of a scope: one eval, one block's, or the workflow's."""
    body = await parse_body(request, rq.CreateEvalRun)
    scope = body.scope.model_dump(exclude_none=True) if body.scope else None
    if scope is None and body.test_id:
        scope = {"type": "single", "test_id": body.test_id}
    elif scope is None and body.target:
        scope = {"type": "block", "block_id": body.target.block_id}
    n = body.n_consensus or _query_n(request)
    trigger = body.trigger.type if body.trigger else "api"
    cache = use_cache(request, body.cache)
    view = await svc(request).runs.create(dialect.kind, body.workflow_id, scope, n, trigger=trigger, cache=cache)
    return json_response(_run(view), 201)


async def list_runs(request: web.Request, *, dialect: Dialect) -> web.Response:
    p, views = await svc(request).runs.list_page(
        dialect.run_kinds, page_request(request, 50), run_filters(request, dialect.check_key)
    )
    return json_response(page_json(p, [_run(v) for v in views]))


async def get_run(request: web.Request, *, dialect: Dialect) -> web.Response:
    return json_response(_run(await svc(request).runs.get(request.match_info["run_id"], dialect.run_kinds)))


async def cancel_run(request: web.Request, *, dialect: Dialect) -> web.Response:
    return json_response(_run(await svc(request).runs.cancel(request.match_info["run_id"], dialect.run_kinds)))


async def list_results(request: web.Request, *, dialect: Dialect) -> web.Response:
    run_id = q_required(request, "run_id")
    p, views = await svc(request).runs.results(run_id, dialect.run_kinds, page_request(request, 20))
    return json_response(page_json(p, [_result(v) for v in views]))


async def get_result(request: web.Request, *, dialect: Dialect) -> web.Response:
    return json_response(_result(await svc(request).runs.result(request.match_info["result_id"], dialect.run_kinds)))


# Seed era (REPO141): run creation nested under the workflow, results nested under the run.
async def create_nested_run(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.CreateTestRunNested)
    scope: dict[str, Any] | None = None
    if body.test_id:
        scope = {"type": "single", "test_id": body.test_id}
    elif body.target:
        scope = {"type": "block", "block_id": body.target.block_id}
    n = body.n_consensus or _query_n(request)
    cache = use_cache(request, body.cache)
    view = await svc(request).runs.create("test", request.match_info["workflow_id"], scope, n, cache=cache)
    return json_response(_run(view), 201)


async def nested_results(request: web.Request) -> web.Response:
    p, views = await svc(request).runs.results(request.match_info["run_id"], TEST.run_kinds, page_request(request, 20))
    return json_response(page_json(p, [_result(v, seed=True) for v in views]))


async def nested_result(request: web.Request) -> web.Response:
    view = await svc(request).runs.result_of_check(request.match_info["run_id"], request.match_info["test_id"])
    return json_response(_result(view, seed=True))


async def all_runs(request: web.Request) -> web.Response:
    """Every run of every kind, newest first: the page's runs list (the per-kind lists cannot be merged
    into one cursor order on the client)."""
    kinds = _kinds(request)
    p, views = await svc(request).runs.list_page(kinds, page_request(request, 25), run_filters(request, "_"))
    return json_response(page_json(p, [_run(v) for v in views]))


routes = [
    web.post("/v1/workflows/evals/runs", partial(create_run, dialect=EVAL)),
    web.get("/v1/workflows/evals/runs", partial(list_runs, dialect=EVAL)),
    web.get("/v1/workflows/evals/runs/{run_id}", partial(get_run, dialect=EVAL)),
    web.post("/v1/workflows/evals/runs/{run_id}/cancel", partial(cancel_run, dialect=EVAL)),
    web.get("/v1/workflows/evals/results", partial(list_results, dialect=EVAL)),
    web.get("/v1/workflows/evals/results/{result_id}", partial(get_result, dialect=EVAL)),
    web.post("/v1/workflows/tests/runs", partial(create_run, dialect=TEST)),
    web.get("/v1/workflows/tests/runs", partial(list_runs, dialect=TEST)),
    web.get("/v1/workflows/tests/runs/{run_id}", partial(get_run, dialect=TEST)),
    web.post("/v1/workflows/tests/runs/{run_id}/cancel", partial(cancel_run, dialect=TEST)),
    web.get("/v1/workflows/tests/results", partial(list_results, dialect=TEST)),
    web.get("/v1/workflows/tests/results/{result_id}", partial(get_result, dialect=TEST)),
    web.post("/v1/workflows/{workflow_id}/tests/runs", create_nested_run),
    web.get("/v1/workflows/tests/runs/{run_id}/results", nested_results),
    web.get("/v1/workflows/tests/runs/{run_id}/results/{test_id}", nested_result),
    web.get("/v1/runs", all_runs),
]
