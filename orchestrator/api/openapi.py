"""GET /v1/openapi.json, generated from the router and the same pydantic models that validate requests."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from orchestrator import __version__
from orchestrator.api import openapi_ops as ops
from orchestrator.wire import requests as rq
from orchestrator.wire.conditions import AssertionSpec

BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("POST", "/v1/workflows"): rq.CreateWorkflow,
    ("PATCH", "/v1/workflows/{workflow_id}"): rq.UpdateWorkflow,
    ("POST", "/v1/workflows/blocks"): rq.CreateBlock,
    ("PATCH", "/v1/workflows/blocks/{block_id}"): rq.UpdateBlock,
    ("POST", "/v1/workflows/blocks/{block_id}/validate-config"): rq.ValidateBlockConfig,
    ("POST", "/v1/workflows/edges"): rq.CreateEdge,
    ("POST", "/v1/files/upload"): rq.CreateUpload,
    ("POST", "/v1/files/upload/{file_id}/complete"): rq.CompleteUpload,
    ("POST", "/v1/workflows/evals"): rq.CreateCheck,
    ("PATCH", "/v1/workflows/evals/{check_id}"): rq.UpdateCheck,
    ("POST", "/v1/workflows/tests"): rq.CreateCheck,
    ("PATCH", "/v1/workflows/tests/{check_id}"): rq.UpdateCheck,
    ("POST", "/v1/workflows/evals/runs"): rq.CreateEvalRun,
    ("POST", "/v1/workflows/tests/runs"): rq.CreateEvalRun,
    ("POST", "/v1/workflows/{workflow_id}/tests/runs"): rq.CreateTestRunNested,
    ("POST", "/v1/workflows/{workflow_id}/tests"): rq.CreateCheckNested,
    ("POST", "/v1/workflows/experiments"): rq.CreateExperiment,
    ("PATCH", "/v1/workflows/experiments/{experiment_id}"): rq.UpdateExperiment,
    ("POST", "/v1/workflows/experiments/runs"): rq.CreateExperimentRun,
    ("POST", "/v1/consensus"): rq.CreateConsensus,
    ("POST", "/v1/cache/clear"): rq.ClearCache,
}

PUBLIC = {"/v1/health"}  # answered without a key


def build(app: web.Application) -> dict[str, Any]:
    models: list[type[BaseModel]] = [*BODIES.values(), AssertionSpec, rq.BlockConfig]
    components: dict[str, Any] = {"ErrorEnvelope": ops.ERROR_ENVELOPE}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            components[name] = sub
        components[model.__name__] = schema
    paths: dict[str, Any] = {}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if not path or not str(path).startswith("/v1") or route.method == "HEAD":
            continue
        handler = getattr(route.handler, "func", route.handler)  # a functools.partial: its function
        if getattr(handler, "unserved", False):  # the SDK routes answered with 501: not this API's
            continue
        op: dict[str, Any] = {
            # One handler can serve both dialects (evals, tests): (method, path) is what is unique.
            "operationId": route.method.lower() + "_" + re.sub(r"[^0-9A-Za-z]+", "_", str(path)).strip("_"),
            "summary": str(getattr(handler, "__doc__", None) or getattr(handler, "__name__", "")).strip(),
            "responses": ops.responses(handler, str(path)),
            "parameters": [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in _params(str(path))
            ]
            + [
                {"name": p, "in": "query", "required": True, "schema": {"type": "string", "minLength": 1}}
                for p in ops.required_query(handler)
            ],
        }
        if str(path) in PUBLIC:
            op["security"] = []
            op["responses"].setdefault("503", {"description": "The store does not answer"})
        body_model = BODIES.get((route.method, str(path)))
        if body_model is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body_model.__name__}"}}},
            }
        paths.setdefault(str(path), {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "orchestrator (Retab-compatible workflow runs)", "version": __version__},
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "Api-Key"},
            },
        },
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": paths,
    }


def _params(path: str) -> list[str]:
    return [seg[1:-1] for seg in path.split("/") if seg.startswith("{") and seg.endswith("}")]
