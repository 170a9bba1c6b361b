"""Workflows, blocks and edges (spec §2.1–2.3)."""

from __future__ import annotations

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
from orchestrator.api.keys import services as svc
from orchestrator.wire import render
from orchestrator.wire import requests as rq


# -- blocks
async def list_blocks(request: web.Request) -> web.Response:
    p = await svc(request).workflows.list_blocks(q_required(request, "workflow_id"), page_request(request, 100))
    return json_response(page_json(p, [render.block(r) for r in p.rows]))


async def create_block(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.CreateBlock)
    return json_response(render.block(await svc(request).workflows.create_block(body)), 201)


async def get_block(request: web.Request) -> web.Response:
    row = await svc(request).workflows.get_block(request.match_info["block_id"], q(request, "workflow_id"))
    return json_response(render.block(row))


async def update_block(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.UpdateBlock)
    row = await svc(request).workflows.update_block(request.match_info["block_id"], q(request, "workflow_id"), body)
    return json_response(render.block(row))


async def delete_block(request: web.Request) -> web.Response:
    await svc(request).workflows.delete_block(request.match_info["block_id"], q(request, "workflow_id"))
    return no_content()


async def validate_config(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.ValidateBlockConfig)
    checked = await svc(request).workflows.validate_config(
        request.match_info["block_id"], q(request, "workflow_id"), body
    )
    return json_response(render.validated_config(checked.block, checked.config_hash))


# -- edges
async def list_edges(request: web.Request) -> web.Response:
    p = await svc(request).workflows.list_edges(
        q_required(request, "workflow_id"),
        page_request(request, 100),
        source_block=q(request, "source_block"),
        target_block=q(request, "target_block"),
    )
    return json_response(page_json(p, [render.edge(r) for r in p.rows]))


async def create_edge(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.CreateEdge)
    return json_response(render.edge(await svc(request).workflows.create_edge(body)), 201)


async def get_edge(request: web.Request) -> web.Response:
    row = await svc(request).workflows.get_edge(request.match_info["edge_id"], q(request, "workflow_id"))
    return json_response(render.edge(row))


async def delete_edge(request: web.Request) -> web.Response:
    await svc(request).workflows.delete_edge(request.match_info["edge_id"])
    return no_content()


# -- workflows
async def list_workflows(request: web.Request) -> web.Response:
    p = await svc(request).workflows.list_workflows(
        page_request(request, 10),
        project_id=q(request, "project_id"),
        sort_by=q_enum(request, "sort_by", "updated_at") or "updated_at",
    )
    return json_response(page_json(p, [render.workflow(r) for r in p.rows]))


async def create_workflow(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.CreateWorkflow)
    return json_response(render.workflow(await svc(request).workflows.create_workflow(body)), 201)


async def get_workflow(request: web.Request) -> web.Response:
    return json_response(render.workflow(await svc(request).workflows.get_workflow(request.match_info["workflow_id"])))


async def update_workflow(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.UpdateWorkflow)
    return json_response(
        render.workflow(await svc(request).workflows.update_workflow(request.match_info["workflow_id"], body))
    )


async def delete_workflow(request: web.Request) -> web.Response:
    await svc(request).workflows.delete_workflow(request.match_info["workflow_id"])
    return no_content()


async def publish_workflow(request: web.Request) -> web.Response:
    body = await parse_body(request, rq.PublishWorkflow)
    return json_response(render.workflow(await svc(request).workflows.publish(request.match_info["workflow_id"], body)))


# Static segments (/workflows/blocks, /workflows/edges) before /workflows/{workflow_id}.
routes = [
    web.get("/v1/workflows/blocks", list_blocks),
    web.post("/v1/workflows/blocks", create_block),
    web.get("/v1/workflows/blocks/{block_id}", get_block),
    web.patch("/v1/workflows/blocks/{block_id}", update_block),
    web.delete("/v1/workflows/blocks/{block_id}", delete_block),
    web.post("/v1/workflows/blocks/{block_id}/validate-config", validate_config),
    web.get("/v1/workflows/edges", list_edges),
    web.post("/v1/workflows/edges", create_edge),
    web.get("/v1/workflows/edges/{edge_id}", get_edge),
    web.delete("/v1/workflows/edges/{edge_id}", delete_edge),
    web.get("/v1/workflows", list_workflows),
    web.post("/v1/workflows", create_workflow),
    web.get("/v1/workflows/{workflow_id}", get_workflow),
    web.patch("/v1/workflows/{workflow_id}", update_workflow),
    web.delete("/v1/workflows/{workflow_id}", delete_workflow),
    web.post("/v1/workflows/{workflow_id}/publish", publish_workflow),
]
