"""The Retab SDK routes this server does not serve: each answers 501 `not_implemented`, naming the
resource and pointing to README's list, instead of a misleading 404 ("Workflow runs not found", from
`/v1/workflows/{workflow_id}`) or a 405 (which the SDK raises as a bare APIError).

Registered before every other table: several of these paths would otherwise match a served route with
a path parameter. tests/api/test_unserved.py checks that every route of the pinned SDK is either served
or listed here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from orchestrator.errors import NotImplementedRoute

README_SECTION = "README.md, section 'API coverage' (Not served)"

# resource → the SDK 0.0.160 routes of it ("METHOD path"), as the SDK spells them.
UNSERVED: dict[str, tuple[str, ...]] = {
    "workflow runs": (
        "GET /v1/workflows/runs",
        "POST /v1/workflows/runs",
        "POST /v1/workflows/runs/export",
        "GET /v1/workflows/runs/{run_id}",
        "DELETE /v1/workflows/runs/{run_id}",
        "POST /v1/workflows/runs/{run_id}/cancel",
    ),
    "workflow run steps": ("GET /v1/workflows/steps", "GET /v1/workflows/steps/{step_id}"),
    "reviews": (
        "GET /v1/workflows/reviews",
        "GET /v1/workflows/reviews/versions",
        "POST /v1/workflows/reviews/versions",
        "GET /v1/workflows/reviews/versions/{version_id}",
        "GET /v1/workflows/reviews/{review_id}",
        "POST /v1/workflows/reviews/{review_id}/approve",
        "POST /v1/workflows/reviews/{review_id}/reject",
    ),
    "block executions": ("GET /v1/workflows/blocks/executions", "POST /v1/workflows/blocks/executions"),
    "workflow version history": (
        "GET /v1/workflows/versions",
        "GET /v1/workflows/versions/diff",
        "GET /v1/workflows/versions/{workflow_version_id}",
        "POST /v1/workflows/versions/{workflow_version_id}/restore",
        "POST /v1/workflows/{workflow_id}/discard-draft",
    ),
    "block version history": (
        "GET /v1/workflows/blocks/versions",
        "GET /v1/workflows/blocks/versions/diff",
        "GET /v1/workflows/blocks/versions/{block_version_id}",
        "POST /v1/workflows/blocks/versions/{block_version_id}/restore",
    ),
    "edge version history": (
        "GET /v1/workflows/edges/versions",
        "GET /v1/workflows/edges/versions/diff",
        "GET /v1/workflows/edges/versions/{edge_version_id}",
        "POST /v1/workflows/edges/versions/{edge_version_id}/restore",
    ),
    "declarative workflow specs": (
        "POST /v1/workflows/spec/apply",
        "POST /v1/workflows/spec/plan",
        "POST /v1/workflows/spec/validate",
        "GET /v1/workflows/{workflow_id}/spec",
        "POST /v1/workflows/{workflow_id}/spec/apply",
        "POST /v1/workflows/{workflow_id}/spec/plan",
    ),
    "extractions": (
        "GET /v1/extractions",
        "POST /v1/extractions",
        "POST /v1/extractions/stream",
        "GET /v1/extractions/{extraction_id}",
        "DELETE /v1/extractions/{extraction_id}",
        "POST /v1/extractions/{extraction_id}/cancel",
        "GET /v1/extractions/{extraction_id}/sources",
        "POST /v1/extractions/{extraction_id}/sources",
    ),
    "classifications": (
        "GET /v1/classifications",
        "POST /v1/classifications",
        "GET /v1/classifications/{classification_id}",
        "DELETE /v1/classifications/{classification_id}",
        "POST /v1/classifications/{classification_id}/cancel",
    ),
    "splits": (
        "GET /v1/splits",
        "POST /v1/splits",
        "POST /v1/splits/reconstruct",
        "GET /v1/splits/{split_id}",
        "DELETE /v1/splits/{split_id}",
        "POST /v1/splits/{split_id}/cancel",
    ),
    "partitions": (
        "GET /v1/partitions",
        "POST /v1/partitions",
        "GET /v1/partitions/{partition_id}",
        "DELETE /v1/partitions/{partition_id}",
        "POST /v1/partitions/{partition_id}/cancel",
    ),
    "parses": (
        "GET /v1/parses",
        "POST /v1/parses",
        "GET /v1/parses/{parse_id}",
        "DELETE /v1/parses/{parse_id}",
        "POST /v1/parses/{parse_id}/cancel",
    ),
    "edits": (
        "GET /v1/edits",
        "POST /v1/edits",
        "GET /v1/edits/templates",
        "POST /v1/edits/templates",
        "GET /v1/edits/templates/{template_id}",
        "PATCH /v1/edits/templates/{template_id}",
        "DELETE /v1/edits/templates/{template_id}",
        "GET /v1/edits/{edit_id}",
        "DELETE /v1/edits/{edit_id}",
        "POST /v1/edits/{edit_id}/cancel",
    ),
    "schema generation": ("POST /v1/schemas/generate",),
    "tables": (
        "GET /v1/tables",
        "POST /v1/tables",
        "GET /v1/tables/{table_id}",
        "PUT /v1/tables/{table_id}",
        "PATCH /v1/tables/{table_id}",
        "DELETE /v1/tables/{table_id}",
        "GET /v1/tables/{table_id}/download",
        "GET /v1/tables/{table_id}/profile",
        "GET /v1/tables/{table_id}/schema",
        "POST /v1/tables/{table_id}/query",
        "POST /v1/tables/{table_id}/validate",
    ),
    "secrets": (
        "GET /v1/secrets",
        "POST /v1/secrets",
        "GET /v1/secrets/{name}",
        "PUT /v1/secrets/{name}",
        "DELETE /v1/secrets/{name}",
        "GET /v1/secrets/{name}/value",
    ),
    "usage": ("GET /v1/usage/blocks", "GET /v1/usage/primitives", "GET /v1/usage/runs"),
    "file blueprints": (
        "POST /v1/files/blueprints",
        "GET /v1/files/blueprints/{blueprint_id}",
        "POST /v1/files/blueprints/{blueprint_id}/cancel",
    ),
}


def _not_served(resource: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        raise NotImplementedRoute(
            f"This server does not serve {resource} ({request.method} {request.path}). What it serves and"
            f" what it does not: {README_SECTION}.",
            details={"resource": resource, "method": request.method, "path": request.path, "see": README_SECTION},
        )

    handler.unserved = True  # type: ignore[attr-defined]  # openapi.json leaves these out
    return handler


routes = [
    web.route(method, path, _not_served(resource))
    for resource, entries in UNSERVED.items()
    for method, path in (entry.split(" ", 1) for entry in entries)
]
