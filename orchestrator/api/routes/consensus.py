"""POST /v1/consensus: reconcile several objects into one (`client.consensus.create`)."""

from __future__ import annotations

from aiohttp import web

from orchestrator.api.http import json_response, parse_body
from orchestrator.api.keys import services as svc
from orchestrator.wire import requests as rq
from orchestrator.wire.render_consensus import reconciliation


async def create_consensus(request: web.Request) -> web.Response:
    """The consensus of `inputs`, with per-field likelihoods (and the alignment when asked)."""
    body = await parse_body(request, rq.CreateConsensus)
    result = await svc(request).consensus.reconcile(body.inputs, body.json_schema, bool(body.include_alignment))
    return json_response(reconciliation(result))


routes = [web.post("/v1/consensus", create_consensus)]
