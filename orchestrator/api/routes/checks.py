"""Saved evals (SDK160) and saved tests (SDK143–155 flat, and seed-era nested routes): one table."""

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
    q_required,
)
from orchestrator.api.routes.workflows import svc
from orchestrator.core import planning
from orchestrator.store.sqlite.db import Row
from orchestrator.wire import render
from orchestrator.wire import requests as rq

routes = web.RouteTableDef()


def _freshness(row: Row, block: Row | None) -> None:
    """Read-time verdict (spec §3.6): does the latest run still hold for the CURRENT block config,
    inputs and assertion? Sets the `_fresh` / `_stale_reasons` keys that render.check reads."""
    latest = row.get("latest")
    if not latest:
        return
    if block is None:
        row["_fresh"], row["_stale_reasons"] = False, ["validity_changed"]
        return
    bfp = planning.block_execution_fingerprint(block["type"], block.get("config"))
    ifp = planning.handle_inputs_fingerprint((row.get("source") or {}).get("handle_inputs") or {})
    if latest.get("validity_fingerprint") == planning.validity_fingerprint(bfp, ifp, row.get("assertion") or {}):
        row["_fresh"], row["_stale_reasons"] = True, []
        return
    reasons = []
    if latest.get("handle_inputs_fingerprint") != ifp:
        reasons.append("inputs_changed")
    if latest.get("block_execution_fingerprint") != bfp or not reasons:
        reasons.insert(0, "validity_changed")
    row["_fresh"], row["_stale_reasons"] = False, reasons


async def _rendered(request: web.Request, rows: list[Row], dialect: str, seed: bool = False) -> list[dict[str, Any]]:
    blocks: dict[str, Row] = {}
    for wid in {r["workflow_id"] for r in rows if r.get("latest")}:
        blocks.update({b["id"]: b for b in await svc(request).store.workflows.all_blocks(wid)})
    for r in rows:
        _freshness(r, blocks.get(r["block_id"]))
    return [render.check(r, dialect, seed=seed) for r in rows]


async def _list(request: web.Request, dialect: str, workflow_id: str, seed: bool = False) -> web.Response:
    s = svc(request)
    req = page_request(request, 50)
    await s.store.workflows.get_workflow(workflow_id)
    p = await s.store.checks.list_page(workflow_id, req, block_id=q(request, "target_block_id"))
    return json_response(page_json(p, await _rendered(request, p.rows, dialect, seed)))


async def _out(request: web.Request, row: Row, dialect: str, status: int = 200, seed: bool = False) -> web.Response:
    return json_response((await _rendered(request, [row], dialect, seed))[0], status)


for dialect, noun in (("eval", "Eval"), ("test", "Test")):
    base = f"/v1/workflows/{dialect}s"

    def _make(dialect: str = dialect, noun: str = noun, base: str = base) -> None:
        @routes.get(base)
        async def list_checks(request: web.Request) -> web.Response:
            return await _list(request, dialect, q_required(request, "workflow_id"))

        @routes.post(base)
        async def create_check(request: web.Request) -> web.Response:
            body = await parse_body(request, rq.CreateCheck)
            return await _out(request, await svc(request).create_check(dialect, body.workflow_id, body), dialect, 201)

        @routes.get(base + "/{check_id}")
        async def get_check(request: web.Request) -> web.Response:
            return await _out(
                request, await svc(request).store.checks.get(request.match_info["check_id"], noun=noun), dialect
            )

        @routes.patch(base + "/{check_id}")
        async def update_check(request: web.Request) -> web.Response:
            body = await parse_body(request, rq.UpdateCheck)
            return await _out(
                request, await svc(request).update_check(request.match_info["check_id"], body, noun=noun), dialect
            )

        @routes.delete(base + "/{check_id}")
        async def delete_check(request: web.Request) -> web.Response:
            await svc(request).store.checks.delete(request.match_info["check_id"], noun=noun)
            return no_content()

    _make()


# Seed era (REPO141): saved tests nested under the workflow.
@routes.get("/v1/workflows/{workflow_id}/tests")
async def list_nested(request: web.Request) -> web.Response:
    return await _list(request, "test", request.match_info["workflow_id"], seed=True)


@routes.post("/v1/workflows/{workflow_id}/tests")
async def create_nested(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.CreateCheckNested)
    row = await svc(request).create_check("test", request.match_info["workflow_id"], body)
    return await _out(request, row, "test", 201, seed=True)


@routes.get("/v1/workflows/{workflow_id}/tests/{test_id}")
async def get_nested(request: web.Request) -> web.Response:
    row = await svc(request).store.checks.get(
        request.match_info["test_id"], request.match_info["workflow_id"], noun="Test"
    )
    return await _out(request, row, "test", seed=True)


@routes.patch("/v1/workflows/{workflow_id}/tests/{test_id}")
async def update_nested(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.UpdateCheck)
    row = await svc(request).update_check(
        request.match_info["test_id"], body, request.match_info["workflow_id"], noun="Test"
    )
    return await _out(request, row, "test", seed=True)


@routes.delete("/v1/workflows/{workflow_id}/tests/{test_id}")
async def delete_nested(request: web.Request) -> web.Response:
    await svc(request).store.checks.delete(
        request.match_info["test_id"], request.match_info["workflow_id"], noun="Test"
    )
    return no_content()
