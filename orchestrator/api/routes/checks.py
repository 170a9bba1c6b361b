"""Saved evals (SDK160) and saved tests (SDK143–155 flat, and seed-era nested routes): one table."""

from __future__ import annotations

from aiohttp import web

from orchestrator.api.http import (
    json_response,
    no_content,
    page_json,
    page_request,
    parse_body,
    q,
    q_required,
)
from orchestrator.api.routes.workflows import svc
from orchestrator.api.wire import render
from orchestrator.api.wire import requests as rq
from orchestrator.store.db import Row

routes = web.RouteTableDef()


async def _list(request: web.Request, dialect: str, workflow_id: str) -> web.Response:
    s = svc(request)
    await s.store.workflows.get_workflow(workflow_id)
    p = await s.store.checks.list_page(workflow_id, page_request(request, 50), block_id=q(request, "target_block_id"))
    return json_response(page_json(p, [render.check(r, dialect) for r in p.rows]))


def _out(row: Row, dialect: str, status: int = 200) -> web.Response:
    return json_response(render.check(row, dialect), status)


for dialect, noun in (("eval", "Eval"), ("test", "Test")):
    base = f"/v1/workflows/{dialect}s"

    def _make(dialect: str = dialect, noun: str = noun, base: str = base) -> None:
        @routes.get(base)
        async def list_checks(request: web.Request) -> web.Response:
            return await _list(request, dialect, q_required(request, "workflow_id"))

        @routes.post(base)
        async def create_check(request: web.Request) -> web.Response:
            body = await parse_body(request, rq.CreateCheck)
            return _out(await svc(request).create_check(dialect, body.workflow_id, body), dialect, 201)

        @routes.get(base + "/{check_id}")
        async def get_check(request: web.Request) -> web.Response:
            return _out(await svc(request).store.checks.get(request.match_info["check_id"], noun=noun), dialect)

        @routes.patch(base + "/{check_id}")
        async def update_check(request: web.Request) -> web.Response:
            body = await parse_body(request, rq.UpdateCheck)
            return _out(await svc(request).update_check(request.match_info["check_id"], body, noun=noun), dialect)

        @routes.delete(base + "/{check_id}")
        async def delete_check(request: web.Request) -> web.Response:
            await svc(request).store.checks.delete(request.match_info["check_id"], noun=noun)
            return no_content()

    _make()


# Seed era (REPO141): saved tests nested under the workflow.
@routes.get("/v1/workflows/{workflow_id}/tests")
async def list_nested(request: web.Request) -> web.Response:
    return await _list(request, "test", request.match_info["workflow_id"])


@routes.post("/v1/workflows/{workflow_id}/tests")
async def create_nested(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.CreateCheckNested)
    return _out(await svc(request).create_check("test", request.match_info["workflow_id"], body), "test", 201)


@routes.get("/v1/workflows/{workflow_id}/tests/{test_id}")
async def get_nested(request: web.Request) -> web.Response:
    row = await svc(request).store.checks.get(
        request.match_info["test_id"], request.match_info["workflow_id"], noun="Test"
    )
    return _out(row, "test")


@routes.patch("/v1/workflows/{workflow_id}/tests/{test_id}")
async def update_nested(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.UpdateCheck)
    row = await svc(request).update_check(
        request.match_info["test_id"], body, request.match_info["workflow_id"], noun="Test"
    )
    return _out(row, "test")


@routes.delete("/v1/workflows/{workflow_id}/tests/{test_id}")
async def delete_nested(request: web.Request) -> web.Response:
    await svc(request).store.checks.delete(
        request.match_info["test_id"], request.match_info["workflow_id"], noun="Test"
    )
    return no_content()
