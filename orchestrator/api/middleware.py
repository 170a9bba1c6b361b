"""Auth, request ids, the error envelope and body limits: one place for each."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from orchestrator.api.keys import REQUEST_ID, SESSIONS
from orchestrator.errors import (
    MethodNotAllowed,
    NotFound,
    OrchestratorError,
    PayloadTooLarge,
    Unauthorized,
)
from orchestrator.ids import new_id

log = logging.getLogger("orchestrator.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
COOKIE = "orchestrator_session"
PUBLIC_PATHS = ("/", "/favicon.ico", "/v1/health", "/health")
PUBLIC_PREFIXES = ("/static/",)


def error_response(exc: OrchestratorError, request_id: str) -> web.Response:
    return web.Response(
        body=orjson.dumps(exc.envelope()),
        status=exc.status,
        content_type="application/json",
        headers={"x-request-id": request_id},
    )


def _presented_key(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    if request.headers.get("Api-Key"):
        return request.headers["Api-Key"].strip()
    if request.query.get("token"):
        return request.query["token"]
    return None


def key_valid(keys: tuple[str, ...], presented: str | None) -> bool:
    if not presented:
        return False
    return any(hmac.compare_digest(presented.encode(), k.encode()) for k in keys)


@web.middleware
async def envelope_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error, whatever raised it, leaves as the Retab envelope with an x-request-id."""
    request_id = new_id("req")
    request[REQUEST_ID] = request_id
    try:
        response = await handler(request)
    except OrchestratorError as exc:
        return error_response(exc, request_id)
    except web.HTTPRequestEntityTooLarge as exc:
        return error_response(PayloadTooLarge(f"Request body is larger than {exc.text}"), request_id)
    except web.HTTPMethodNotAllowed as exc:
        err = MethodNotAllowed(
            f"Method {request.method} is not allowed on {request.path}",
            details={"allowed": sorted(exc.allowed_methods)},
        )
        return error_response(err, request_id)
    except web.HTTPNotFound:
        return error_response(
            NotFound(f"No route for {request.method} {request.path}", code="route_not_found"), request_id
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        generic = OrchestratorError(exc.reason or "Request failed", code=f"http_{exc.status}")
        generic.status = exc.status
        return error_response(generic, request_id)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(
            OrchestratorError("Internal error; see the server log", code="internal_error"), request_id
        )
    if not response.prepared:
        response.headers["x-request-id"] = request_id
    return response


def auth_middleware(keys: tuple[str, ...]) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if request.method == "OPTIONS" or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return await handler(request)
        if path.startswith("/v1/files/upload/") and path.endswith("/content"):
            # The upload URL is a capability (unguessable file id + signature checked by the route).
            return await handler(request)
        presented = _presented_key(request)
        if presented is None and request.cookies.get(COOKIE):
            presented = request.app[SESSIONS].key_for(request.cookies[COOKIE])
        if not key_valid(keys, presented):
            what = "missing" if not presented else "not valid"
            raise Unauthorized(
                f"API key {what}. Send `Authorization: Bearer KEY` or `Api-Key: KEY`.", code="invalid_api_key"
            )
        return await handler(request)

    return middleware
