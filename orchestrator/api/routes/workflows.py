"""Workflows, blocks and edges (spec §2.1–2.3)."""

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
    q_enum,
    q_required,
)
from orchestrator.api.keys import SERVICES
from orchestrator.api.services import Services, validate_block_config
from orchestrator.core.planning import block_execution_fingerprint
from orchestrator.errors import Unprocessable
from orchestrator.ids import now_iso
from orchestrator.wire import render
from orchestrator.wire import requests as rq

routes = web.RouteTableDef()


def svc(request: web.Request) -> Services:
    return request.app[SERVICES]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects recurse, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# -- blocks (static segments before /workflows/{workflow_id})
@routes.get("/v1/workflows/blocks")
async def list_blocks(request: web.Request) -> web.Response:
    p = await svc(request).store.workflows.list_blocks(q_required(request, "workflow_id"), page_request(request, 100))
    return json_response(page_json(p, [render.block(r) for r in p.rows]))


@routes.post("/v1/workflows/blocks")
async def create_block(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.CreateBlock)
    fields = body.model_dump()
    if body.config is not None:
        validate_block_config(body.type, body.config)
    row = await svc(request).store.workflows.create_block(body.workflow_id, fields)
    return json_response(render.block(row), 201)


@routes.get("/v1/workflows/blocks/{block_id}")
async def get_block(request: web.Request) -> web.Response:
    row = await svc(request).store.workflows.get_block(request.match_info["block_id"], q(request, "workflow_id"))
    return json_response(render.block(row))


@routes.patch("/v1/workflows/blocks/{block_id}")
async def update_block(request: web.Request) -> web.Response:
    store = svc(request).store.workflows
    current = await store.get_block(request.match_info["block_id"], q(request, "workflow_id"))
    body = await parse_body(request, rq.UpdateBlock)
    if body.type and body.type != current["type"]:
        raise Unprocessable(
            "The block type cannot be changed", code="block_type_immutable", details={"type": current["type"]}
        )
    changes = body.model_dump(exclude_unset=True, exclude={"config_mode", "type"})
    # null clears the nullable columns (width, height, parent_id); on the others it means "unchanged".
    for key in ("label", "position_x", "position_y"):
        if key in changes and changes[key] is None:
            del changes[key]
    if "config" in changes:
        mode = body.config_mode or "merge"
        new = changes["config"] if mode == "replace" else merge_patch(current.get("config") or {}, changes["config"])
        validate_block_config(current["type"], new)
        changes["config"] = new
    row = await store.update_block(current["id"], changes)
    return json_response(render.block(row))


@routes.delete("/v1/workflows/blocks/{block_id}")
async def delete_block(request: web.Request) -> web.Response:
    await svc(request).store.workflows.delete_block(request.match_info["block_id"], q(request, "workflow_id"))
    return no_content()


@routes.post("/v1/workflows/blocks/{block_id}/validate-config")
async def validate_config(request: web.Request) -> web.Response:
    current = await svc(request).store.workflows.get_block(request.match_info["block_id"], q(request, "workflow_id"))
    body = await parse_body(request, rq.ValidateBlockConfig)
    cfg = body.config if body.config_mode == "replace" else merge_patch(current.get("config") or {}, body.config)
    validate_block_config(current["type"], cfg)
    return json_response(
        {
            "ok": True,
            "workflow_id": current["workflow_id"],
            "block_id": current["id"],
            "block_type": current["type"],
            "config_hash": block_execution_fingerprint(current["type"], cfg),
        }
    )


# -- edges
@routes.get("/v1/workflows/edges")
async def list_edges(request: web.Request) -> web.Response:
    p = await svc(request).store.workflows.list_edges(
        q_required(request, "workflow_id"),
        page_request(request, 100),
        source_block=q(request, "source_block"),
        target_block=q(request, "target_block"),
    )
    return json_response(page_json(p, [render.edge(r) for r in p.rows]))


@routes.post("/v1/workflows/edges")
async def create_edge(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.CreateEdge)
    row = await svc(request).store.workflows.create_edge(body.workflow_id, body.model_dump())
    return json_response(render.edge(row), 201)


@routes.get("/v1/workflows/edges/{edge_id}")
async def get_edge(request: web.Request) -> web.Response:
    row = await svc(request).store.workflows.get_edge(request.match_info["edge_id"], q(request, "workflow_id"))
    return json_response(render.edge(row))


@routes.delete("/v1/workflows/edges/{edge_id}")
async def delete_edge(request: web.Request) -> web.Response:
    await svc(request).store.workflows.delete_edge(request.match_info["edge_id"])
    return no_content()


# -- workflows
@routes.get("/v1/workflows")
async def list_workflows(request: web.Request) -> web.Response:
    p = await svc(request).store.workflows.list_workflows(
        page_request(request, 10),
        project_id=q(request, "project_id"),
        sort_by=q_enum(request, "sort_by", "updated_at") or "updated_at",
    )
    return json_response(page_json(p, [render.workflow(r) for r in p.rows]))


@routes.post("/v1/workflows")
async def create_workflow(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.CreateWorkflow)
    row = await svc(request).store.workflows.create_workflow(
        name=body.name, description=body.description, project_id=body.project_id
    )
    return json_response(render.workflow(row), 201)


@routes.get("/v1/workflows/{workflow_id}")
async def get_workflow(request: web.Request) -> web.Response:
    return json_response(
        render.workflow(await svc(request).store.workflows.get_workflow(request.match_info["workflow_id"]))
    )


@routes.patch("/v1/workflows/{workflow_id}")
async def update_workflow(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.UpdateWorkflow)
    row = await svc(request).store.workflows.update_workflow(
        request.match_info["workflow_id"], body.model_dump(exclude_none=True)
    )
    return json_response(render.workflow(row))


@routes.delete("/v1/workflows/{workflow_id}")
async def delete_workflow(request: web.Request) -> web.Response:
    await svc(request).delete_workflow(request.match_info["workflow_id"])
    return no_content()


@routes.post("/v1/workflows/{workflow_id}/publish")
async def publish_workflow(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.PublishWorkflow)
    s = svc(request)
    wid = request.match_info["workflow_id"]
    version = await s.draft_version(wid)
    published = {
        "version_id": "ver_" + version.removeprefix("draft_"),
        "published_at": now_iso(),
        "description": body.description,
    }
    from orchestrator.store.sqlite.jsoncol import dumps

    row = await s.store.workflows.update_workflow(wid, {"published_json": dumps(published)})
    return json_response(render.workflow(row))
