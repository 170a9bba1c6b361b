"""Saved evals (SDK160) and saved tests (SDK143–155 flat, and seed-era nested routes): one table."""

from __future__ import annotations

from functools import partial
from typing import Any

from aiohttp import web

from orchestrator.api.http import json_response, no_content, page_json, page_request, parse_body, q, q_required
from orchestrator.api.keys import services as svc
from orchestrator.service.checks import CheckView
from orchestrator.wire import render
from orchestrator.wire import requests as rq
from orchestrator.wire.dialects import EVAL, TEST, Dialect


def _json(view: CheckView, dialect: Dialect, seed: bool = False) -> dict[str, Any]:
    return render.check(view.row, view.freshness, dialect.kind, seed=seed)


async def list_checks(request: web.Request, *, dialect: Dialect) -> web.Response:
    """Saved evals (or tests) of a workflow."""
    workflow_id = q_required(request, "workflow_id")
    p, views = await svc(request).checks.list_page(
        workflow_id, page_request(request, 50), block_id=q(request, "target_block_id")
    )
    return json_response(page_json(p, [_json(v, dialect) for v in views]))


async def create_check(request: web.Request, *, dialect: Dialect) -> web.Response:
    """Save an eval (or test)."""
    body = await parse_body(request, rq.CreateCheck)
    return json_response(_json(await svc(request).checks.create(dialect, body.workflow_id, body), dialect), 201)


async def get_check(request: web.Request, *, dialect: Dialect) -> web.Response:
    """One saved eval (or test), with its freshness."""
    return json_response(_json(await svc(request).checks.get(dialect, request.match_info["check_id"]), dialect))


async def update_check(request: web.Request, *, dialect: Dialect) -> web.Response:
    """Rename, or change the assertion or the inputs."""
    body = await parse_body(request, rq.UpdateCheck)
    view = await svc(request).checks.update(dialect, request.match_info["check_id"], body)
    return json_response(_json(view, dialect))


async def delete_check(request: web.Request, *, dialect: Dialect) -> web.Response:
    """Delete a saved eval (or test)."""
    await svc(request).checks.delete(dialect, request.match_info["check_id"])
    return no_content()


# Seed era (REPO141): saved tests nested under the workflow.
async def list_nested(request: web.Request) -> web.Response:
    workflow_id = request.match_info["workflow_id"]
    p, views = await svc(request).checks.list_page(
        workflow_id, page_request(request, 50), block_id=q(request, "target_block_id")
    )
    return json_response(page_json(p, [_json(v, TEST, seed=True) for v in views]))


async def create_nested(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.CreateCheckNested)
    view = await svc(request).checks.create(TEST, request.match_info["workflow_id"], body)
    return json_response(_json(view, TEST, seed=True), 201)


async def get_nested(request: web.Request) -> web.Response:
    view = await svc(request).checks.get(TEST, request.match_info["test_id"], request.match_info["workflow_id"])
    return json_response(_json(view, TEST, seed=True))


async def update_nested(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.UpdateCheck)
    view = await svc(request).checks.update(
        TEST, request.match_info["test_id"], body, request.match_info["workflow_id"]
    )
    return json_response(_json(view, TEST, seed=True))


async def delete_nested(request: web.Request) -> web.Response:
    await svc(request).checks.delete(TEST, request.match_info["test_id"], request.match_info["workflow_id"])
    return no_content()


routes = [
    web.get("/v1/workflows/evals", partial(list_checks, dialect=EVAL)),
    web.post("/v1/workflows/evals", partial(create_check, dialect=EVAL)),
    web.get("/v1/workflows/evals/{check_id}", partial(get_check, dialect=EVAL)),
    web.patch("/v1/workflows/evals/{check_id}", partial(update_check, dialect=EVAL)),
    web.delete("/v1/workflows/evals/{check_id}", partial(delete_check, dialect=EVAL)),
    web.get("/v1/workflows/tests", partial(list_checks, dialect=TEST)),
    web.post("/v1/workflows/tests", partial(create_check, dialect=TEST)),
    web.get("/v1/workflows/tests/{check_id}", partial(get_check, dialect=TEST)),
    web.patch("/v1/workflows/tests/{check_id}", partial(update_check, dialect=TEST)),
    web.delete("/v1/workflows/tests/{check_id}", partial(delete_check, dialect=TEST)),
    web.get("/v1/workflows/{workflow_id}/tests", list_nested),
    web.post("/v1/workflows/{workflow_id}/tests", create_nested),
    web.get("/v1/workflows/{workflow_id}/tests/{test_id}", get_nested),
    web.patch("/v1/workflows/{workflow_id}/tests/{test_id}", update_nested),
    web.delete("/v1/workflows/{workflow_id}/tests/{test_id}", delete_nested),
]
